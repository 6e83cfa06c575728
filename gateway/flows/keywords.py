"""Interrupt phrases: how the keyword first line reads a young person's own words.

Messages and phrases are both brought to a **canonical** form before matching: no case, no accents, no
punctuation, letters repeated three times or more written once (``"stooop"`` → ``"stop"``), and the spellings of
SMS and chat written out (``jveux`` → ``je veux``, ``chui`` → ``je suis``, ``kms`` → ``kill myself``).
Emoji are dropped, but those young people write instead of a word (:data:`EMOJI_WORDS`: 🩹 for self-harm) are also
read as words in a second form of the message, whose phrases may only add to what the first form raised.

A phrase is a few words, matched as whole words. Two marks make one phrase cover many wordings:

    (pere|mere|beau pere) me frappe     one of the alternatives
    il a * couteau                      up to three words of any kind ("il a sorti un couteau")

An interrupt's ``ignore`` phrases are false friends ("mort de rire", "je me coupe la frange"): their words are set
aside before the interrupt's phrases are looked for, so only the rest of the message can match. Its ``hyperbole``
phrases ("je veux mourir", "kill myself") are what young people say in jest: in a message that **jokes** (a
laughter or joke marker: ``mdr``, ``lol``, 😂, 💀 …) and does not say it is serious (``pas une blague``, ``fr``, ``jte
jure`` …: :func:`jokes`) and tells what it laughs at (:data:`JOKE_CAUSE_WORDS`), a phrase found wholly inside one
of them does not count; a longer phrase reaching beyond it still does. "kms lol i forgot my homework again" does not
interrupt; "kms lol" alone and "mdr nn c pa une blague jveux vraiment crever" do.

An interrupt that hands off (danger, a human) matches its phrase anywhere in a message. An interrupt that does
not hand off (``stop``: it ends the conversation or only refers) matches only when the message is essentially
that phrase: ``"stop"``, ``"stop stp"``, ``"je veux arrêter la conversation"``, never ``"je lui ai dit stop mais
il continue"``. Words of politeness and filler (``stp``, ``merci``, ``please``…) may surround the phrase.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from gateway.flows import text

SPELLINGS: dict[str, str] = {
    # French: SMS spellings and elisions written out
    "jveux": "je veux", "jvx": "je veux", "jve": "je veux", "jpeux": "je peux", "jpeu": "je peux",
    "chui": "je suis", "chuis": "je suis", "chu": "je suis", "jsui": "je suis", "jsuis": "je suis",
    "jss": "je suis", "jui": "je suis", "jsp": "je sais pas", "jsais": "je sais", "jai": "j ai", "g": "j ai",
    "jme": "je me", "jmen": "je m en", "jte": "je te", "jvais": "je vais", "jvai": "je vais", "jv": "je vais",
    "jfais": "je fais", "jpense": "je pense", "jcrois": "je crois", "jpp": "j en peux plus", "jen": "j en",
    "jlui": "je lui", "jsens": "je sens", "jle": "je le", "jla": "je la", "jles": "je les", "jdois": "je dois",
    "pk": "pourquoi", "pq": "pourquoi", "pcq": "parce que", "pck": "parce que", "psk": "parce que",
    "paske": "parce que", "tt": "tout", "tjr": "toujours", "tjrs": "toujours", "bcp": "beaucoup", "pr": "pour",
    "ds": "dans", "ms": "mais", "mm": "meme", "qd": "quand", "qnd": "quand", "kan": "quand", "ac": "avec",
    "avc": "avec", "ya": "il y a", "yaura": "il y aura", "vrmt": "vraiment", "pa": "pas", "koi": "quoi",
    "kwa": "quoi", "ke": "que", "ki": "qui", "kil": "qu il", "cmt": "comment", "auj": "aujourd hui",
    "ajd": "aujourd hui", "mnt": "maintenant", "mtn": "maintenant", "plu": "plus", "veu": "veux", "vx": "veux",
    "peu": "peux", "mourrir": "mourir", "mourire": "mourir", "sucide": "suicide", "sucider": "suicider",
"daron": "pere", "daronne": "mere", "reup": "pere", "reum": "mere", "bo": "beau",
    "papa": "pere", "maman": "mere", "ne": "", "ouam": "moi", "oim": "moi", "jvoi": "je vois", "jvois": "je vois",
    "fai": "fais", "scarifi": "scarifie", "beaupere": "beau pere", "bellemere": "belle mere", "cbon": "c est bon",
    "discu": "discussion", "jveu": "je veux", "arete": "arrete", "qqn": "quelqu un",
    "envi": "envie", "envis": "envie", "qlq1": "quelqu un", "qq1": "quelqu un",
    "jprefere": "je prefere", "jcache": "je cache", "jentends": "j entends", "jparte": "je parte",
    "jsorte": "je sorte", "jmonte": "je monte", "jrentre": "je rentre", "jarrete": "j arrete",
    "menferme": "m enferme", "menfermer": "m enfermer", "mfrappe": "me frappe", "mtape": "me tape",
    "mattend": "m attend", "menvoie": "m envoie", "menvoi": "m envoie", "frape": "frappe", "frapee": "frappee",
    "v": "vais",
    # English
    "kms": "kill myself", "kys": "kill yourself", "im": "i m", "ima": "i m going to", "imma": "i m going to",
    "wanna": "want to", "gonna": "going to", "gotta": "got to", "dont": "don t", "cant": "can t",
    "wont": "won t", "didnt": "didn t", "doesnt": "doesn t", "idk": "i don t know", "u": "you", "ur": "your",
    "r": "are", "ppl": "people", "bc": "because", "cuz": "because", "coz": "because", "cos": "because",
    "rn": "right now", "ive": "i ve", "youre": "you re", "hes": "he s", "shes": "she s", "thats": "that s",
    "mom": "mum", "mommy": "mum", "mother": "mum", "daddy": "dad", "father": "dad", "stepmom": "stepmum",
    "bro": "brother", "nvm": "never mind", "k": "ok", "thx": "thanks", "aight": "ok", "theres": "there s",
    "tryna": "trying to", "hittin": "hitting", "beatin": "beating", "chokin": "choking", "touchin": "touching",
    "punchin": "punching", "slappin": "slapping", "kickin": "kicking", "cuttin": "cutting", "burnin": "burning",
    "followin": "following", "wnt": "want",
    # digits for words, as texted: "i want 2 die", "bye 4ever", "2nite"
    "2": "to", "4": "for", "b": "be", "b4": "before", "2nite": "tonight", "2night": "tonight", "2nyt": "tonight",
    "tonite": "tonight", "4ever": "forever", "4eva": "forever", "2day": "today", "2moro": "tomorrow",
    "2morrow": "tomorrow", "2morow": "tomorrow", "2mrw": "tomorrow",
    # digits for letters, written to get past filters
    "k1ll": "kill", "su1cide": "suicide", "suic1de": "suicide", "d1e": "die", "unal1ve": "unalive", "s3lf": "self",
    "h4rm": "harm",
}  # fmt: skip
"""Chat spellings, written out; applied word by word to messages and phrases alike (so both meet)."""

_REPEATS = re.compile(r"([^\W\d_])\1{2,}")
_MARKS = re.compile(r"[()|*]")
GAP_WORDS = 3
"""How many words ``*`` stands for, at most."""
_GAP = rf"(?:\S+ ){{0,{GAP_WORDS}}}"
MASK = "|"
"""What a false friend's words become: a word no phrase can match or run across."""


