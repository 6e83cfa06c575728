"""The keyword first line: canonical forms (SMS spelling, accents, repeated letters), phrase marks, false
friends, and ending phrases that only end a message made of them."""

from __future__ import annotations

import gc
import re
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.flows import keywords
from gateway.flows.keywords import canonical, compile_phrases, phrase_problem, with_emoji_words


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Chuiii TROP mal, jveux mourrir!!", "je suis trop mal je veux mourir"),
        ("J'veux plus être là", "j veux plus etre la"),
        ("jsuis à bout, g envie d'en finir", "je suis a bout j ai envie d en finir"),
        ("je ne veux plus vivre", "je veux plus vivre"),
        ("STOOOOP", "stop"),
        ("kms tbh", "kill myself tbh"),
        ("im scared cuz he has a knife rn", "i m scared because he has a knife right now"),
        ("ma sœur", "ma soeur"),
        ("mon daron me frappe", "mon pere me frappe"),
        ("jprefere crever, il menferme", "je prefere crever il m enferme"),
        ("he be chokin me, tryna k1ll me", "he be choking me trying to kill me"),
        ("je v me tuer", "je vais me tuer"),
        ("appelle le 3114, 1000 fois", "appelle le 3114 1000 fois"),
    ],
)
def test_canonical(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


def test_emoji_written_instead_of_a_word_are_words_in_a_second_form_only() -> None:
    # canonical() drops every emoji, as before: the model's n-grams read it, and "rechute 🩹" is still "rechute" alone
    assert canonical("🩹🩹 encore") == "encore"
    assert with_emoji_words("🩹🩹 encore") == "emojibandage emojibandage encore"
    assert with_emoji_words("rechute 😞🩹") == "rechute emojibandage"
    assert with_emoji_words("rechute 😞") is None  # no such emoji: the two forms are the same
    found = compile_phrases(["🩹 🩹", "(rechute|craque) * 🩹"])
    assert found.find("emojibandage emojibandage encore") == "emojibandage emojibandage"
    assert found.find("rechute ce soir emojibandage") == "rechute ce soir emojibandage"
    assert found.find("rechute ce soir") is None and found.find("encore") is None


# Words of danger in another script, as young people in France write them in their first language: the canonical
# form keeps their letters (no case, no marks: Arabic's hamza, Cyrillic's breve), Turkish's dotless "ı" is read as
# the "i" most type for it ("canımı" as "canimi"), and the Ukrainian apostrophe "ʼ" as an apostrophe ("вбʼю", "вб'ю").
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Я ХОЧУ УМЕРЕТЬ", "я хочу умереть"),
        ("أريد أن أموت", "اريد ان اموت"),
        ("KENDİMİ ÖLDÜRECEĞİM", "kendimi oldurecegim"),
        ("canımı yakacağım", "canimi yakacagim"),
        ("YAŞAMAK İSTEMİYORUM", "yasamak istemiyorum"),
        ("я вбʼю себе", "я вб ю себе"),
        ("я вб'ю себе", "я вб ю себе"),
    ],
)
def test_other_scripts_keep_their_letters_in_the_canonical_form(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


def test_a_word_of_another_script_is_read_back_in_its_own_script() -> None:
    # The disguises' reading maps Cyrillic and Greek look-alikes to Latin letters inside a Latin word ("mоurir"); a
    # word written wholly in Cyrillic keeps its letters, so that its disguise ("умер*ть") and a hashtag of Cyrillic
    # words ("#хочуумереть") are read back as the Cyrillic phrase, as their Latin counterparts are.
    phrases = ["я хочу умереть", "je veux mourir"]
    disguises = keywords.Disguises(keywords.vocabulary(phrases))
    assert disguises.undo("я хочу умер*ть") == "я хочу умереть"
    assert disguises.undo("я хочу ум#реть") == "я хочу умереть"
    assert disguises.undo("je veux m\u043eurir") == "je veux mourir"  # a Cyrillic "о" inside a French word
    assert disguises.undo("je veux m \u043e u r i r") == "je veux mourir"
    assert disguises.undo("я хочу умереть") is None  # nothing disguised: the first reading is the same
    joined = keywords.Joined(phrases)
    assert joined.split("#хочуумереть") == ("хочу умереть", ("хочу умереть",))
    assert joined.split("#jeveuxm\u043eurir") == ("je veux mourir", ("je veux mourir",))


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [
        ("(a|b", "a '(' has no ')'"),
        ("a)b", "a ')' has no '('"),
        ("a|b", "a '|' outside parentheses: write alternatives as (a|b)"),
        ("((a|b)|c)", "alternatives '( | )' cannot be nested"),
        ("(a|) b", "an alternative is empty: every choice in (a|b) needs words"),
        ("* couteau", "'*' stands between words, not at the start or the end"),
        ("il a *", "'*' stands between words, not at the start or the end"),
        ("(a|*b)", "'*' cannot stand inside parentheses"),
        ("!!", "the phrase has no words"),
    ],
)
def test_phrase_problems(phrase: str, problem: str) -> None:
    assert phrase_problem(phrase) == problem


