"""``gateway flows classify``'s decision for one message, and every example message of issue 9 through the
default flow: risks caught in young people's words, false friends that must not alarm, stop only alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.flows.classify import Classification, classify, classify_lines
from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.flows.reading import RISKS, Reading, Risk

FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(FLOWS_YAML))


RISKY: list[tuple[str, str, Risk, str, tuple[str, ...]]] = [
    # message, interrupt, risk, priority, partners
    ("jveux plus être là", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("c'est mon dernier message", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("kms", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("KMS fr", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("stop je veux juste que tout s'arrête", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("chui a bout jpp jvais avaler tous mes médocs ce soir", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("il a un couteau", "danger_now", Risk.IMMINENT_DANGER, "urgent", ("emergency",)),
    ("he's got a knife", "danger_now", Risk.IMMINENT_DANGER, "urgent", ("emergency",)),
    (
        "quand ma mère est pas là mon beau-père vient dans mon lit",
        "abuse_home",
        Risk.ABUSE_HOME,
        "high",
        ("119",),
    ),
    ("mon daron me frappe quand il a bu", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("mon pote veut se suicider il me l'a dit sur snap", "suicide_friend", Risk.SUICIDE, "urgent", ("3114",)),
    ("my friend wants to kill herself", "suicide_friend", Risk.SUICIDE, "urgent", ("3114",)),
    ("je me scarifie depuis 2 mois", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("médocs", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("le pont.", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("the bridge", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("j'ai acheté une corde", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("i bought a rope", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("mon daron m'a mis une gifle hier soir", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("j'dis à la prof que c'est le judo mais non", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("si je le dis papa ira en prison", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("if i tell anyone it'll be my fault", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("i got hit at home again", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    # an overdose taken, or its dose asked about (a means named: the most urgent of the indirect wordings)
    ("j'ai pris trop de doliprane y a 20 min", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("a partir de cb de comprimés c mortel ?", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("i've had way too many painkillers tonight", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("how many tylenol is too much", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    # seventeenth round (2026-12-02): suicide phrased indirectly: the pain or the height asked about, ways looked up
    ("question sérieuse, ça fait mal de se noyer ?", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("si on se pend est-ce que ça fait mal longtemps", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("c'est haut le 9e ? si je saute du 9e c fini ?", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("will it hurt if i jump from the 7th floor", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("does dying hurt? asking for real", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("been googling painless ways to go all night", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("i looked up how high the bridge is near the station", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("looking up ways to end it at 3am again", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("jsuis o bord du pon", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    # goodbyes and arrangements: the world, the other side, a will, who gets what, pets and things given, absolution
    ("bye world, thanks for nothing", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("wrote my will on my phone, my sister gets the ps4", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("wrote down who gets what in my notebook", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    (
        "my cousin sent a goodbye video to our group chat and now she's offline",
        "suicide",
        Risk.SUICIDE,
        "urgent",
        ("3114",),
    ),
    (
        "gave my hamster to my best friend and my switch to my brother",
        "suicide",
        Risk.SUICIDE,
        "urgent",
        ("3114",),
    ),
    (
        "j'ai donné mon lapin à ma voisine et mes jeux à mon petit frère",
        "suicide",
        Risk.SUICIDE,
        "urgent",
        ("3114",),
    ),
    ("if i'm not online tomorrow it's not your fault ok", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("idk if i'll be alive next week tbh", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    # tired of existing, comforted by the idea of death, rather disappear, dialect and slang, a voice saying jump
    ("chui fatiguée d'exister en vrai", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("je suis épuisé de respirer", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("so tired of breathing tbh", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("l'idée de mourir me calme le soir", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("the thought of not being here comforts me", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("s'il envoie les photos je préfère disparaître", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    (
        "je préférerais encore me supprimer que de revoir ces photos",
        "suicide",
        Risk.SUICIDE,
        "urgent",
        ("3114",),
    ),
    ("everyone better off widout me fr", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("i nah wan live no more", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("id rather be dead than go back there", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("im gonna end it this weekend", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("tuk loads of my dads pils an hour ago", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("la voix dans ma tête me dit de sauter", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("the voices in my head keep telling me to jump", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    # self-harm: relapse counted in days, marks hidden, hitting, biting, pinching oneself, burns by a dare, someone else
    ("day 0 again. i was doing so well", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("back to day one, the blade won", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("rechute... 3 mois foutus", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("je suis en rechute depuis hier", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("cuttin agin, sorry", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("je garde mes manches longues même quand il fait 35", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("my hoodie isn't a fashion choice if u get me", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("cant let anyone see my wrists at the pool", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("je me pince tellement fort que ça laisse des bleus", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    (
        "j'me frappe pour me punir quand j'ai une mauvaise note",
        "self_harm",
        Risk.SELF_HARM,
        "urgent",
        ("3114",),
    ),
    ("je me punis toute seule le soir", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("i punched myself in the head after the match", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("bit my hand so hard it bruised", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("bite my hands so i don't scream", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    (
        "des 6e se brûlent la peau avec une gomme pour un défi",
        "self_harm",
        Risk.SELF_HARM,
        "urgent",
        ("3114",),
    ),
    (
        "kids in my year burn themselves with deodorant for a dare",
        "self_harm",
        Risk.SELF_HARM,
        "urgent",
        ("3114",),
    ),
    ("la lame chauffée au briquet c'est devenu mon truc", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("ma soeur s'est remise à se faire du mal", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("my gf cuts and she hides it under bracelets", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    (
        "my brother bangs his head against the wall when he's upset",
        "self_harm",
        Risk.SELF_HARM,
        "urgent",
        ("3114",),
    ),
    (
        "elle poste des photos de ses coupures en story privée",
        "self_harm",
        Risk.SELF_HARM,
        "urgent",
        ("3114",),
    ),
    # no strength left, sleeping and not waking, a goodbye to everyone, pills at hand, nobody would notice
    ("jai plus la force de me battre, vraiment plus", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("elle veut s'endormir et ne jamais se réveiller", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("si je me réveille pas demain c'est pas grave", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("bientôt vous serez débarrassés de moi", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("c'était sympa de vous connaître les gars", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("elle a envoyé un vocal d'au revoir à sa mère", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("j'ai les cachets de mon père dans ma poche", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("je pense qu'à en finir depuis lundi", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("personne remarquerait si je partais", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("ce serait plus simple si j'existais plus", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("goodbye everyone, it was a good run", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("it was nice knowing u all", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("i just want to sleep forever", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("he says he won't be around for christmas", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("tell my brother i love him", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("dying would be a relief honestly", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("been planning my exit for a while", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("kept standing by the railway line last night", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("wrote letters for everyone last night", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    # sleeves in summer, heads and fists against walls, again, small burns, relief, 'it's the cat' (no cat), a hair tie
    ("je mets des manches longues en plein juillet", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("elle se tape la tête contre les murs quand elle stresse", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("je me suis encore coupée hier soir", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("je me suis fait des petites brûlures sur le poignet", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("ça me soulage de me faire mal", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("il se fait des marques au compas en cours", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("il dit que c'est le chat mais on n'a pas de chat", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("my sister says it's the cat but we don't have a cat", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("i snap the hair tie on my wrist till it stings", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("i punch my thighs until they go purple", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("how do i hide cuts from my mum", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    (
        "i've been cutting since i was 12",
        "self_harm",
        Risk.SELF_HARM,
        "urgent",
        ("3114",),
    ),
    # twenty-first round (2026-12-02): wanting to be dead or to join the dead, no solution but dying, not here
    # tomorrow in SMS, deleting oneself, the rails, painless ways and drowning asked about, a last note, a decision
    # and a goodbye, "if I die give…", told to kill oneself and agreeing, darija
    ("jvoudrais etre morte depuis que la photo tourne", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("jveux rejoindre papy là-haut", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("je vois aucune solution à part mourir", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("jserai plu là dmain de tte facon", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("je compte me supprimer ce soir", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("je pense tout le temps à mourir", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("si je disparaissais personne remarquerait", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("ma décision est prise, merci pour tout", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("si je meurs vous donnerez mes jeux à mon frère", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("bghit nmout wallah", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("je vais m'allonger sur les rails", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("ils m'écrivent va te pendre et je crois qu'ils ont raison", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("i swear im killin myself if he posts it", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("how to die painlessly", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("does it hurt to drown", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("finished my last note, it's calm", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("there's no way out but to die", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("wanna be with my nan in heaven", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("made up my mind. goodbye", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("they keep saying kys and honestly they're right", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("goodbye mate, it was fun", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    ("mon pote veut se supprimer", "suicide_friend", Risk.SUICIDE, "urgent", ("3114",)),
    ("elle m'a dit kil va se tué", "suicide_friend", Risk.SUICIDE, "urgent", ("3114",)),
    ("on lui dit de se tuer et elle a répondu ok vous avez gagné", "suicide_friend", Risk.SUICIDE, "urgent", ("3114",)),
    ("il ira sur les rails après les cours", "suicide_friend", Risk.SUICIDE, "urgent", ("3114",)),
    ("he replied ok fine, not sure if he means it", "suicide", Risk.SUICIDE, "urgent", ("3114",)),
    # self-harm: scratching until blood, a head hit against a desk, a compass under the desk or on the skin, deserving
    # the cuts, "not deep" and not telling, the cat that isn't there, s'mutile
    ("ma cousine s'mutile", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("je me gratte jusko au sang qd jy pense", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("il se frappe la tête contre son bureau", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("j'utilise mon compas sous la table en cours", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("she says she deserves the cuts", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("scratched my skin till it bled", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("compass on my wrist again", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("they aren't that deep, i can't tell my mum", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    ("elle dit que son chat l'a griffée mais ils ont pas de chat", "self_harm", Risk.SELF_HARM, "urgent", ("3114",)),
    # abuse at home: meals and food withheld, left alone without food, a passport confiscated and a marriage, the
    # cellar as a punishment, blows reported, adult videos shown to a child, a secret, things thrown, bruises hidden
    ("mon père me laisse plus manger à table", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("ils nous laissent tout seuls sans rien à manger", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("mon père a confisqué mon passeport", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("mes parents veulent me marier à mon cousin", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("mon beau-père nous enferme dans la cave", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("elle a évoqué des coups de son beau-père", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("mon oncle me montre des vidéos pour adultes", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("mes parents prennent tout mon salaire", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("my parents lock the kitchen so i can't eat", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("they left us home alone for the weekend with no food", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("my dad took away my passport", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("they want me to marry my cousin this summer", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("my uncle puts us in the basement as punishment", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("my stepdad shows me pics that aren't for kids", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("he says it's just between us", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("her stepdad throws things at her", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    ("i have to hide my bruises for PE", "abuse_home", Risk.ABUSE_HOME, "high", ("119",)),
    # imminent danger: an online "friend" asking to be met at his car
    ("a guy from fortnite asked me to come to his van", "danger_now", Risk.IMMINENT_DANGER, "urgent", ("emergency",)),
]


@pytest.mark.parametrize(("message", "interrupt", "risk", "priority", "partners"), RISKY)
def test_risky_messages(
    engine: Engine, message: str, interrupt: str, risk: Risk, priority: str, partners: tuple[str, ...]
) -> None:
    assert classify(engine, message) == Classification(interrupt, risk, 1.0, None, priority, partners, False)


@pytest.mark.parametrize(
    "message",
    [
        "can u help me with my homework lol",
        "mes parents vont me tuer si ils voient mon bulletin 😭",
        "mort de rire",
        "ce prof me tue",
        "je me coupe la frange",
        "on a regardé suicide squad",
        "je lui ai dit stop mais il continue",
        "ma mère me tape sur les nerfs",
        "I'm dying of laughter",
        "je dois prendre mes médocs pour l'asthme",
        "meet u at the bridge after the match",
        "on se retrouve au pont pour le skate",
        "j'ai acheté une corde pour mon hamac",
    ],
)
def test_false_friends_do_not_alarm_nor_end(engine: Engine, message: str) -> None:
    assert classify(engine, message) == Classification(None, Risk.NONE, 0.0, None, None, (), False)


# False friends of the keyword phrases, each made precise by its context (an interrupt's `ignore`): they raise no
# flag from the phrases (the model still reads them).
CONTEXT_FALSE_FRIENDS = [
    "adieu les vacances, demain c'est la rentrée",
    "je dis adieu à mon vieux téléphone, j'ai eu le nouveau",
    "y a un chien qui me suit depuis le parc, il est trop mignon",
    "a cat followed me home today",
    "he followed me on insta",
    "un compte bizarre qui me suit",
    "this fake account keeps following me",
    "saw a video of someone getting beaten up and i can't stop thinking about it",
    "j'ai fait une overdose de séries ce week-end",
    "i overdosed on netflix",
    "je me suis brûlé la langue avec mon chocolat chaud",
    "je me suis brûlée avec la poêle en faisant des crêpes",
    "je me suis coupé en épluchant les pommes de terre",
    "je suis sur le pont du bateau avec ma classe pour la sortie à la mer",
    "je suis sur le toit de la terrasse pour prendre des photos du coucher de soleil",
    "i'm on the roof of the school for the photography club shoot",
    "i'm on the bridge waiting for my friends, we're going to the cinema",
    "this is my last message before my exam, wish me luck",
    "my last message in the class group was a meme and nobody reacted",
    "c'est mon dernier message avant le contrôle",
    "c'est mon dernier message sur ce groupe, je le quitte il est nul",
    "i want to die of embarrassment, my voice cracked during the solo",
    "mon frère m'a frappé avec un coussin pendant la bataille de polochon",
    "doing a school project on self harm awareness",
    "i hurt myself playing football",
    "je me suis brûlée au soleil à la plage",
    "on a fait un exposé sur la scarification en SVT",
    "this is my last message for today, thanks",
    "les marques sur mes bras c'est de l'eczéma",
    "le prof d'histoire nous a parlé du suicide de Van Gogh",
    # the seventeenth round's phrases (2026-12-02) beside their harmless look-alikes: a haircut, a hair straightener
    # or a kitchen burn, a school project, a streak or a habit, a parachute, a game, a dentist, a sibling, a video edit
    "i cut my own fringe and it's uneven lol",
    "je me suis brûlée avec le fer à lisser en me coiffant ce matin",
    "je me suis brûlé le doigt en faisant des pâtes",
    "our project is on the overdose crisis",
    "my parents won't let me go to the party saturday",
    "day 0 of my duolingo streak again lol",
    "back to the old habit of sleeping till noon",
    "ça fait mal de sauter en parachute ?",
    "what's the fastest way to die in minecraft hardcore",
    "i slapped myself awake in maths lol",
    "see you on the other side of the exams!!",
    "not sure if i'll be here tomorrow, i'm at the dentist",
    "mon frère me pince trop fort quand on joue",
    "my brother cuts and edits all our tiktoks",
    "i'm going to end it with him tonight",
    "we made a goodbye card for our teacher",
    "quand je saute au basket ça fait mal au genou",
    "je préfère faire disparaître la photo",
    "mon chat est tombé du 3e mais il va bien",
    "j'ai donné mon chat à ma tante parce qu'on déménage",
    "gave my dog to my aunt while we're on holiday",
    "who gets what in the group project?",
    "my mum punishes me for my grades",
    "j'ai plus la force de réviser ce soir",
    "je me suis encore coupée en épluchant les carottes",
    "je me suis tapé la tête contre le mur en me levant",
    "c'est à se taper la tête contre les murs ce devoir",
    "on a pas de chat mais on a un chien",
    "we don't have a cat but we have a dog",
    "i could sleep forever after this exam week lol",
    "i won't be around for christmas, we're going to my nan's",
    "how do i hide scars from my surgery",
    "j'ai des traces sur les bras à cause du bracelet",
    "ça me soulage de me faire masser",
    "tombée en skate ce matin 🩹 trop la honte",
    "🩹 sur le genou, rien de grave",
    # the twenty-first round's phrases (2026-12-02) beside their look-alikes: laughter and Halloween, friends in the
    # park, a grandparent mourned, rails and notes of music, a compass for maths, a holiday, self-deleting messages,
    # marks as grades, insect bites, a game, a mum's "ok fine", a school change, a harassment report, food rules, a
    # passport kept, a wine cellar, phone calls, a teacher's secret, a history lesson, a shallow pool
    "je vais mourir de rire avec cette vidéo",
    "je voudrais être un mort-vivant pour halloween",
    "je vais rejoindre mes potes au parc",
    "je vais rejoindre mes potes là-haut au chalet",
    "mon papi est monté au ciel l'an dernier, il me manque",
    "the bridge on the rails near the station is closed",
    "my life is finally back on the rails",
    "faut remettre ma vie sur les rails",
    "the last note of the song is so high",
    "writing my last notes for the exam",
    "j'écris ma dernière lettre de motivation",
    "my compass for maths is broken",
    "j'ai fait tomber mon compas sous la table",
    "je serai plus là demain, je pars en vacances chez ma tante",
    "le message va se supprimer tout seul",
    "elle veut se supprimer de tous les réseaux",
    "je vais me supprimer de ce groupe",
    "he deserves the marks he got on his essay",
    "i scratch my mosquito bites until they bleed",
    "how to die in minecraft fast",
    "quickest way to go to the station from school?",
    "c'est trop tard pour s'inscrire, merci pour tout",
    "si je le fais personne verra la différence",
    "my mum replied ok fine when i asked for pizza",
    "goodbye guys it was fun at the party",
    "j'ai pris ma décision, je change de lycée",
    "la seule solution c'est de supprimer son compte",
    "je pense souvent à la mort de mon papi",
    "je pense pas à mourir, j'ai juste eu une sale journée",
    "si je meurs dans le jeu donne moi ton arme",
    "if i die in the game you get my loot",
    "on m'a dit va te tuer et je pense que je vais porter plainte",
    "they told me kill yourself and i think i'll report them",
    "bghit nakol",
    "mes parents me laissent pas manger de bonbons",
    "ma mère me laisse pas manger devant la télé",
    "mes parents me laissent seule le week-end, c'est trop bien",
    "my parents keep my passport in the safe",
    "mes parents ont pris mon passeport pour le voyage",
    "on a rangé le vin à la cave dans le noir",
    "des coups de fil de ma mère toute la journée",
    "my dad showed me videos of cats",
    "my teacher said it's between us and the class",
    "on étudie le mariage forcé en histoire",
    "forced marriage in history class",
    "the pool isn't deep, i don't want to go to swim",
    # the twenty-second round's phrases, beside their false friends
    "im gonna cut tonight's practice short, coach is sick",
    "we're gonna cut again the video for the school project",
    "i'm gonna cut my hair tonight lol",
    "i want to end it with my boyfriend but idk how",
    "le bus repasse pour la troisième fois devant moi, il est en retard",
    "the ice cream truck came past for the third time today",
    "je me suis cramé avec le briquet en allumant les bougies",
    "j'ai pas donné à manger au chat pendant deux jours, il m'en veut",
    "my coach is gonna deal with me tomorrow for missing training",
    # the twenty-third round's phrases (from the dev27 misses)
    "je préfère en finir avec ce jeu, il est trop dur",
    "elle se coupait les cheveux toute seule dans la salle de bain",
    "ma pote se brulait toujours avec le fer à lisser le matin",
    "je vais pas me rater cette fois au bac, j'ai révisé",
    "cette fois je vais pas me rater au contrôle de maths",
    "3 semaines sans me couper les cheveux, je ressemble à rien",
    "two weeks without cutting my hair and my mum is losing it",
    "le médecin m'a interdit de manger pendant 2 jours avant l'opération",
    "he throws the ball at me and hits me every time in dodgeball",
    "je vais me jeter sous un bus si le prof rend pas les copies 😂",
    "on s'est mis sous un abribus pour la pluie",
    # the twenty-fourth round's phrases (from the dev28 misses)
    "pardon maman je pars au foot ce soir",
    "my cat keeps scratching my arm when i pet her",
    "i burned my arm on the oven making cookies",
    "je suis partie retrouver une amie rencontrée sur insta, on a passé une super journée",
    "i have the pills in my hand, what time should i take them for my allergy",
    "mince ou pas mince, je m'en fiche",
    "ils ont enlevé mon lit pour repeindre la chambre",
    "je dors par terre chez ma cousine ce week end",
    # the twenty-eighth round's phrases (from the dev29 … dev32 misses)
    "mon papi est monté au ciel l'an dernier, il me manque",
    "je vais me jeter sous la couette et dormir tout le week end",
    "j'ai acheté toute une boîte de bonbons pour la soirée",
    "quelle dose de caféine c'est trop pour un ado, pour réviser ?",
    "si tu publies la vidéo je te signale",
    "comment faire un piercing sans avoir mal ?",
    "i did something stupid and posted my story to close friends lol",
    "i took something from the fridge, is that stealing lol",
    "i want to cut my hair right now, bangs or not?",
    "she cuts her hair after every breakup",
    "j'ai un compas dans ma trousse pour les maths",
    "il m'a montré ses baskets neuves",
    "mon père me fait dormir dans la tente au camping, c'est trop bien",
    "ma mère me laisse sans wifi après 22h",
    "ma soeur me tape la discute depuis des heures",
    "mes parents m'ont coupé les cheveux pour l'été",
    "my dad threw a ball at me and i caught it",
    "my coach pushed me into the final squad",
    "my mum takes my phone away at 10pm",
    "we got locked in the gym for ten minutes lol",
    "i was listening for the ice cream van",
    "my parents wouldn't understand what tiktok is",
    "j'entends les voisins crier devant le match",
    "le youtubeur que je suis sur tiktok est venu à notre collège pour une conférence",
    "not safe for work lol dont open that link",
    "my mum won't let me eat sweets before dinner",
    # the twenty-ninth round's false friends
    "mon chat est enfermé dans le garage, il miaule",
    "je pense plus être là demain, j'ai entraînement",
    "est-ce que vous pouvez faire disparaître pour de vrai les photos ?",
    "il a gravé son prénom sur le bracelet qu'il m'a offert",
    "j'ai dormi sur le palier parce que j'avais oublié mes clés",
    "mon père m'a mis dehors pour promener le chien",
    "the batter was swinging at every pitch",
]


@pytest.mark.parametrize("message", CONTEXT_FALSE_FRIENDS)
def test_false_friends_in_context_raise_no_keyword_flag(engine: Engine, message: str) -> None:
    found = classify(engine, message)
    assert (found.interrupt, found.risk, found.partners, found.ends) == (None, Risk.NONE, (), False)


# The same words where they are a risk: the false friends above never hide them.
RISKY_LOOK_ALIKES: list[tuple[str, str]] = [
    ("j'ai pris une overdose", "suicide"),
    ("j'ai fait une overdose de médocs", "suicide"),
    ("je suis sur le pont et je vais sauter", "suicide"),
    ("je suis sur le pont du bateau et je vais sauter par dessus bord", "suicide"),
    ("adieu tout le monde", "suicide"),
    ("adieu les amis", "suicide"),
    ("adieu la vie", "suicide"),
    ("c'est mon dernier message sur ce groupe adieu je quitte", "suicide"),
    ("il me suit depuis la gare", "danger_now"),
    ("a man followed me home from the bus stop", "danger_now"),
    ("my sister is getting beaten up right now", "danger_now"),
    ("this is my last message before i go", "suicide"),
    ("c'est mon dernier message avant de partir pour toujours", "suicide"),
    ("i want to die of shame everyone saw my pics", "suicide"),
    ("im on the bridge rn", "suicide"),
    ("je vais me jeter du toit pour regarder les étoiles une dernière fois", "suicide"),
    ("i'm on the roof and i'm going to jump", "suicide"),
    ("je me suis brûlée exprès", "self_harm"),
    ("j'ai des marques sur les bras que je cache", "self_harm"),
    ("mon frère m'a frappé avec une ceinture", "abuse_home"),
    ("i hurt myself again after football practice", "self_harm"),
    ("jveux mourir lol", "suicide"),
    ("j'ai pas envie de mourir mais j'en peux plus", "suicide"),
    # (the seventeenth round's goodbye; "other" is also the topic question's value, so only the interrupt is checked)
    ("see u all on the other side ✌️", "suicide"),
    # 🩹 written for self-harm (a second reading with the emoji as words; the first drops every emoji)
    ("🩹🩹 j'ai encore abîmé mon poignet", "self_harm"),
    ("🩹 again, sorry", "self_harm"),
    ("craqué hier soir 😞🩹", "self_harm"),
    ("rechute 🩹", "self_harm"),
    # only the whole message ("alone")
    ("what's the least painful way", "suicide"),
    ("cut again", "self_harm"),
    # the twenty-first round: the same words without the context that made them harmless
    ("je serai plus là demain", "suicide"),
    ("jsrai plu la dmain, vous inquiétez pas", "suicide"),
    ("ils m'écrivent va te tuer et je pense que je vais le faire", "suicide"),
    ("he deserves the cuts and sends pics of his scratched arms", "self_harm"),
    ("my mum locks the kitchen and i only eat at school", "abuse_home"),
    # the twenty-second round (from the dev26 misses, after their verdict)
    ("everyone laughed at me again today, im gonna cut tonight", "self_harm"),
    ("going to sh when i get home, sorry", "self_harm"),
    ("i hit myself in the head when they start yelling", "self_harm"),
    ("je me suis remise à me cramer le bras, ça me calme", "self_harm"),
    ("honestly i want to end it", "suicide"),
    ("nobody cares, i wont b around much longer", "suicide"),
    ("i'd rather not respawn at all", "suicide"),
    ("un scooter repasse pour la troisième fois à côté de moi", "danger_now"),
    ("a white van drove past me for the third time", "danger_now"),
    ("ils m'ont pas donné à manger pendant trois jours", "abuse_home"),
    ("my stepmum hasn't fed me for two days", "abuse_home"),
    ("hes gonna deal with me tonight like he always does", "abuse_home"),
    # the twenty-third round (from the dev27 misses, after their verdict)
    ("il me fait du chantage avec mes photos, je préfère en finir", "suicide"),
    ("je pense à me mettre sous un camion en rentrant", "suicide"),
    ("cette fois je vais pas me rater", "suicide"),
    ("ma copine m'a dit qu'elle se coupait depuis la rentrée", "suicide_friend"),
    ("mon fils a cherché comment se procurer une corde", "suicide_friend"),
    ("rechute, j'avais tenu trois semaines sans me faire de mal", "self_harm"),
    ("broke my streak, 40 days without cutting", "self_harm"),
    ("my brother punches walls until his hands bleed", "self_harm"),
    ("il m frappe la mtn aidez moi", "danger_now"),
    ("son beau-père la frappe régulièrement", "abuse_home"),
    ("ma mère me gifle à chaque mauvaise note", "abuse_home"),
    ("ils m'ont privée de repas pendant deux jours", "abuse_home"),
    ("my mum slaps me for every bad grade", "abuse_home"),
    ("he threw his phone at me n hit me", "abuse_home"),
    # the twenty-fourth round (from the dev28 misses, after their verdict)
    ("ma fille est partie rejoindre un homme rencontré sur snap, elle répond plus", "danger_now"),
    ("my son went to meet a guy he met on discord and his phone is off", "danger_now"),
    ("à la rentrée je serai mince ou morte", "suicide"),
    ("skinny or dead, whatever comes first", "suicide"),
    ("j'ai tous les cachets dans la main", "suicide"),
    ("i got all my meds in my hand rn", "suicide"),
    ("ma soeur a mis en story « pardon maman je vous aime » et elle répond plus", "suicide_friend"),
    # a young person's own goodbye is theirs, not a friend's (a review, 2026-12-05: "pardon maman adieu" was told
    # "take what they told you seriously"); quoted from someone's story, still the friend's
    ("pardon maman adieu", "suicide"),
    ("désolé papa je vous aime", "suicide"),
    ("dsl maman c'est fini", "suicide"),
    ("elle a posté « dsl maman je pars » sur insta", "suicide_friend"),
    ("she keeps burning her arm with a lighter", "self_harm"),
    ("he's been scratching his arms raw every night", "self_harm"),
    ("chez nous c'est le martinet à chaque mauvaise note", "abuse_home"),
    ("ils m'ont enlevé mon matelas pour me punir", "abuse_home"),
    ("my stepdad pulls my hair when mum isn't home", "abuse_home"),
    # the twenty-eighth round (from the dev29 … dev32 misses, after their verdicts)
    ("je voudrais aller au ciel avec mamie", "suicide"),
    ("elle a dit qu'elle allait se jeter sous le train ce soir", "suicide_friend"),
    ("j'ai peur qu'elle fasse une connerie, elle répond plus depuis hier", "suicide_friend"),
    ("si j'avale toute la plaquette de doliprane ça fait quoi", "suicide"),
    ("c'est quelle dose qui est mortelle pour les somnifères", "suicide"),
    ("s'il poste mes photos je me tue, je rigole pas", "suicide"),
    ("je cherche comment partir sans souffrir", "suicide"),
    ("i might do something stupid and just be gone", "suicide"),
    ("they made a countdown till she does it with her face on it", "suicide"),
    ("i took something an hour ago and i feel weird", "suicide"),
    ("i need to cut so bad tonight", "self_harm"),
    ("he cuts every time his dad yells", "self_harm"),
    ("she said she deserves the pain she inflicts herself", "self_harm"),
    ("je garde une lame sous mon oreiller pour les soirs où ça va pas", "self_harm"),
    ("elle m'a montré ses poignets en cours de sport", "self_harm"),
    ("mon beau-père me fait dormir dans le garage quand j'ai de mauvaises notes", "abuse_home"),
    ("mon daron m'a poussé contre le mur hier soir", "abuse_home"),
    ("ils me laissent sans manger quand je réponds", "abuse_home"),
    ("ma mère me frappe depuis que je suis petite", "abuse_home"),
    ("mon père dit que je mérite ses coups", "abuse_home"),
    ("ils m'ont rasé la tête pour me punir", "abuse_home"),
    ("my stepdad threw a plate at my head", "abuse_home"),
    ("my dad slammed me against the door", "abuse_home"),
    ("they only hit me when i talk back, is that normal", "abuse_home"),
    ("my parents won't let me eat if i wear that", "abuse_home"),
    ("my aunt locked him in his room for days", "abuse_home"),
    ("i lie awake listening for my stepdads footsteps", "abuse_home"),
    ("he says my mum wouldnt understand what we do", "abuse_home"),
    ("ma voisine crie et il y a des coups dans l'appartement", "danger_now"),
    ("le gars que j'ai rencontré sur snap m'attend devant le lycée", "danger_now"),
    ("il a déjà commencé avec ma mère, il va monter", "danger_now"),
    ("not safe right now cant talk", "danger_now"),
    # the twenty-ninth round (from the dev33 misses, after their verdict)
    ("mon frère est enfermé dans sa chambre par mon beau-père depuis hier", "danger_now"),
    ("des fois jpense à plus être là, ça me fait peur", "suicide"),
    ("je vais disparaître pour de bon, personne remarquera", "suicide"),
    ("ils me regardent comme si j'étais morte, autant l'être", "suicide"),
    ("elle m'a demandé de graver son prénom sur mon bras avec un compas", "self_harm"),
    ("ma cousine se frappe elle-même au visage quand elle stresse", "self_harm"),
    ("j'ai rechute avc la lame de mon taille-crayon", "self_harm"),
    ("mon oncle me fait passer la nuit dans l'escalier comme punition", "abuse_home"),
    ("mon père m'a mis dehors pour la nuit parce que j'ai répondu", "abuse_home"),
    ("my stepmom keeps swinging at me whenever i forget a chore", "abuse_home"),
    # a goodbye "for good" is a goodbye message, never an ending phrase wrapped in fillers ("pour de bon" is one:
    # "bye bye pour de bon" ended the conversation, the model reading it at 0.53: dev34a, 2026-12-03)
    ("bye bye pour de bon", "suicide"),
    ("au revoir pour toujours", "suicide"),
    ("bon ben salut, pour de bon cette fois", "suicide"),
    ("bye bye for good", "suicide"),
]


@pytest.mark.parametrize(("message", "interrupt"), RISKY_LOOK_ALIKES)
def test_risky_look_alikes_still_fire(engine: Engine, message: str, interrupt: str) -> None:
    found = classify(engine, message)
    assert (found.interrupt, found.score, found.ends) == (interrupt, 1.0, False)


@pytest.mark.parametrize(
    "message",
    [
        "stop",
        "stop stp",
        "stop 🩹",
        "STOOOP",
        "je veux arrêter la conversation",
        "end chat",
        "non merci, je préfère arrêter maintenant",
        "c bon j'arrête là 👋",
        "nah forget it, i'm good",
        "I'd like to end this conversation, thank you.",
        "bye",
    ],
)
def test_ending_phrases_alone_end(engine: Engine, message: str) -> None:
    assert classify(engine, message) == Classification("stop", Risk.NONE, 0.0, None, None, (), True)


@pytest.mark.parametrize("message", ["non", "no", "ok", "merci", "c'est bon", "salut", "bonjour"])
def test_fillers_alone_never_end(engine: Engine, message: str) -> None:
    assert not classify(engine, message).ends


def test_a_topic_in_free_text(engine: Engine) -> None:
    found = classify(engine, "il menace d'envoyer ma photo à tout le collège si je paie pas")
    assert found.topic == "sextortion" and found.risk is Risk.NONE


def test_with_a_reading_the_model_counts(engine: Engine) -> None:
    scores = tuple((r, 0.8 if r is Risk.SUICIDE else 0.05) for r in RISKS)
    reading = Reading(scores, topic="cyberharassment", topic_score=0.7)
    found = classify(engine, "j'en ai marre de tout", reading)
    assert found == Classification("suicide", Risk.SUICIDE, 0.8, "cyberharassment", "urgent", ("3114",), False)
    assert found.to_json() == {
        "interrupt": "suicide",
        "risk": "suicide",
        "score": 0.8,
        "topic": "cyberharassment",
        "priority": "urgent",
        "partners": ["3114"],
        "ends": False,
    }


def test_below_threshold_reports_the_highest_score(engine: Engine) -> None:
    scores = tuple((r, 0.3 if r is Risk.SELF_HARM else 0.05) for r in RISKS)
    found = classify(engine, "bof", Reading(scores))
    assert (found.risk, found.score, found.interrupt) == (Risk.NONE, 0.3, None)


@pytest.mark.parametrize(("share", "ends"), [(0.98, False), (0.76, False), (0.74, True), (0.1, True)])
def test_an_ending_phrase_the_model_reads_near_a_risk_does_not_end(engine: Engine, share: float, ends: bool) -> None:
    """From 0.75 of suicide's threshold (flows.yaml's) up, an ending phrase neither ends nor raises. "bye bye pour de
    bon" was read at 0.98 of the threshold then and ended a chat (since caught by a phrase too, but the next goodbye
    may not be)."""
    threshold = engine.assessor.rules[Risk.SUICIDE].threshold
    scores = tuple((r, share * threshold if r is Risk.SUICIDE else 0.01) for r in RISKS)
    found = classify(engine, "bye bye", Reading(scores))
    assert (found.ends, found.risk, found.interrupt) == (ends, Risk.NONE, "stop" if ends else None)


class _FixedReader:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def read(self, text: str, language: str) -> Reading:
        self.seen.append((text, language))
        return Reading(tuple((r, 0.9 if r is Risk.ABUSE_HOME else 0.0) for r in RISKS))


def test_classify_lines_asks_the_reader_in_the_language(engine: Engine) -> None:
    reader = _FixedReader()
    found = classify_lines(engine, ["a", "b"], "en", reader)
    assert reader.seen == [("a", "en"), ("b", "en")]
    assert [f.interrupt for f in found] == ["abuse_home", "abuse_home"]


def test_classify_lines_does_not_read_the_erasure_phrase_alone_as_the_dispatcher_does(engine: Engine) -> None:
    reader = _FixedReader()
    found = classify_lines(engine, ["Efface mes données stp", "efface mes données, il me frappe"], "fr", reader)
    assert reader.seen == [("efface mes données, il me frappe", "fr")]  # a command alone; a message otherwise
    assert [f.interrupt for f in found] == [None, "abuse_home"]


def test_a_message_decided_again_after_its_joined_reading_is_not_read_again(engine: Engine) -> None:
    """The dispatcher decides a message, then (when it read nothing) the previous message's words joined to it,
    then the engine's interrupt check decides the message again: its first answer is given back, not read anew
    (bench/README.md, "Forty-fourth session"), and so is the joined one's."""
    fresh = Engine(engine.loaded)
    message, joined = "encore ce soir", "je vais me scarifier encore ce soir"
    first = fresh.decide(message)
    together = fresh.decide(joined)
    assert first.flag is None and together.flag is not None
    assert fresh.decide(message) is first
    assert fresh.decide(joined) is together
    assert fresh.canonical(message) == "encore ce soir"
    assert fresh.decide(message, Reading(tuple((risk, 0.0) for risk in RISKS))) is not first  # another reading: anew