EMOJI_WORDS: dict[str, str] = {"\N{ADHESIVE BANDAGE}": "emojibandage"}
"""Emoji young people write instead of the word, read as a word by :func:`with_emoji_words` (and in phrases, which
may name them): 🩹 stands for self-harm in their posts and chats (``🩹🩹``, ``rechute 🩹``). :func:`canonical`
still drops them, as it drops every emoji: the model's character n-grams read its form, and a phrase matched before
must still match (``rechute 🩹`` is ``rechute`` alone)."""


def with_emoji_words(raw: str) -> str | None:
    """:func:`canonical` with the :data:`EMOJI_WORDS` written as words, or None when ``raw`` has none of them (then
    the two forms are the same): ``"🩹🩹 encore"`` → ``"emojibandage emojibandage encore"``."""
    if not any(emoji in raw for emoji in EMOJI_WORDS):
        return None
    for emoji, word in EMOJI_WORDS.items():
        raw = raw.replace(emoji, f" {word} ")
    return canonical(raw)


def canonical(raw: str) -> str:
    """The form messages and phrases are matched in: ``"Chuiii TROP mal, jveux mourrir!!"`` → ``"je suis trop
    mal je veux mourir"``."""
    lowered = raw.casefold().replace("œ", "oe").replace("æ", "ae").replace("🆘", " sos ")
    if not lowered.isascii():  # Turkish's dotless "ı" as the "i" most type for it; Ukrainian's apostrophe "ʼ"
        lowered = lowered.replace("ı", "i").replace("\u02bc", " ")
    norm = _REPEATS.sub(r"\1", text.normalize(lowered))
    words = (SPELLINGS.get(w, w) for w in norm.split())
    return " ".join(w for w in words if w)


# Letters written another way to get past a filter or for style, read back by :class:`Disguises`
_LEET: dict[str, str] = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "ao", "$": "s", "€": "e", "!": "il", "|": "il",
}  # fmt: skip
"""A digit or a sign inside a word, for the letters it may stand for ("m0urir", "su1c1d3", "fr@ppe", "mour!r")."""
_HIDING = frozenset("*#+%°~^")
"""Signs that hide a letter inside a word, or stand between its letters ("su*cide", "m°rt"); never a hyphen, a dot or
an underscore, which join words as they are written ("self-harm", "beau-père", "self_harm")."""
_PICTURES = frozenset(("So", "Sk", "Mn", "Cf"))
"""What an emoji is made of: symbols (😭, ❤), skin tones, the variation selector and the joiner between emoji."""
_PICTURE_RUN = re.compile("\0+")
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕкмтнвԁһαοεικνρτυχβ",  # Cyrillic, then Greek, lower case (canonical forms are casefolded)
    "aeopcyxijskmthbdhaoeiknptuxb",
)
"""Cyrillic and Greek letters that look like Latin ones (a Cyrillic "о" inside "mоurir")."""
_APART = re.compile(r"[\s'’`]+")
_SPELLED = re.compile(r"[^\W\d_](?:[.\-_*·/][^\W\d_]){2,}[.\-_*·/]?")
"""One word's letters set apart by signs: "s.u.i.c.i.d.e", "m-o-r-t"."""
_ELIDED = frozenset("jd")
"""A young person's elision before a consonant: "j'me coupe", "envie d'mourir" (``je``, ``de``)."""
_VOWELS = frozenset("aeiouyh")
_AS_INFINITIVE = frozenset(("me", "m", "te", "t", "se", "s"))
"""Before a verb ending in "é" written for its "-er" ("me tué", "me suicidé")."""
_MOST_DISGUISED = 64
"""How many words of one message are looked up at most (a message of nothing but disguised words costs no more)."""
_READ_KEPT = 4096
"""How many words looked up are remembered (the same disguise comes back in a conversation)."""
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_CUT = re.compile(r"[-_]+")
"""What cuts a word written in two ("sui-cide", "mour_ir")."""
_BROKEN = re.compile(r"(?<!\w)([^\W\d_]+)\r?\n([^\W\d_]+)(?!\w)")
"""A word broken over a line break ("sui\ncide")."""


