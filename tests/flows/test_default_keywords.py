"""The default flows.yaml's keyword first line on young people's own words: each phrase added in the keyword round
of issue 9 flags what it was added for, and the false friend beside it does not (the model is not consulted).

Escalate, never silence: a false friend is written with the context that makes the words harmless, so the same
words without that context still flag (both are listed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.flows.reading import Risk
from gateway.flows.written import Written

FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(FLOWS_YAML))


def risk_of(engine: Engine, message: str) -> str:
    flag = engine.decide(message).flag
    return flag.risk.value if flag is not None else Risk.NONE.value


# The misfires reported after the last round: kept where a dangerous reading is plausible, a false friend where
# the harmless reading is the only one.
MISFIRES = [
    # "I won't be here on Monday" is how a goodbye is hinted at; a reason given for the absence makes it harmless.
    ("i will not be here on monday", "suicide"),
    ("i will not be here on monday because i'm away at my dad's", "none"),
    ("i won't be here on monday, i'm on holiday", "none"),
    # Parents not letting a teenager go out is a curfew; being kept in a room is not.
    ("mes parents veulent pas me laisser sortir", "none"),
    ("mes parents veulent pas me laisser sortir ce soir avec mes potes", "none"),
    ("mes parents veulent pas me laisser sortir de ma chambre depuis 3 jours", "abuse_home"),
    ("il veut pas me laisser sortir de sa voiture", "imminent_danger"),
    ("my parents won't let me go out tonight", "none"),
    # An unnamed "he" outside one's school is how a stalker or groomer is reported; a parent picking up is not.
    ("he's outside my school", "imminent_danger"),
    ("my mum is outside my school to pick me up", "none"),
    ("my friends are at my house for a sleepover", "none"),
    ("griffures en jouant avec mon chat", "none"),
    # Taking all one's pills is an overdose reading; taking one's pills is not.
    ("j'ai pris tous mes cachets ce matin", "suicide"),
    ("j'ai pris mes cachets ce matin", "none"),
]

FALSE_FRIENDS = [
    ("adieu le brevet blanc 🎉", "none"),
    ("bye forever school!! summer 🥳", "none"),
    ("c mon dernier soir en colo 😢", "none"),
    ("elle m'a dit adieu en partant en erasmus", "none"),
    ("g fait une overdose de kinder pendant les vacances mdr", "none"),
    ("dans mon jeu faut sauter du pont pour trouver le coffre", "none"),
    ("j'ai écrit une lettre pour ma mère pour la fête des mères", "none"),
    ("i wrote a card for my mum for mother's day", "none"),
    ("relapsed on sugar lol", "none"),
    ("relapsed into watching anime all night", "none"),
    ("mdr jme suis brulé avec la raclette", "none"),
    ("je me suis brulee en sortant les cookies du four", "none"),
    ("i hide my arms because of my eczema", "none"),
    ("new scars from my surgery", "none"),
    ("j'ai des traits sur les bras au feutre pour le match", "none"),
    ("il a un couteau pr couper le gateau mdr", "none"),
    ("she has a knife to cut the cake lol", "none"),
    ("il est devant chez moi pr me rendre mon sweat", "none"),
    ("il m'attend en bas pr aller au foot", "none"),
    ("il me suit sur ts les reseaux et m'ecrit h24", "none"),
    ("jsuis suivie par 1000 personnes sur tiktok", "none"),
    ("il me poursuit dans le jeu 😂", "none"),
    ("someone's banging on the door, its the pizza guy", "none"),
    ("mon pere me tape la honte devant mes potes", "none"),
    ("mon prof de maths est un tueur en série de moyennes, appelez la police", "none"),
    # games and streams: a weapon in a game, a follower on a platform, a friend coming for a party
    ("il a un fusil a pompe dans fortnite", "none"),
    ("they have knives in among us", "none"),
    ("someone's following me on twitch", "none"),
    ("he's coming to my house tonight for the party", "none"),
    ("il a une batte de baseball pour le match", "none"),
    ("my brother battered me at fifa", "none"),
    ("je me suis fait battre par mon frere a mario kart", "none"),
    ("mon frere me defonce a fifa", "none"),
    ("i feel v sad today", "none"),
]

# The same words where they are a risk: each false friend above leaves them flagged.
SAME_WORDS_AS_A_RISK = [
    ("adieu tout le monde", "suicide"),
    ("je me brule avec la plaque de cuisson expres quand je suis seule", "self_harm"),
    ("j'ai encore dessiné des lignes sur mes bras, mais pas au feutre", "self_harm"),
    ("il a un couteau", "imminent_danger"),
    ("il est devant chez moi et il veut pas partir", "imminent_danger"),
    ("someone's banging on the door and i'm alone", "imminent_danger"),
    ("mon pere me tape quand il a bu", "abuse_home"),
    ("appelez la police svp il est la", "imminent_danger"),
    ("relapsed", "self_harm"),
    ("he has a gun and he's in my house", "imminent_danger"),
    ("il a un couteau et il est dans le salon", "imminent_danger"),
    ("someone's following me", "imminent_danger"),
    ("he's coming to my house tonight", "imminent_danger"),
]

RISKS = [
    # suicide: SMS spellings, incitement, no fear of dying, leaving this world, goodbyes, giving things away
    ("jprefere crever que qu'ils voient ça", "suicide"),
    ("ils me disent de me tuer sur insta", "suicide"),
    ("they keep telling me to kys in the group chat", "suicide"),
    ("j'ai pas peur de mourir, j'ai peur de continuer", "suicide"),
    ("im not scared of dying anymore", "suicide"),
    ("i just want to log off from life permanently", "suicide"),
    ("ngl im bout to dip from this world", "suicide"),
    ("je veux quitter ce monde", "suicide"),
    ("i want it all to stop forever", "suicide"),
    ("si demain je réponds plus c'est normal", "suicide"),
    ("if i stop replying tomorrow thats why", "suicide"),
    ("j'ai déjà fait une tentative en 4e", "suicide"),
    ("i'm thinking about self delete", "suicide"),
    ("j'ai donné toutes mes affaires à ma soeur", "suicide"),
    ("gave my switch to my cousin, won't be needing it", "suicide"),
    ("j'ai écrit une lettre pour mes parents, elle est dans mon tiroir", "suicide"),
    ("i dont think ill be alive by the wekend", "suicide"),
    ("cant see myself making it to 16 tbh", "suicide"),
    ("jme vois pas finir l'année", "suicide"),
    ("jpp de vivre", "suicide"),
    ("je v me tuer", "suicide"),
    ("i want to k1ll myself", "suicide"),
    ("i wnt to d1e", "suicide"),
    ("s3lf h4rm again", "self_harm"),
    # self-harm: "not to die", streaks, hiding, hitting oneself, blades from sharpeners, relapse
    ("c pas pr mourir, c juste pr me calmer", "self_harm"),
    ("2 mois clean et g craqué", "self_harm"),
    ("30 days clean and today i broke it", "self_harm"),
    ("jcache mes bras en eps", "self_harm"),
    ("i wear long sleeves in pe so no one sees my arms", "self_harm"),
    ("i keep scratching till i bleed", "self_harm"),
    ("jme frappe qd jrate un truc", "self_harm"),
    ("wsh jme suis éclaté la main contre le mur exprès", "self_harm"),
    ("ca me soulage de me couper", "self_harm"),
    ("cutting helps me calm down", "self_harm"),
    ("jme sui refé des traits ce soir", "self_harm"),
    ("mes cuisses sont pleine de marques", "self_harm"),
    ("g cassé un taille crayon pr la lame", "self_harm"),
    ("broke a sharpener for the blade", "self_harm"),
    ("new scars again", "self_harm"),
    ("j'ai relapse hier soir", "self_harm"),
    # abuse at home: bruises explained, food withheld, locked in, secrets, SMS and dropped-g spellings
    ("ma copine a des bleus et elle dit que c'est son père", "abuse_home"),
    ("my friend always has bruises and says it's her dad", "abuse_home"),
    ("ma belle mere m'interdit de manger avec eux", "abuse_home"),
    ("ma mère me fait sauter des repas", "abuse_home"),
    ("my mom locks the fridge and i only get to eat once a day", "abuse_home"),
    ("mon daron menferme ds le garage qd il est enervé", "abuse_home"),
    ("my stepdad be chokin me when he's mad", "abuse_home"),
    ("he locks me in and hits me", "abuse_home"),
    ("le copain de ma mere il dit que ca reste entre nous", "abuse_home"),
    ("my mom's new bf keeps walking in when i'm changing", "abuse_home"),
    ("un pote a moi se fait frapper par sa mere avec un balai", "abuse_home"),
    ("je me suis fait battre par mon frere", "abuse_home"),
    ("i get hit by my dad when he's drunk", "abuse_home"),
    ("my old man battered me last night", "abuse_home"),
    ("ma daronne me tabasse", "abuse_home"),
    ("mon frere me defonce quand mes parents sont pas la", "abuse_home"),
    # imminent danger: asking for the police, unable to talk, someone drunk breaking things, found, online men here
    ("appelez la police", "imminent_danger"),
    ("call the police pls", "imminent_danger"),
    ("hurry pls", "imminent_danger"),
    ("jpeux pas parler il est a coté", "imminent_danger"),
    ("cant talk he's right next to me", "imminent_danger"),
    ("il est bourré il casse tout la", "imminent_danger"),
    ("hes breaking in", "imminent_danger"),
    ("il m'a trouvée", "imminent_danger"),
    ("locked in the basement", "imminent_danger"),
    ("the guy from discord is here", "imminent_danger"),
    ("il veut pas que jparte de chez lui", "imminent_danger"),
    ("jentends qqn dans l'appart", "imminent_danger"),
    ("il dit qu'il sait où j'habite et qu'il arrive ce soir", "imminent_danger"),
    ("dad's beating mum rn help", "imminent_danger"),
    ("y a qqn ds le jardin il regarde par la fenêtre", "imminent_danger"),
]


# The thirty-ninth round (docs/understanding.md): hyperbole said in jest does not interrupt; the same words meant, a
# plan or a goodbye behind the laughter, or laughter with a word saying it is serious, still do.
JEST = [
    ("kms lol i forgot my maths homework again", "none"),
    ("i want to die lol my mom posted my baby swim pics", "none"),
    ("je vais me pendre si on a encore du chou-fleur à la cantine 😂", "none"),
    ("jveux mourir mdr mon crush a vu mes stories", "none"),
    ("ptdr jvais me jeter par la fenêtre, j'ai liké une vieille photo de mon crush", "none"),
    ("ma daronne va me tuer mdr j'ai cassé son vase", "none"),
    ("my mum's gonna kill me lol i dyed the cat pink", "none"),
    # a denial is never a false friend by itself (docs/flows.md): it stays flagged, the model reads it too
    ("i'm not suicidal or anything, just stressed about exams", "suicide"),
    ("kms", "suicide"),
    ("kms lol", "suicide"),
    ("jveux crever 💀", "suicide"),
    ("i want to die", "suicide"),
    ("je vais me pendre", "suicide"),
    ("jveux mourir", "suicide"),
    ("mdr nn c pa une blague jte jure jveux vraiment crever", "suicide"),
    ("kms fr no lol they all hate me at school", "suicide"),
    ("comment me tuer sans avoir mal mdr", "suicide"),
    ("made a will in my notes app lol who wants my pc", "suicide"),
    ("un gars de ma classe a mis en bio unalive le 12/06 et tout le monde met des 💀", "suicide"),
    ("il va me tuer", "imminent_danger"),
    ("i'm not suicidal but i want to die", "suicide"),
    # the one word, alone: the model scored "suicide" 0.03 (2026-12-05); a listener would ask, 3114 is given
    ("suicide", "suicide"),
    ("Suicide...", "suicide"),
    ("le suicide ?", "suicide"),
    ("un exposé sur le suicide", "none"),
    ("suicide squad c'était nul", "none"),
]


@pytest.mark.parametrize(("message", "risk"), MISFIRES + FALSE_FRIENDS + SAME_WORDS_AS_A_RISK + RISKS + JEST)
def test_the_keyword_line_alone(engine: Engine, message: str, risk: str) -> None:
    assert risk_of(engine, message) == risk


# Invisible characters inside the words, as a copied text or a keyboard brings them, or as written to get past a
# filter: a zero-width space, a zero-width non-joiner, a word joiner, a soft hyphen, a byte order mark, a
# right-to-left mark. They are nothing a reader sees: the words are read as if they were not there.
INVISIBLE = ["\u200b", "\u200c", "\u2060", "\u00ad", "\ufeff", "\u200f"]


@pytest.mark.parametrize("mark", INVISIBLE, ids=lambda mark: f"U+{ord(mark):04X}")
@pytest.mark.parametrize(
    ("message", "risk"),
    [
        ("je vais me t{}uer", "suicide"),
        ("il a un cou{}teau", "imminent_danger"),
        ("mon daron me fr{}appe", "abuse_home"),
    ],
)
def test_an_invisible_character_inside_a_word_hides_nothing(engine: Engine, message: str, risk: str, mark: str) -> None:
    assert risk_of(engine, message.format("")) == risk
    assert risk_of(engine, message.format(mark)) == risk


# The same plain words of danger, in French and in English: the keyword line reads both (a young person who writes in
# English is not left to the model alone, which misses some of them: "he threatens to kill me" scores 0.23).
IN_BOTH_LANGUAGES = [
    ("il menace de me tuer", "imminent_danger"),
    ("he threatens to kill me", "imminent_danger"),
    ("he is threatening to kill me", "imminent_danger"),
    ("they're threatening to stab me", "imminent_danger"),
    ("she keeps threatening to kill me", "imminent_danger"),
]


@pytest.mark.parametrize(("message", "risk"), IN_BOTH_LANGUAGES)
def test_plain_words_of_danger_are_read_in_english_as_in_french(engine: Engine, message: str, risk: str) -> None:
    assert risk_of(engine, message) == risk


# Plain words of danger in the first languages of young people in France, as they type them (with and without their
# letters' marks, in Latin letters where they write so): where the model reads them weakly ("quero morrer" 0.28,
# "я убью себя" 0.04, "kendimi öldüreceğim" 0.005, "i feel like dying" 0.14: under suicide's 0.486), the keyword line
# reads them. Listed in flows.yaml under their own language, never a language the bot answers in.
IN_OTHER_LANGUAGES = [
    # Portuguese
    ("quero morrer", "suicide"),
    ("quero morre", "suicide"),
    ("vou me matar", "suicide"),
    ("não quero mais viver", "suicide"),
    ("nao quero viver mais", "suicide"),
    # Spanish
    ("voy a matarme", "suicide"),
    ("me quiero morir", "suicide"),
    ("quiero morir", "suicide"),
    ("ya no quiero vivir", "suicide"),
    # Russian, in Cyrillic and in Latin letters
    ("я убью себя", "suicide"),
    ("Я хочу умереть", "suicide"),
    ("больше не хочу жить", "suicide"),
    ("ya hochu umeret", "suicide"),
    ("ya ub'yu sebya", "suicide"),
    # Ukrainian
    ("я хочу померти", "suicide"),
    ("я вб'ю себе", "suicide"),
    ("я вбʼю себе", "suicide"),
    ("не хочу жити", "suicide"),
    # Turkish, with and without its letters
    ("ölmek istiyorum", "suicide"),
    ("olmek istiyorum", "suicide"),
    ("kendimi öldüreceğim", "suicide"),
    ("kendimi oldurecegim", "suicide"),
    ("intihar edeceğim", "suicide"),
    ("yaşamak istemiyorum", "suicide"),
    ("artik yasamak istemiyorum", "suicide"),
    # Arabic, in Arabic letters and in arabizi
    ("أريد أن أموت", "suicide"),
    ("اريد ان اموت", "suicide"),
    ("سأقتل نفسي", "suicide"),
    ("بدي موت", "suicide"),
    ("بغيت نموت", "suicide"),
    ("nmout 7sen", "suicide"),
    ("bdi mout", "suicide"),
    ("bghit nmout", "suicide"),
    # English
    ("i feel like dying", "suicide"),
    # He is going to kill me; help, as a whole message
    ("ele vai me matar", "imminent_danger"),
    ("él me va a matar", "imminent_danger"),
    ("он меня убьёт", "imminent_danger"),
    ("beni öldürecek", "imminent_danger"),
    ("socorro", "imminent_danger"),
    ("помогите!!", "imminent_danger"),
    ("imdat", "imminent_danger"),
]

# The same words in harmless sentences, and words close to them, stay ordinary.
IN_OTHER_LANGUAGES_ORDINARY = [
    ("quero comer", "none"),
    ("vou me matricular na escola", "none"),
    ("quiero dormir", "none"),
    ("я хочу спать", "none"),
    ("я хочу жить", "none"),
    ("olmak istiyorum", "none"),  # "I want to be": one letter from "ölmek"
    ("doktor olmak istiyorum", "none"),
    ("اريد ان انام", "none"),
    ("i feel like dying my hair pink", "none"),
    ("socorro fica em portugal", "none"),  # a word of help inside a sentence: only the whole message counts
]


@pytest.mark.parametrize(("message", "risk"), IN_OTHER_LANGUAGES + IN_OTHER_LANGUAGES_ORDINARY)
def test_plain_words_of_danger_in_other_languages(engine: Engine, message: str, risk: str) -> None:
    assert risk_of(engine, message) == risk


def test_words_of_danger_in_other_languages_are_no_words_of_a_language_the_bot_speaks(engine: Engine) -> None:
    # The language a conversation is answered in is read from the flow's words per language (written.py): the
    # phrases listed under a language the bot only reads add none, so "quero morrer" never switches it.
    flow = engine.flow
    interrupts = {
        name: spec.model_copy(update={"match": {k: v for k, v in spec.match.items() if k in flow.languages}})
        for name, spec in flow.interrupts.items()
    }
    assert any(set(spec.match) - set(flow.languages) for spec in flow.interrupts.values())
    assert Written(flow.model_copy(update={"interrupts": interrupts})).own == engine.written.own