@pytest.mark.parametrize("phrase", ["i (just )?took", "cut+", "[a-z]+ me", "^stop$", "a{2}", "me\\s+frappe"])
def test_a_regular_expressions_marks_are_refused_not_read_as_punctuation(phrase: str) -> None:
    """Read as punctuation they would vanish: ``i (just )?took`` would ask for "just" and never match "i took"."""
    problem = phrase_problem(phrase)
    assert problem is not None and "is not a mark here" in problem


def test_good_phrases_have_no_problem() -> None:
    assert phrase_problem("(mon|ma) (pere|mere) * me frappe") is None
    assert phrase_problem("j'ai peur") is None


def test_alternatives_and_gaps() -> None:
    phrases = compile_phrases(["(il|elle) a * (couteau|arme)", "(mon|ma) (pere|beau pere) me frappe"])
    assert phrases.find(canonical("il a un couteau")) == "il a un couteau"
    assert phrases.find(canonical("elle a sorti un grand couteau !")) == "elle a sorti un grand couteau"
    assert phrases.find(canonical("Mon beau-père me frappe")) == "mon beau pere me frappe"
    assert phrases.find(canonical("il a dit que tout le couteau était à lui")) is None  # a gap of 3 words at most
    assert phrases.find(canonical("il a une armoire")) is None  # whole words
    assert phrases.find(canonical("il a couteau")) == "il a couteau"


def test_phrases_sharing_a_first_word() -> None:
    """The phrases are searched as one regex, a branch per first word: each still matches as written."""
    phrases = compile_phrases(
        [
            "me pendre",
            "me (jeter|balancer) * pont",
            "(je vais|vais) sauter",
            "adieu",
            "je * finir",
            "mes (cachets|medocs)",
        ]
    )
    assert phrases.find(canonical("je vais me jeter du haut du pont")) == "me jeter du haut du pont"
    assert phrases.find(canonical("jvais sauter")) == "je vais sauter"
    assert phrases.find(canonical("Adieu.")) == "adieu"
    assert phrases.find(canonical("adieux les vacances")) is None  # whole words
    assert phrases.find(canonical("je veux en finir")) == "je veux en finir"
    assert phrases.find(canonical("mes médocs")) == "mes medocs"
    assert phrases.find(canonical("mes cours me pendre")) == "me pendre"
    assert phrases.find(canonical("me jeter")) is None


_WORDS = ("je", "me", "mes", "veux", "vais", "pont", "pendre", "sauter")
_PHRASE = st.lists(
    st.one_of(
        st.sampled_from(_WORDS),
        st.lists(st.sampled_from(_WORDS), min_size=2, max_size=3).map(lambda w: f"({'|'.join(w)})"),
    ),
    min_size=1,
    max_size=3,
).map(lambda units: " * ".join(units) if len(units) == 3 else " ".join(units))