class Disguises:
    """Words a young person writes disguised, read back as the phrases' own words, for a second reading of the message
    whose phrases may only add to what the first raised (:meth:`undo`): digits, signs and emoji for letters ("j3 v3ux
    m0urir", "su*cide", "fr@ppe", "m😭urir"), letters spaced or dotted ("s u i c i d e", "m.o.r.t"), Cyrillic or Greek
    letters that look Latin, a word cut by a hyphen, an underscore or a line break whose parts are not words
    ("sui-cide", "mour_ir", "sui\\ncide"; not "self-harm"), a doubled "i" or "u" ("mouriir"), a verb's "é" for its
    "-er" after "me" ("me tué"), "j'" and "d'" before a consonant ("j'me coupe", "envie d'mourir").

    A disguised word is read back only as a word of the phrases (``known``) or of :data:`SPELLINGS`, never as
    anything else: a code, a score or a phrase nobody wrote stays what it was, so only where the plain word would
    have matched can the reading add a risk. A word starting with a digit (``13ans``, ``1v1``, ``5e``, ``4h``) is a
    number, never read back."""

    __slots__ = ("_by_start", "_read", "known")

    def __init__(self, words: Iterable[str]) -> None:
        self.known = frozenset(w for w in words if w) | frozenset(SPELLINGS)
        by_start: dict[tuple[int, str], list[str]] = {}
        for word in self.known:
            by_start.setdefault((len(word), word[0]), []).append(word)
        self._by_start = {key: tuple(sorted(found)) for key, found in by_start.items()}
        self._read: dict[str, str | None] = {}

    def undo(self, raw: str) -> str | None:
        """The canonical form of ``raw`` with its disguised words read back, or None when it has none (then the two
        forms are the same): ``"j3 v3ux m0urir"`` → ``"je veux mourir"``."""
        lowered = unicodedata.normalize("NFC", raw.casefold())
        rejoined = _BROKEN.sub(self._rejoined, lowered) if "\n" in lowered else lowered
        pieces = [p for p in _APART.split(rejoined) if p]
        plain = [_plain(p) for p in pieces]
        out: list[str] = []
        budget, changed, at = [_MOST_DISGUISED], rejoined != lowered, 0
        while at < len(plain):
            run = at
            while run < len(plain) and len(plain[run]) == 1 and plain[run].isalpha():
                run += 1
            if run - at >= 3:  # letters spaced: "s u i c i d e", read as one word only when it is a phrase's
                start, end = _spaced(plain[at:run], self.known)
                out += pieces[at : at + start]
                if end:
                    out.append("".join(plain[at + start : at + end]))
                out += pieces[at + end : run] if end else pieces[at + start : run]
                changed, at = changed or end > 0, run
                continue
            word, after = _EDGES.sub("", plain[at]), plain[at + 1] if at + 1 < len(plain) else ""
            found: str | None = None
            if word in _ELIDED and after[:1].isalpha() and after[:1] not in _VOWELS:
                found = f"{word}e"  # "je", "de"
            elif out and out[-1] in _AS_INFINITIVE and (verb := _infinitive(word, pieces[at])) in self.known:
                found = verb  # "me tué" → "me tuer"
            elif word in self.known:  # a look-alike letter inside ("mоurir", a Cyrillic "о")
                found = word if word.isascii() and pieces[at].translate(_LOOKALIKES) != pieces[at] else None
            elif word and word[0].isalpha():  # one starting with a digit is a number ("13ans", "1v1", "5e", "4h")
                found = self._word(word, budget)
            out.append(found or pieces[at])
            changed = changed or found is not None
            at += 1
        return canonical(" ".join(out)) if changed else None

    def _rejoined(self, broken: re.Match[str]) -> str:
        """A word broken over a line break, whole when it is a word of the phrases and its parts are not words of
        their own ("sui\ncide", not "je veux\nmourir"); else as it was."""
        return self._whole([_plain(broken[1]), _plain(broken[2])]) or broken[0]

    def _whole(self, parts: list[str]) -> str | None:
        """The word ``parts`` make when it is a word of the phrases and the parts (of two letters or more) are not
        all words of their own: "sui" "cide" → "suicide"; "self" "harm" → None."""
        joined = "".join(parts)
        words = sum(len(p) > 1 and p in self.known for p in parts)
        return joined if joined.isalpha() and joined in self.known and words < len(parts) else None

    def _word(self, core: str, budget: list[int]) -> str | None:
        if core not in self._read:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            if len(self._read) >= _READ_KEPT:
                self._read.clear()
            self._read[core] = self._lookup(core)
        return self._read[core]

    def _lookup(self, core: str) -> str | None:
        if _SPELLED.fullmatch(core):  # "s.u.i.c.i.d.e"
            joined = "".join(c for c in core if c.isalpha())
            return joined if joined in self.known else None
        if _CUT.search(core):  # a word cut by a hyphen or an underscore ("sui-cide"), not two words ("self-harm")
            return self._whole(_CUT.split(core))
        if core.isalpha():  # no digit nor sign: a doubled "i" or "u" ("mouriir", "tuuer")?
            single = re.sub(r"([iu])\1", r"\1", core)
            return single if single != core and single in self.known else None
        if not core.isascii():  # an emoji inside the word ("m😭urir", "su💀icide") hides a letter, as a "*"
            core = _PICTURE_RUN.sub("*", "".join("\0" if unicodedata.category(c) in _PICTURES else c for c in core))
        pattern, hidden = [], 0
        for char in core:
            if char.isalpha():
                pattern.append(re.escape(char))
            elif char in _LEET:
                pattern.append(f"[{_LEET[char]}]")
            elif char in _HIDING:
                pattern.append(r"[^\W\d_]?")  # a letter of any script ("su*cide", "умер*ть")
                hidden += 1
            else:  # another digit ("h24", "x2") or sign: not a disguised word
                return None
        matching = re.compile("".join(pattern))
        for length in range(len(core), len(core) - hidden - 1, -1):
            for candidate in self._by_start.get((length, core[0]), ()):
                if matching.fullmatch(candidate):
                    return candidate
        return None


