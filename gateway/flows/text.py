"""Normalising and matching what a young person types.

Matching ignores case, accents, punctuation and extra spaces: ``"  J'AI   15 ans !"`` → ``"j ai 15 ans"``.
A phrase matches when its words appear together, as whole words, inside the answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_NOT_WORD = re.compile(r"[^\w]+")
_DIGITS = re.compile(r"(?<![\w])(\d{1,3})(?![\w])")

NUMBER_WORDS: dict[str, int] = {
    # French
    "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15,
    "seize": 16, "dix sept": 17, "dix huit": 18, "dix neuf": 19, "vingt": 20,
    # English
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip


def normalize(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, single spaces; the invisible format characters (a zero-width
    space, a soft hyphen, a direction mark: Unicode's Cf) dropped, so that one inside a word does not split it."""
    decomposed = unicodedata.normalize("NFKD", text)
    # an ASCII text has no combining mark nor format character to drop (most answers: "oui", "15")
    bare = decomposed if decomposed.isascii() else decomposed.translate(_VISIBLE)
    return " ".join(_NOT_WORD.sub(" ", bare.casefold()).split()).replace("_", " ").strip()


def _visible_base(character: str) -> bool:
    return not unicodedata.combining(character) and unicodedata.category(character) != "Cf"


class _VisibleBases(dict[int, int | None]):
    """``str.translate``'s table keeping a character that :func:`_visible_base` keeps (itself) and dropping the others
    (None), each character's answer found once (a character, never a text: the first :data:`VISIBLE_KEPT` seen;
    any other is asked each time). Until 2026-12-06 every character of a text that is not ASCII was asked twice of
    ``unicodedata`` in a generator: a third of a message's canonical form (bench/README.md, "Forty-fourth session")."""

    def __missing__(self, code: int) -> int | None:
        kept = code if _visible_base(chr(code)) else None
        if len(self) < VISIBLE_KEPT:
            self[code] = kept
        return kept


VISIBLE_KEPT = 4096
"""At most this many characters' answers kept (a few hundred kilobytes), whatever a sender writes."""
_VISIBLE = _VisibleBases()


def contains(normalized_text: str, normalized_phrase: str) -> bool:
    """Whole-word containment of an already normalised phrase."""
    return bool(normalized_phrase) and f" {normalized_phrase} " in f" {normalized_text} "


def parse_number(text: str) -> int | None:
    """``"15"``, ``"j'ai 15 ans"``, ``"15 ans"``, ``"quinze"`` → 15; None when there is no single number."""
    norm = normalize(text)
    found = {int(m) for m in _DIGITS.findall(norm)}
    if len(found) == 1:
        return found.pop()
    if found:
        return None
    words = [n for w, n in sorted(NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])) if contains(norm, w)]
    return words[0] if words else None


@dataclass(frozen=True, slots=True)
class Option:
    """A choice ready for matching: its value and every normalised phrase that designates it, longest first."""

    value: str
    exact: frozenset[str]
    phrases: tuple[str, ...]
    # Each phrase as ``find_option`` tests it: " phrase " and its number of words, made once (not per message).
    spaced: tuple[tuple[str, str, int], ...] = field(init=False, repr=False, compare=False)
    # Where in ``spaced`` the phrases starting with each word are (``find_option`` looks at those of the message's)
    starting: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spaced = tuple((p, f" {p} ", len(p.split())) for p in self.phrases if p)
        starting: dict[str, list[int]] = {}
        for index, (phrase, _, _) in enumerate(spaced):
            starting.setdefault(phrase.split(" ", 1)[0], []).append(index)
        object.__setattr__(self, "spaced", spaced)
        object.__setattr__(self, "starting", {word: tuple(found) for word, found in starting.items()})


def make_option(value: str, labels: Iterable[str], synonyms: Iterable[str]) -> Option:
    exact = frozenset(p for p in (normalize(value), *(normalize(x) for x in labels)) if p)
    phrases = tuple(sorted({normalize(s) for s in (*labels, *synonyms)} - {""}, key=len, reverse=True))
    return Option(value, exact, phrases)


def match_option(text: str, payload: str | None, options: Sequence[Option]) -> str | None:
    """The value of the option the answer designates, or None when it is not understood or ambiguous.

    In order: a button payload; the exact value or label; the option's number ("2"); a label or synonym
    contained in the answer (the longest phrase wins; a tie between two options is ambiguous).
    """
    found = match_option_how(text, payload, options)
    return found[0] if found else None


def match_option_how(text: str, payload: str | None, options: Sequence[Option]) -> tuple[str, str] | None:
    """Like :func:`match_option`, with how: ``button``, ``typed`` (value, label or number) or ``synonym:WORDS``."""
    if payload is not None:
        for option in options:
            if option.value == payload:
                return option.value, "button"
    norm = normalize(text)
    if not norm:
        return None
    for option in options:
        if norm in option.exact:
            return option.value, "typed"
    if norm.isdecimal() and len(norm) <= 3:  # "፩" is a digit to isdigit() and no int; int() refuses 4,300 digits
        index = int(norm) - 1
        return (options[index].value, "typed") if 0 <= index < len(options) else None
    return find_option(norm, options)


def find_option(norm: str, options: Sequence[Option], min_words: int = 1) -> tuple[str, str] | None:
    """The option whose label or synonym (of ``min_words`` words or more) the normalised text contains: the
    longest phrase wins, a tie between two options is ambiguous (None). Returns the value and ``synonym:WORDS``.

    Only the phrases whose first word is a word of the text are tried (``Option.starting``), in their order: a
    phrase contained as whole words starts with one, so the others, never found, are not tried (the topic's and
    who's hundreds of synonyms, at every message)."""
    best_len = 0
    best: dict[str, str] = {}
    spaced = f" {norm} "  # contains(norm, phrase), with the phrases spaced and counted once
    words = frozenset(spaced.split(" "))
    for option in options:
        starting = option.starting
        if starting.keys().isdisjoint(words):  # most options, at most messages
            continue
        for index in sorted(i for word in starting.keys() & words for i in starting[word]):  # longest first
            phrase, spaced_phrase, count = option.spaced[index]
            if len(phrase) < best_len:
                break
            if count >= min_words and spaced_phrase in spaced:
                if len(phrase) > best_len:
                    best_len, best = len(phrase), {}
                best[option.value] = phrase
                break
    if len(best) != 1:
        return None
    value, phrase = best.popitem()
    return value, f"synonym:{phrase}"


_AGE = re.compile(
    r"(?<![\w])(?:(?:i m|i am|im|aged)\s+(\d{1,2})(?!\s*(?:h|hours?|min|minutes?|days?|months?)\b)"
    r"|(?:j ai|jai|age de|agee de)\s+(\d{1,2})(?=$|\s+(?:ans?|years?|yo)\b)"
    r"|(\d{1,2})\s*(?:ans|years? old|yrs? old|yo|y o))(?![\w])"
)


def mention_age(text: str) -> int | None:
    """An age said in passing, with its unit or verb: ``"jsuis en 4e j'ai 14 ans"``, ``"I'm 14"``, ``"14yo"`` →
    14; a bare number is not an age (``"on est 3"``). None when there is none, or two different ones."""
    found = {int(a or b or c) for a, b, c in _AGE.findall(normalize(text))}
    return found.pop() if len(found) == 1 else None