@settings(max_examples=300, deadline=None)
@given(st.lists(_PHRASE, min_size=1, max_size=6), st.lists(st.sampled_from(_WORDS), max_size=8))
def test_one_branch_per_first_word_finds_what_each_phrase_finds(phrases: list[str], words: list[str]) -> None:
    message = " ".join(words)
    each = re.compile(r"(?<!\S)(?:" + "|".join(keywords._regex(p) for p in phrases) + r")(?!\S)")
    assert (compile_phrases(phrases).find(message) is None) == (each.search(message) is None)


def test_false_friends_set_words_aside() -> None:
    phrases = compile_phrases(["(vont|va) me tuer", "je me coupe"], ["(va|vont) me tuer si", "je me coupe la frange"])
    assert phrases.find(canonical("mes parents vont me tuer si ils voient mon bulletin")) is None
    assert phrases.find(canonical("je me coupe la frange demain")) is None
    assert phrases.find(canonical("il va me tuer")) == "va me tuer"
    # a false friend never hides the rest of the message
    assert phrases.find(canonical("je me coupe la frange, et après je me coupe")) == "je me coupe"


@pytest.mark.parametrize(
    ("message", "joking"),
    [
        ("kms lol i forgot my homework", True),
        ("jveux mourir mdr mon crush a vu mes stories", True),
        ("MDRRR je vais me pendre", True),
        ("je vais me pendre 😂", True),  # emoji: canonical drops them, the raw message still has them
        ("jvais crever 💀", True),
        ("hahaha i'm going to kill myself", True),
        ("jk i want to die", True),
        ("je veux mourir", False),
        ("lollipop", False),  # a marker is a whole word
        ("mdr nn c pa une blague jte jure jveux vraiment crever", False),  # serious words keep it serious
        ("kms fr no lol they all hate me", False),
        ("lol i'm not joking i want to die", False),
        ("je rigole pas je veux mourir", False),
    ],
)
def test_a_message_jokes_when_it_laughs_and_does_not_say_it_is_serious(message: str, joking: bool) -> None:
    assert keywords.jokes(message, canonical(message)) is joking


def test_a_phrase_inside_a_hyperbole_does_not_count_in_a_message_that_jokes() -> None:
    phrases = compile_phrases(
        ["veux mourir", "me tuer", "comment me tuer sans", "made a will"], hyperbole=["je veux mourir", "me tuer"]
    )
    joking = canonical("jveux mourir mdr mon crush a vu mes stories")
    assert phrases.find(joking, joking=True) is None
    assert phrases.find(joking) == "veux mourir"  # not joking: as ever
    # a longer phrase reaching beyond the hyperbole still counts, and so does a phrase elsewhere in the message
    assert phrases.find(canonical("comment me tuer sans avoir mal mdr"), joking=True) == "comment me tuer sans"
    assert phrases.find(canonical("je vais me tuer lol, made a will"), joking=True) == "made a will"
    # a joke that says nothing else: as ever ("kms lol" alone is not known to be a joke)
    assert phrases.find(canonical("jveux mourir mdr"), joking=True) == "veux mourir"
    assert phrases.find(canonical("jveux mourir mdr trop"), joking=True) == "veux mourir"
    assert phrases.find(canonical("jveux mourir mdr trop la honte"), joking=True) is None
    # no hyperbole in the message: found as ever
    assert phrases.find(canonical("tu veux mourir lol"), joking=True) == "veux mourir"
    assert compile_phrases(["me tuer"]).find(canonical("je vais me tuer"), joking=True) == "me tuer"


@pytest.mark.parametrize(
    "message", ["stop", "STOP!!", "stop stp", "stooop", "stop stop", "ok stop merci", "je veux arrêter la conversation"]
)
def test_an_ending_phrase_alone(message: str) -> None:
    phrases = compile_phrases(["stop", "je veux arreter", "arreter la conversation"])
    assert phrases.only(canonical(message))