_JOINED = re.compile(r"(?<![^\s'’`])[^\w@/\s'’`]*([^\W\d_]{5,40})[^\w@/\s'’`]*(?![^\s'’`])")
"""A piece of a message that may be words written joined: letters only, a "#" or punctuation around them
("#jeveuxmourir", "jveuxmourir!!"); never an address, a username, a code or a number ("@jeveuxmourir",
"site.fr/jeveuxmourir")."""
_ELIDING = frozenset("jdmtslcni")
"""The words of one letter a joined word may hold, before a vowel or an "h" as elisions stand ("envieden" is "envie d
en", never "envie de n"); and "i" at its start ("iwanttodie")."""
_SUBJECTS = frozenset(("je", "j", "i", "tu", "on"))
"""A subject a phrase may leave out, at the start of a joined token ("je" of "#jveuxcrever", "i" of "#iwanttodie")."""


_LISTS_KEPT = 2
"""The phrase lists whose words are kept per process (:class:`Joined`, :func:`vocabulary`): the current flow's and
one more (the file being reloaded). Each save of a changed flows.yaml makes new lists: until 2026-12-07 the last 16
were kept, ~50 MB after 16 saves (3 MB each for the default flow), held for good where a version no conversation uses
is forgotten (``FlowSet.prune``)."""


class Joined:
    """Words written joined, in a hashtag or not ("#jeveuxmourir", "jveuxmourir", "#envieden finir"), split into the
    phrases' own words (:meth:`split`) for a further reading of the message whose phrases may only add to what the
    others raised.

    A token is split only into words of the ``phrases`` (those that hand off) and the chat spellings that stand for
    them ("jveux", "jvais"), the fewest of them, and only when each word follows the one before it as in some phrase
    ("je veux", "veux mourir"): "#cassos" is not "cas sos", "unfollowed" not "un followed". Then only a phrase found
    taking in all of the token's words (but perhaps a subject it leaves out) counts (:meth:`within`): a joined token
    is read as a phrase it spells, never as a word of danger pulled out of a longer one; "mortderire", "#instagram",
    "#balancetonporc" stay as they are."""

    __slots__ = ("_longest", "_pairs", "_parts", "_read", "_starts")

    def __init__(self, phrases: Iterable[str]) -> None:
        self._parts, self._pairs, self._starts, self._longest = _joined_words(tuple(phrases))
        self._read: dict[str, str | None] = {}

    def split(self, raw: str) -> tuple[str, tuple[str, ...]] | None:
        """The canonical form of ``raw`` with its joined words split, and each split token's canonical words; None
        when it has none: ``"#jeveuxmourir #triste"`` → ``("je veux mourir triste", ("je veux mourir",))``."""
        lowered = unicodedata.normalize("NFC", raw.casefold())
        out: list[str] = []
        tokens: list[str] = []
        budget, at = _MOST_DISGUISED, 0
        for found in _JOINED.finditer(lowered):
            token = _plain(found[1])
            if token in self._parts:
                continue
            if budget <= 0:
                break
            budget -= 1
            if (words := self._words(token)) is not None:
                out += [lowered[at : found.start()], words]
                tokens.append(words)
                at = found.end()
        return (canonical(" ".join([*out, lowered[at:]])), tuple(tokens)) if tokens else None

    @staticmethod
    def within(words: str, tokens: tuple[str, ...]) -> bool:
        """Whether the words a phrase found take in all the words of one of the split ``tokens``, but perhaps a
        subject the phrase leaves out ("veux crever" of "#jveuxcrever", "want to die" of "#iwanttodie")."""
        spaced = f" {words} "
        for token in tokens:
            first, _, rest = token.partition(" ")
            if f" {token} " in spaced or (first in _SUBJECTS and f" {rest} " in spaced):
                return True
        return False

    def _words(self, token: str) -> str | None:
        if token not in self._read:
            if len(self._read) >= _READ_KEPT:
                self._read.clear()
            self._read[token] = self._phrase_words(token)
        return self._read[token]

    def _phrase_words(self, token: str) -> str | None:
        """``token`` as the fewest words of the phrases, two at least, each following the one before as in some
        phrase (canonical, spaced); None when they cannot make it up so."""
        best: list[tuple[int, int] | None] = [(0, 0)] + [None] * len(token)
        for start in range(len(token)):  # from each place a word ends at, the words starting there
            if (before := best[start]) is None:
                continue
            for end in range(start + 1, min(len(token), start + self._longest) + 1):
                part = token[start:end]
                if part not in self._starts:  # no word starts so: most places of most words, at once
                    break
                if part not in self._parts or ((now := best[end]) is not None and before[0] + 1 > now[0]):
                    continue
                if len(part) == 1 and token[end : end + 1] not in _VOWELS and not (part == "i" and start == 0):
                    continue  # "d" before "en", not "de" "n"
                best[end] = (before[0] + 1, start)  # on a tie, the last word the shortest ("envie d en")
        if best[-1] is None or best[-1][0] < 2:
            return None
        parts, end = [], len(token)
        while end:
            start = best[end][1]  # type: ignore[index]
            parts.append(token[start:end])
            end = start
        words = canonical(" ".join(reversed(parts))).split()
        pairs = list(itertools.pairwise(words))
        if words[0] in _SUBJECTS:
            pairs = pairs[1:]
        return " ".join(words) if len(words) > 1 and all(pair in self._pairs for pair in pairs) else None


