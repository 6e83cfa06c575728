"""The default flows.yaml's keyword first line on words of danger typed disguised, as young people type them on a
phone: digits and signs for letters, letters spaced or dotted, look-alike letters, SMS grammar. Each disguise is
read where its plain spelling is (``keywords.Disguises``: a second reading that may only add), and the ordinary
messages with digits, codes and scores beside them stay what they were (the model is not consulted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.flows.reading import Risk

FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(FLOWS_YAML))


def risk_of(engine: Engine, message: str) -> str:
    flag = engine.decide(message).flag
    return flag.risk.value if flag is not None else Risk.NONE.value


def same_as_plain(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    assert risk_of(engine, plain) == risk, plain  # the plain spelling is read: the disguise must be too
    assert risk_of(engine, disguised) == risk, disguised


DIGITS_AND_SIGNS = [
    ("j3 v3ux m0urir", "je veux mourir", "suicide"),
    ("je vais m3 tu3r", "je vais me tuer", "suicide"),
    ("je pense au su1c1d3", "je pense au suicide", "suicide"),
    ("je pense au su*cide", "je pense au suicide", "suicide"),
    ("je veux être m@rte", "je veux être morte", "suicide"),
    ("JE VEUX MOUR!R!!!", "JE VEUX MOURIR!!!", "suicide"),
    ("je veux m0urir😭", "je veux mourir😭", "suicide"),
    ("je me sc4rifie", "je me scarifie", "self_harm"),
    ("mon p3re me fr@ppe", "mon pere me frappe", "abuse_home"),
    ("il a un c0uteau", "il a un couteau", "imminent_danger"),
    ("i w4nt to d13", "i want to die", "suicide"),
    ("k1ll mys3lf", "kill myself", "suicide"),
    ("i want to un@live myself", "i want to unalive myself", "suicide"),
    ("im su1c1dal", "im suicidal", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), DIGITS_AND_SIGNS)
def test_digits_and_signs_for_letters(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


SPACED = [
    ("je pense au s u i c i d e", "je pense au suicide", "suicide"),
    ("je pense au s.u.i.c.i.d.e", "je pense au suicide", "suicide"),
    ("je veux m-o-u-r-i-r", "je veux mourir", "suicide"),
    ("je me s c a r i f i e", "je me scarifie", "self_harm"),
    ("i'm s u i c i d a l", "i'm suicidal", "suicide"),
    ("i want to d i e", "i want to die", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), SPACED)
def test_letters_spaced_or_dotted(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


LOOK_ALIKES = [
    ("je veux m\u043eurir", "je veux mourir", "suicide"),  # a Cyrillic "о"
    ("je pense au suicid\u0435", "je pense au suicide", "suicide"),  # a Cyrillic "е"
    ("je veux m\u03bf\u03c5rir", "je veux mourir", "suicide"),  # Greek omicron and upsilon
    ("i w\u0430nt to die", "i want to die", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), LOOK_ALIKES)
def test_look_alike_letters(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


DOUBLED = [
    ("je veux mouriir", "je veux mourir", "suicide"),
    ("je vais me tuuer", "je vais me tuer", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), DOUBLED)
def test_a_doubled_i_or_u(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


# Ordinary messages with digits, signs and single letters: never a risk, disguised or not.
ORDINARY = [
    "je suis mort de rire", "je suis m0rt de rire", "j'ai 13 ans", "j'ai 13ans", "1v1 moi sur fortnite", "mdr",
    "t1 le film", "t1 le film était trop bien", "score 3-2 on a gagné", "rdv le 12/03 à 14h30", "ça coûte 12€50",
    "mon code c'est AB12CD", "mon code c A3F9-K7", "appelle moi au 06 12 34 56 78", "+33612345678",
    "je suis en 5e", "on s'est vus à 4h du mat", "h24 sur insta", "c a d que je viens demain",
    "y a t il quelqu'un", "l1 ou l'autre", "jvais au ciné 2m1", "b1 joué", "self-harm awareness week at school",
    "my email is m0rt1n@gmail.com", "GG 3z w1n", "ma mere va me tu3r si elle voit mon bulletin",
    "jvais m3 tu3r mdr j'ai oublié mes devoirs pour demain", "my mum is gonna k1ll me lol i broke her vase again",
    "s " * 3000, "a1b1c " * 1000,
]  # fmt: skip


@pytest.mark.parametrize("message", ORDINARY, ids=lambda m: m[:40])
def test_ordinary_messages_stay_ordinary(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == "none"


# SMS grammar: a verb's "-er" written "é" after "me" ("me tué"), "j'" and "d'" before a consonant ("j'me", "d'mourir").
SMS_GRAMMAR = [
    ("je vais me tué", "je vais me tuer", "suicide"),
    ("jai envi de me tué franchement", "jai envi de me tuer franchement", "suicide"),
    ("je veux me suicidé", "je veux me suicider", "suicide"),
    ("c plus possible je vai me jeté sous un train", "c plus possible je vai me jeter sous un train", "suicide"),
    ("j'ai recommencé a me brulé avec le fer", "j'ai recommencé a me bruler avec le fer", "self_harm"),
    ("il veut pas me laissé partir", "il veut pas me laisser partir", "imminent_danger"),
    ("j'ai envie d'me tuer", "j'ai envie de me tuer", "suicide"),
    ("envie d'mourir", "envie de mourir", "suicide"),
    ("j me coupe", "je me coupe", "self_harm"),
    ("j'me suis encore fait du mal", "je me suis encore fait du mal", "self_harm"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), SMS_GRAMMAR)
def test_sms_grammar(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


# "é" stays a participle where it is one: tired ("crevé"), killed in a game, "ça me tue" (no accent).
SMS_ORDINARY = [
    "je suis crevé", "j'ai envie de dormir je suis crevé", "il m'a tué dans le jeu", "ça me tue",
    "mdr il me tue ce mec", "je me suis réveillé à midi", "d'la musique toute la nuit", "j'suis dans l'bus",
]  # fmt: skip


@pytest.mark.parametrize("message", SMS_ORDINARY)
def test_sms_grammar_ordinary(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == "none"


# A word cut by a hyphen or an underscore ("sui-cide", "mour_ir"): read as the word when its parts are not words of
# their own ("self-harm", "beau-père" and "me-tuer" are two words, as written).
CUT = [
    ("je pense au sui-cide", "je pense au suicide", "suicide"),
    ("je pense au sui_cide", "je pense au suicide", "suicide"),
    ("je veux mour-ir", "je veux mourir", "suicide"),
    ("j'ai envie de me sui-cider", "j'ai envie de me suicider", "suicide"),
    ("je me scari-fie", "je me scarifie", "self_harm"),
    ("im sui-cidal", "im suicidal", "suicide"),
    ("i want to k-ill myself", "i want to kill myself", "suicide"),
    ("je vais me-tuer", "je vais me tuer", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), CUT)
def test_a_word_cut_by_a_hyphen_or_an_underscore(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


CUT_ORDINARY = [
    "self-harm awareness week at school", "c'est-à-dire", "peut-être demain", "rendez-vous au parc", "le week-end",
    "mon porte-monnaie", "mort-de-rire", "@mourir_de_rire", "mi-temps", "sous-sol", "t-shirt", "e-mail",
    "un arc-en-ciel", "mon_pseudo_insta", "sui-vant",
]  # fmt: skip


@pytest.mark.parametrize("message", CUT_ORDINARY)
def test_words_joined_by_a_hyphen_or_an_underscore_stay_ordinary(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == "none"


# Repeated punctuation and quotation marks are punctuation: read as the plain wording already (kept so).
PUNCTUATED = [
    ("je veux mourir!!!!!", "je veux mourir", "suicide"),
    ("je pense au suicide???", "je pense au suicide", "suicide"),
    ("je veux mourir?!?!?!", "je veux mourir", "suicide"),
    ("jveux mourir...", "jveux mourir", "suicide"),
    ("j'ai envie de « mourir »", "j'ai envie de mourir", "suicide"),
    ('je veux "mourir"', "je veux mourir", "suicide"),
    ("j’ai envie d’mourir", "j'ai envie de mourir", "suicide"),
    ("je me scarifie!!!!!", "je me scarifie", "self_harm"),
    ("i want to die!!!", "i want to die", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), PUNCTUATED)
def test_repeated_punctuation_and_quotation(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


# A word broken over a line break ("sui\ncide": typed so, or copied from a wrapped text): read whole when its parts
# are not words of their own ("je veux\nmourir" is two words, read as such already).
BROKEN = [
    ("je pense au sui\ncide", "je pense au suicide", "suicide"),
    ("je veux mou\nrir", "je veux mourir", "suicide"),
    ("envie de mou\r\nrir", "envie de mourir", "suicide"),
    ("je me scari\nfie", "je me scarifie", "self_harm"),
    ("i'm sui\ncidal", "i'm suicidal", "suicide"),
    ("je veux\nmourir", "je veux mourir", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), BROKEN)
def test_a_word_broken_over_a_line_break(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


BROKEN_ORDINARY = ["je suis\nfatiguée", "bonne\nnuit", "mort\nde rire", "le sui\nvant", "je veux\nmourir de rire"]


@pytest.mark.parametrize("message", BROKEN_ORDINARY)
def test_words_on_two_lines_stay_ordinary(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == "none"


# An emoji inside a word, for a letter or between two ("m😭urir", "su💀icide"): one sign hiding a letter, as "su*cide".
EMOJI_INSIDE = [
    ("je veux m😭urir", "je veux mourir", "suicide"),
    ("je pense au su💀icide", "je pense au suicide", "suicide"),
    ("je pense au su😭😭cide", "je pense au suicide", "suicide"),
    ("envie de m🖤urir", "envie de mourir", "suicide"),
    ("je veux m❤️urir", "je veux mourir", "suicide"),
    ("je me scari🩸fie", "je me scarifie", "self_harm"),
    ("i want to d😭ie", "i want to die", "suicide"),
    ("im suici👍🏽dal", "im suicidal", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), EMOJI_INSIDE)
def test_an_emoji_inside_a_word(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


EMOJI_ORDINARY = ["j'suis m💀rt de rire", "c😭 trop bien", "bis😘ous", "j'❤️ ma mère", "t😂t", "mdr😂😂 je suis mort"]


@pytest.mark.parametrize("message", EMOJI_ORDINARY)
def test_emoji_inside_ordinary_words_stay_ordinary(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == "none"


# Words written joined, in a hashtag or not ("#jeveuxmourir", "jveuxmourir"): read as the phrase they spell, only
# when the phrase found takes in every word of the joined token (never a word of danger pulled out of a longer one).
JOINED = [
    ("#jeveuxmourir", "je veux mourir", "suicide"),
    ("jeveuxmourir", "je veux mourir", "suicide"),
    ("jveuxmourir", "jveux mourir", "suicide"),
    ("#jveuxcrever", "jveux crever", "suicide"),
    ("#envieden finir", "envie d'en finir", "suicide"),
    ("jvaismetuer ce soir", "jvais me tuer ce soir", "suicide"),
    ("#jeveuxmourir #triste #seule", "je veux mourir triste seule", "suicide"),
    ("#jeveuxmourir😭", "je veux mourir😭", "suicide"),
    ("#monperemefrappe", "mon pere me frappe", "abuse_home"),
    ("#iwanttodie", "i want to die", "suicide"),
    ("#killmyself", "kill myself", "suicide"),
    ("wanttodie tbh", "want to die tbh", "suicide"),
]


@pytest.mark.parametrize(("disguised", "plain", "risk"), JOINED)
def test_words_written_joined(engine: Engine, disguised: str, plain: str, risk: str) -> None:
    same_as_plain(engine, disguised, plain, risk)


# Ordinary hashtags, words, addresses and names: never a risk. A joke is read as its plain wording's ("jveux mourir
# mdr j'ai oublié mes devoirs" is a joke, joined or not).
JOINED_ORDINARY = [
    "#mdr", "#jpp", "#harcelement", "#balancetonporc", "mortderire", "jsuismortdrire", "#instagram", "#mortderire",
    "https://www.tiktok.com/@jeveuxmourir/video/123", "www.jeveuxmourir.fr", "@jeveuxmourir", "@mourir_de_rire",
    "jeveuxmourir@gmail.com", "mon code c'est JEVEUXMOURIR42", "0612345678", "+33612345678", "#bonjour",
    "#surtout", "#toutlemonde", "#fyp #pourtoi #viral", "#jeveuxmourirderire", "#mourirderire",
    "#jveuxmourir mdr j'ai oublié mes devoirs pour demain", "#tbt #vacances #plage", "#metoo", "#jemelevelematin",
    "#jesuischarlie", "#onveutlavérité", "#nofilter", "#selfharmawarenessweek",
]  # fmt: skip


@pytest.mark.parametrize("message", JOINED_ORDINARY)
def test_ordinary_joined_words_stay_ordinary(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == "none"