@pytest.mark.parametrize(
    "message",
    [
        "",
        "stp",
        "je lui ai dit stop mais il continue",
        "stop je veux juste que tout s'arrête",
        "stop " * 13,
        "stopper",
        "il faut que ça stop",
    ],
)
def test_an_ending_phrase_in_a_story(message: str) -> None:
    assert not compile_phrases(["stop"]).only(canonical(message))


def test_only_accepts_a_filler_list() -> None:
    assert keywords.only("fin svp", compile_phrases(["fin"]).each)
    assert not keywords.only("fin svp", compile_phrases(["fin"]).each, fillers=["merci"])


def _reference(phrases: list[str]) -> re.Pattern[str] | None:
    """The matching before 2026-12-03, as the reference: one alternation of every first word, searched at every
    place of the message (``re`` tries the branches in order; at one place the longer branch first)."""
    groups: dict[str, set[str]] = {}
    for phrase in phrases:
        if phrase_problem(phrase) is None:
            for word, rest in keywords._branches(phrase):
                groups.setdefault(word, set()).add(rest)
    if not groups:
        return None
    branches = (
        re.escape(word) + "(?:" + "|".join(sorted(rests, key=lambda r: (-len(r), r))) + ")"
        for word, rests in sorted(groups.items())
    )
    return re.compile(r"(?<!\S)(?:" + "|".join(branches) + r")(?!\S)")


# words that share beginnings and phrases' words, a false friend's mask, and the spaces str.split and \S both know
_TEXT_WORDS = ("je", "jes", "j", "me", "mes", "veux", "vais", "pont", "pendre", "sauter", "e", "|", "x1")
_SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\x1c", " \u3000 "])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    """Any spacing (a canonical form's one space, or others), words from the phrases' and others."""
    words = draw(st.lists(st.sampled_from(_TEXT_WORDS), max_size=9))
    if draw(st.booleans()):
        return " ".join(words)
    spaces = draw(st.lists(_SPACES, min_size=len(words) + 1, max_size=len(words) + 1))
    return "".join(s + w for s, w in zip(spaces, [*words, ""], strict=True))


@settings(max_examples=500, deadline=None)
@given(st.lists(_PHRASE, min_size=1, max_size=6), st.lists(_PHRASE, max_size=3), _texts())
def test_first_words_find_and_mask_what_the_former_alternation_did(
    phrases: list[str], ignore: list[str], message: str
) -> None:
    compiled = compile_phrases(phrases, ignore)
    anywhere, false_friends = _reference(phrases), _reference(ignore)
    masked = message
    if false_friends is not None:
        masked = false_friends.sub(lambda m: " ".join(keywords.MASK for _ in m.group(0).split()), message)
    found = anywhere.search(masked) if anywhere is not None else None
    assert compiled.mask(message).text == masked
    assert compiled.find(message) == (found.group(0) if found else None)
    assert compiled.find(keywords.Words(message)) == compiled.find(message)
    assert compiled.only(message) == (found is not None and keywords.only(masked, compiled.each))


def test_the_words_of_phrases_a_reload_replaced_are_not_kept() -> None:
    """A flow's phrases are read into words once per process (:func:`keywords.vocabulary`, :class:`keywords.Joined`);
    those of phrases no flow uses any more are not kept beyond the last two lists. Each save of a changed flows.yaml
    makes new lists: until 2026-12-07 the last 16 were kept (3 MB each for the default flow's hand-off phrases), ~50 MB
    held for good after 16 saves, where a version forgotten (``FlowSet.prune``) was to leave nothing."""
    first = [f"je veux mourir {word}" for word in ("zorglub", "zorglab")]
    vocabulary = weakref.ref(keywords.vocabulary(first))
    joined = weakref.ref(keywords.Joined(first)._parts)
    for n in range(3):  # three saves since: a phrase changed each time
        later = [f"je veux mourir zorg{n}"]
        keywords.vocabulary(later)
        keywords.Joined(later)
    gc.collect()
    assert vocabulary() is None
    assert joined() is None