@functools.lru_cache(maxsize=_LISTS_KEPT)
def _joined_words(
    phrases: tuple[str, ...],
) -> tuple[frozenset[str], frozenset[tuple[str, str]], frozenset[str], int]:
    """:class:`Joined`'s words, pairs of words, words' starts and longest word for ``phrases``; the same phrases
    again (flows.yaml reloaded unchanged, or a second app in one process) are not read again: they were a third of
    building the default flow, and none of them ever changes. The last :data:`_LISTS_KEPT` lists only: 3 MB each for
    the default flow's hand-off phrases."""
    vocabulary: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for phrase in phrases:
        if phrase_problem(phrase) is not None:
            continue
        last: list[str] = []  # the words the unit before may end with (a "*" between: as no word)
        for unit in _units(phrase):
            if unit == "*":
                continue
            said = [w.split() for w in ((unit,) if isinstance(unit, str) else unit) if w]
            for words in said:
                vocabulary.update(words)
                pairs.update(itertools.pairwise(words))
            pairs.update((before, words[0]) for before in last for words in said)
            last = [words[-1] for words in said]
    spelled = [k for k, v in SPELLINGS.items() if len(k) > 1 and all(w in vocabulary for w in v.split())]
    parts = frozenset(w for w in (*vocabulary, *spelled) if w.isalpha() and (len(w) > 1 or w in _ELIDING))
    starts = frozenset(w[:end] for w in parts for end in range(1, len(w) + 1))
    return parts, frozenset(pairs), starts, max(map(len, parts), default=0)


def _spaced(letters: list[str], known: frozenset[str]) -> tuple[int, int]:
    """Where the spaced letters spell a known word, a letter or two of other words around it allowed ("i m s u i c i
    d a l"): (start, end), or (0, 0)."""
    for start in range(min(3, len(letters) - 2)):
        for end in range(len(letters), max(start + 2, len(letters) - 3), -1):
            if "".join(letters[start:end]) in known:
                return start, end
    return 0, 0


def _infinitive(word: str, piece: str) -> str | None:
    """A verb's "-er" written "é" ("tué", "suicidé"), as its infinitive; None for any other word."""
    return f"{word}r" if _EDGES.sub("", piece).endswith("é") and word.endswith("e") else None


def _plain(piece: str) -> str:
    """A piece of a message lower case, without accents, Cyrillic and Greek look-alikes as Latin letters, and its
    full-width or mathematical letters as plain ones (NFKD). A word of two letters or more with no Latin letter is
    written in its own script ("умереть", "себя"): its letters are kept, so that it is read as a Cyrillic (or Greek)
    phrase's word, never as Latin letters that are no word ("yмepetь")."""
    if piece.isascii():
        return piece
    decomposed = unicodedata.normalize("NFKD", piece)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    letters = [c for c in bare if c.isalpha()]
    if len(letters) > 1 and not any(c.isascii() for c in letters):
        return bare
    decomposed = unicodedata.normalize("NFKD", piece.translate(_LOOKALIKES))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_LOOKALIKES)


def vocabulary(phrases: Iterable[str]) -> frozenset[str]:
    """Every canonical word the phrases (with their marks) are made of."""
    return _vocabulary(tuple(phrases))


@functools.lru_cache(maxsize=_LISTS_KEPT)
def _vocabulary(phrases: tuple[str, ...]) -> frozenset[str]:
    words: set[str] = set()
    for phrase in phrases:
        if phrase_problem(phrase) is not None:
            continue
        for unit in _units(phrase):
            for part in (unit,) if isinstance(unit, str) else unit:
                words.update(part.split())
    words.discard("*")
    return frozenset(words)


_JOKE_WORDS = re.compile(
    r"(?<!\S)(?:mdr+|x?ptdr+|lo+l+|lmf?ao+|xd+|jk|(?:ha){2,}h?|(?:ah){2,}|(?:hi){2,}|je rigole|jrigole|je deconne"
    r"|jdeconne|je plaisante|jplaisante|just kidding|just joking|c est pour rire)(?!\S)"
)
JOKE_EMOJI = "\N{FACE WITH TEARS OF JOY}\N{ROLLING ON THE FLOOR LAUGHING}\N{SKULL}\N{CAT FACE WITH TEARS OF JOY}"
_SERIOUS_WORDS = re.compile(
    r"(?<!\S)(?:pas une blague|pas drole|pas pour rire|serieux|serieuse|serieusement|sans rire|je rigole pas"
    r"|jrigole pas|je deconne pas|jdeconne pas|je plaisante pas|je te jure|je vous jure|vraiment|fr|frfr|for real"
    r"|no joke|not joking|not a joke|not kidding|i m serious|serious|seriously|i mean it|deadass|no cap|srs)(?!\S)"
)


def jokes(raw: str, canon: str) -> bool:
    """Whether a message jokes: a laughter or joke marker (in its canonical form ``canon``, or one of the
    :data:`JOKE_EMOJI` in ``raw``: :func:`canonical` drops emoji) and no words saying it is serious. Then an
    interrupt's ``hyperbole`` phrases are set aside (:meth:`Phrases.find`); a serious word keeps them:
    "jte jure c pas une blague jveux mourir mdr" still matches."""
    if _JOKE_WORDS.search(canon) is None and not any(emoji in raw for emoji in JOKE_EMOJI):
        return False
    return _SERIOUS_WORDS.search(canon) is None


# regular-expression marks a phrase's writer may reach for: read as punctuation, they would vanish from the phrase
# (``i (just )?took`` would ask for "just"), so the phrase is refused instead
_NOT_MARKS = frozenset("?+[]{}\\^$")


@functools.lru_cache(maxsize=16384)
def phrase_problem(phrase: str) -> str | None:
    """What is wrong with a phrase's marks (``(…|…)``, ``*``), or None (remembered: every load of flows.yaml checks
    each of its phrases, by the thousand)."""
    depth = 0
    for char in phrase:
        if char in _NOT_MARKS:
            return (
                f"'{char}' is not a mark here (only (a|b) and * are): write each wording as an alternative, "
                "e.g. (i took|i just took) for 'i (just )?took'"
            )
        if char == "(":
            depth += 1
            if depth > 1:
                return "alternatives '( | )' cannot be nested"
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "a ')' has no '('"
        elif char == "|" and depth == 0:
            return "a '|' outside parentheses: write alternatives as (a|b)"
        elif char == "*" and depth:
            return "'*' cannot stand inside parentheses"
    if depth:
        return "a '(' has no ')'"
    units = _units(phrase)
    if any(isinstance(u, tuple) and not all(u) for u in units):
        return "an alternative is empty: every choice in (a|b) needs words"
    words = [u for u in units if u != "*"]
    if not words:
        return "the phrase has no words"
    if units[0] == "*" or units[-1] == "*":
        return "'*' stands between words, not at the start or the end"
    return None


@functools.lru_cache(maxsize=16384)
def _units(phrase: str) -> tuple[str | tuple[str, ...], ...]:
    """A phrase as canonical words (str), alternatives (tuple) and gaps ("*"). Kept for the phrase: every app and
    every reload reads the flow's phrases several times over (compiled, the disguises' and the joined words'
    vocabularies), and their canonical forms were 70 % of building the default flow (seconds on a slow machine)."""
    units: list[str | tuple[str, ...]] = []
    for part in re.split(r"(\([^()]*\)|\*)", phrase):
        if part == "*":
            units.append("*")
        elif part.startswith("(") and part.endswith(")"):
            units.append(tuple(_phrase_words(alt) for alt in part[1:-1].split("|")))
        elif _phrase_words(part):
            units.append(_phrase_words(part))
    return tuple(units)


def _phrase_words(part: str) -> str:
    """A phrase's words in canonical form, an emoji of :data:`EMOJI_WORDS` as its word."""
    return with_emoji_words(part) or canonical(part)


def _regex(phrase: str) -> str:
    return _regex_of(_units(phrase))


def _regex_of(units: Sequence[str | tuple[str, ...]]) -> str:
    pieces: list[str] = []
    gap = False
    for unit in units:
        if unit == "*":
            gap = True
            continue
        piece = re.escape(unit) if isinstance(unit, str) else "(?:" + "|".join(map(re.escape, unit)) + ")"
        if pieces:
            pieces.append(" " + _GAP if gap else " ")
        pieces.append(piece)
        gap = False
    return "".join(pieces)


def _branches(phrase: str) -> Iterator[tuple[str, str]]:
    """(a first word, the regex of what follows it) for each first word ``phrase`` may start with."""
    units = _units(phrase)
    rest = _regex_of(units[1:])
    if rest:
        rest = (" " + _GAP if units[1] == "*" else " ") + rest
    first = units[0]
    for start in (first,) if isinstance(first, str) else first:
        word, _, more = start.partition(" ")
        yield word, (" " + re.escape(more) if more else "") + rest


_WORD = re.compile(r"\S+")


class Words:
    """A canonical message read once for all the interrupts' phrases: its words, and where each word stands (found
    once, when a phrase may start at one of them)."""

    __slots__ = ("_spans", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        split = text.split()
        self.words = frozenset(split)
        self._spans: dict[str, list[tuple[int, int]]] | None = None
        if " ".join(split) == text:  # words one space apart (every canonical form): where they stand, by counting
            self._spans = {}
            at = 0
            for word in split:
                self._spans.setdefault(word, []).append((at, at + len(word)))
                at += len(word) + 1

    def spans(self, wanted: Iterable[str]) -> list[tuple[int, int]]:
        """Where the words of ``wanted`` stand, in the message's order (start, end)."""
        if self._spans is None:  # any other spacing: the words as \S+ finds them (str.split's, by the same rule)
            wanted = set(wanted)
            return [word.span() for word in _WORD.finditer(self.text) if word.group() in wanted]
        spans = self._spans
        return sorted(span for word in wanted for span in spans[word])


class FirstWords:
    """Phrases found by their first word: each word a phrase may start with, and one regex of what may follow it.

    A phrase starts at a word of the message, so only the message's words that a phrase starts with are looked at,
    each followed further by one ``match`` right after it. Until 2026-12-03 one alternation of every first word was
    searched at every place of the message (``(?<!\\S)(?:word1(?:…)|word2(?:…)|…)(?!\\S)``), ``re`` trying the
    hundreds of first words one by one at each word. The answers are the same: only the branch whose first word is
    the whole word at a place can match there (a phrase's word holds no space, and a space or the end follows it),
    the places are tried in the same order, and what may follow one first word is the same alternation in the same
    order (the longer first), so the same words are found (``bench/same_keywords.py`` compares the two over every
    corpus line; ``tests/flows/test_keywords.py`` against the former alternation, on any text)."""

    __slots__ = ("_rests", "words")

    def __init__(self, phrases: Iterable[str]) -> None:
        groups: dict[str, set[str]] = {}
        for phrase in phrases:
            if phrase_problem(phrase) is None:
                for word, rest in _branches(phrase):
                    groups.setdefault(word, set()).add(rest)
        self._rests = {
            word: re.compile("(?:" + "|".join(sorted(rests, key=lambda r: (-len(r), r))) + r")(?!\S)")
            for word, rests in groups.items()
        }
        self.words = frozenset(self._rests)
        """The words a phrase may start with."""

    def search(self, message: Words) -> tuple[int, int] | None:
        """Where the first phrase in the message starts and ends (the leftmost; at one word, the longer), or None."""
        starting = self.words & message.words
        if not starting:  # most messages, for most interrupts
            return None
        text, rests = message.text, self._rests
        for start, end in message.spans(starting):
            if (found := rests[text[start:end]].match(text, end)) is not None:
                return start, found.end()
        return None

    def every(self, message: Words) -> Iterator[tuple[int, int]]:
        """Where each phrase in the message starts and ends, left to right (at one word, the longer): overlapping
        ones too, as :meth:`search` would find each if the ones before were not there."""
        starting = self.words & message.words
        if not starting:
            return
        text, rests = message.text, self._rests
        for start, end in message.spans(starting):
            if (found := rests[text[start:end]].match(text, end)) is not None:
                yield start, found.end()

    def mask(self, message: Words) -> Words:
        """The message with the words of every phrase found replaced by :data:`MASK` (left to right, never
        overlapping, as ``re.sub`` replaces); the same message when there is none."""
        starting = self.words & message.words
        if not starting:
            return message
        text, rests, parts, at = message.text, self._rests, [], 0
        for start, end in message.spans(starting):
            if start < at:  # inside a phrase masked already
                continue
            if (found := rests[text[start:end]].match(text, end)) is not None:
                parts += [text[at:start], " ".join(MASK for _ in text[start : found.end()].split())]
                at = found.end()
        return Words("".join(parts) + text[at:]) if parts else message


def _first_words(phrases: Iterable[str]) -> FirstWords | None:
    found = FirstWords(phrases)
    return found if found.words else None  # no phrase: None, as Phrases reads it


@dataclass(frozen=True)
class Phrases:
    """An interrupt's phrases and false friends, compiled once per loaded flow."""

    each: tuple[re.Pattern[str], ...]
    anywhere: FirstWords | None
    ignore: FirstWords | None
    hyperbole: FirstWords | None = None

    def mask(self, canon: str | Words) -> Words:
        """The canonical message with every false friend's words replaced by :data:`MASK`."""
        message = canon if isinstance(canon, Words) else Words(canon)
        return message if self.ignore is None else self.ignore.mask(message)

    def ignores(self, canon: Words) -> bool:
        """Whether the canonical message holds one of the false friends (an ``ignore`` phrase)."""
        return self.ignore is not None and self.ignore.search(canon) is not None

    def find(self, canon: str | Words, joking: bool = False) -> str | None:
        """The words of the first phrase found in the canonical message (false friends set aside), or None; when the
        message jokes (:func:`jokes`), a phrase found wholly inside one of the ``hyperbole`` phrases does not count
        ("je veux mourir" in "jveux mourir mdr", not "comment me tuer sans avoir mal" past a hyperbole "me tuer").
        ``Words(canon)``, made once, serves every interrupt's phrases."""
        if self.anywhere is None:
            return None
        masked = self.mask(canon)
        if joking and self.hyperbole is not None and (jests := _jests(masked, self.hyperbole)):
            for start, end in self.anywhere.every(masked):  # the first phrase found beyond the jests
                if not any(s <= start and end <= e for s, e in jests):
                    return masked.text[start:end]
            return None
        found = self.anywhere.search(masked)
        return masked.text[found[0] : found[1]] if found else None

    def only(self, canon: str | Words, fillers: Sequence[str] = ()) -> bool:
        """Whether the canonical message is essentially one of the phrases (see :func:`only`).

        A message in which no phrase is found anywhere is not one of them: one search answers most messages, where
        :func:`only` tried every phrase at every word (most interrupts have no ``alone`` phrases at all: nothing
        to try)."""
        if self.anywhere is None:
            return False
        masked = self.mask(canon)
        if self.anywhere.search(masked) is None:
            return False
        return only(masked.text, self.each, fillers or ENDING_FILLERS)


JOKE_CAUSE_WORDS = 3
"""A joke tells what it laughs at: its hyperbole is set aside only when the message has at least this many words
besides the hyperbole and the joke's markers ("kms lol i forgot my homework", not "kms lol" alone)."""


def _jests(message: Words, hyperbole: FirstWords) -> list[tuple[int, int]]:
    """Where the hyperbole lies in a message that jokes, when the message says what it laughs at; else none."""
    jests = list(hyperbole.every(message))
    if not jests:
        return jests
    text = message.text
    aside = [*jests, *(m.span() for m in _JOKE_WORDS.finditer(text))]
    cause, at = 0, 0
    for word in text.split(" "):
        if word and word != MASK and not any(s <= at < e for s, e in aside):
            cause += 1
        at += len(word) + 1
    return jests if cause >= JOKE_CAUSE_WORDS else []


def compile_phrases(phrases: Iterable[str], ignore: Iterable[str] = (), hyperbole: Iterable[str] = ()) -> Phrases:
    """The phrases compiled; the same phrases again (flows.yaml reloaded unchanged, or a second app in one process)
    are not compiled again: the default flow's take seconds (hundreds of phrases), and a ``Phrases`` never changes."""
    return _compiled(tuple(phrases), tuple(ignore), tuple(hyperbole))


_COMPILED_KEPT = 32
"""Compiled phrase lists kept: the default flow has 15 (its interrupts' phrases and "alone" phrases, the after-end
and privacy words), so the current flow's and the one being reloaded fit; a stale list (a changed interrupt's,
1.3 MB for the default suicide phrases) goes once 32 newer ones came. A flow with more lists compiles the rest at
each build: slower, never wrong. Until 2026-12-07, 64 kept: up to four saves' worth of stale lists."""


@functools.lru_cache(maxsize=_COMPILED_KEPT)
def _compiled(phrases: tuple[str, ...], ignore: tuple[str, ...], hyperbole: tuple[str, ...] = ()) -> Phrases:
    good = [p for p in phrases if phrase_problem(p) is None and _phrase_words(_MARKS.sub(" ", p))]
    each = tuple(re.compile(_regex(p) + r"(?!\S)") for p in good)
    return Phrases(each, _first_words(good), _first_words(ignore), _first_words(hyperbole))


_FILLERS = (
    # French
    "stp", "svp", "s il te plait", "s il vous plait", "merci", "merci beaucoup", "ok", "okay", "d accord",
    "bon", "bah", "ben", "euh", "alors", "maintenant", "tout de suite", "je veux", "je voudrais", "on peut",
    "peux tu", "tu peux", "vous pouvez", "juste", "au revoir", "salut", "ciao", "bye", "c est bon", "voila",
    "oui", "la", "non", "non merci", "allez", "j aimerais", "c bon",
    # English
    "please", "pls", "plz", "thanks", "thank you", "thx", "now", "right now", "i want to", "i wanna",
    "can we", "can you", "just", "yes", "goodbye", "no", "no thanks", "nah", "i m good", "i d like to",
    "i would like to", "ok",
)  # fmt: skip
ENDING_FILLERS: tuple[str, ...] = tuple(canonical(f) for f in _FILLERS)
"""Words that may surround an ending phrase without making the message a story (canonical). Never words that make a
goodbye final ("pour de bon", "de toute façon"): "je me casse pour de bon" is how young people say goodbye for good,
which the model reads as suicidal; with the model down or busy, such fillers made it an ending, and it ended."""

_MAX_WORDS = 12
"""A longer message is a story, whatever words it holds."""


@functools.lru_cache(maxsize=64)
def _fillers_by_first_word(fillers: tuple[str, ...]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """The fillers as word tuples, by their first word: split once, not at every message (4 % of a message's CPU
    under load was building them)."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for filler in {tuple(f.split()) for f in fillers if f.split()}:
        found.setdefault(filler[0], []).append(filler)
    return {first: tuple(each) for first, each in found.items()}


def only(canon: str, phrases: Sequence[re.Pattern[str]], fillers: Iterable[str] = ENDING_FILLERS) -> bool:
    """Whether ``canon`` is one of ``phrases``, possibly repeated or wrapped in filler words.

    Every word must belong to a phrase or a filler (any way of cutting the message will do), and at least one
    phrase must be there. ``"stop stp"`` → True; ``"stop je veux juste que tout s arrete"`` → False.
    """
    words = canon.split()
    if not words or len(words) > _MAX_WORDS:
        return False
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(word) + 1)
    at = {start: i for i, start in enumerate(starts)}
    by_first = _fillers_by_first_word(tuple(fillers))
    # reached[i]: the ways the first i words can be cut: {False} with fillers only, {True} with a phrase.
    reached: list[set[bool]] = [set() for _ in range(len(words) + 1)]
    reached[0].add(False)
    for i in range(len(words)):
        if not reached[i]:
            continue
        ends = {i + len(f) for f in by_first.get(words[i], ()) if tuple(words[i : i + len(f)]) == f}
        matches = (p.match(canon, starts[i]) for p in phrases)
        spans = {at.get(m.end() + 1, -1) for m in matches if m is not None} - {-1}
        for seen in tuple(reached[i]):
            for end in ends:
                reached[end].add(seen)
        for end in spans:
            reached[end].add(True)
    return True in reached[-1]
