"""English-speaking teenagers' indirect words of suicidal ideation and self-harm, now or lately, as they type them
in a helpline chat (no caps, "ngl", "tbh", typos), read by the keyword first line alone (the model is not consulted),
and the hard negatives beside them (hyperbole, ordinary pain, goodbyes for the bus) that must stay what they were.

Written for this test by a reviewer (2026-12-06), from no corpus file: 80 risky messages, 80 hard negatives.
`python bench/en_indirect.py` prints the same lists' figures for keywords alone and keywords + model.

Being told to kill oneself ("they told me to kys") is read as `suicide` (docs/flows.md, "Being told to kill
oneself"): a young person targeted by it is asked about their own thoughts by a listener and given 3114; a friend
or a sibling saying "kys" about a game, with nothing aimed at the writer, is not."""

from __future__ import annotations

import pytest

from gateway.flows.engine import Engine
from gateway.flows.reading import Risk
from tests.flows.test_default_keywords import engine, risk_of

__all__ = ["engine"]  # the module's engine fixture, used below

# indirect ideation and self-harm: each must reach its risk's interrupt (3114)
RISKY: list[tuple[str, str]] = [
    ("i just want everything to stop", "suicide"),
    ("everyone would be better off without me", "suicide"),
    ("im so tired of existing", "suicide"),
    ("i dont see the point anymore", "suicide"),
    ("ngl i dont think i want to be here anymore", "suicide"),
    ("i wrote letters to my family last night", "suicide"),
    ("i won't be around much longer", "suicide"),
    ("whats the easiest way to not wake up", "suicide"),
    ("tbh i just want to disappear and never come back", "suicide"),
    ("kms fr not joking", "suicide"),
    ("i keep thinking about not existing", "suicide"),
    ("i wish i could just go to sleep and never wake up", "suicide"),
    ("theres no point in me being alive", "suicide"),
    ("i cant do this anymore i want it all to be over", "suicide"),
    ("my family would be happier if i was gone", "suicide"),
    ("i don't want to wake up tomorrow", "suicide"),
    ("i think about dying all the time", "suicide"),
    ("i've been thinking about ending things", "suicide"),
    ("i want to end things", "suicide"),
    ("i cant keep living like this", "suicide"),
    ("nobody would even notice if i was gone", "suicide"),
    ("i dont want to be alive anymore", "suicide"),
    ("sometimes i wish i just didnt exist", "suicide"),
    ("i already said goodbye to my friends", "suicide"),
    ("i've decided tonight is the night", "suicide"),
    ("i keep looking at the pills in the cupboard", "suicide"),
    ("i dont wanna live anymore tbh", "suicide"),
    ("life isnt worth it anymore", "suicide"),
    ("im not gonna be a problem for much longer", "suicide"),
    ("i want to go to sleep forever", "suicide"),
    ("i just wanna die ngl", "suicide"),
    ("i feel like i shouldnt be alive", "suicide"),
    ("why am i even still alive", "suicide"),
    ("i want out of this life", "suicide"),
    ("i gave all my stuff away to my sister", "suicide"),
    ("i'm thinking of ending my life", "suicide"),
    ("i hate being alive", "suicide"),
    ("honestly the world would be better without me in it", "suicide"),
    ("i want to stop being alive", "suicide"),
    ("i wish i was never born", "suicide"),
    ("im tired of fighting to stay alive", "suicide"),
    ("i dont think i'll make it to my birthday", "suicide"),
    ("i just want the pain to end forever", "suicide"),
    ("i cant see a future for myself", "suicide"),
    ("its time for me to leave this world", "suicide"),
    ("i have a plan for friday night and i'm not scared anymore", "suicide"),
    ("i keep thinking everyone would be fine without me", "suicide"),
    ("i wish i could just vanish forever", "suicide"),
    ("i dont want to exist", "suicide"),
    ("everyone would be relieved if i was gone", "suicide"),
    ("i want my life to be over", "suicide"),
    ("ive stopped caring if i live or die", "suicide"),
    ("kms. i mean it", "suicide"),
    ("i dont want to be here anymore", "suicide"),
    ("no one would care if i died", "suicide"),
    ("i dont want to do life anymore", "suicide"),
    ("i want to die tbh", "suicide"),
    ("i wanna end my life", "suicide"),
    ("i keep having thoughts of ending it", "suicide"),
    ("i'm so tired i just want to not exist for a while. forever maybe", "suicide"),
    ("i want to be gone", "suicide"),
    ("i'd be better off dead", "suicide"),
    ("life is pointless and i want out", "suicide"),
    ("i feel like giving up on life", "suicide"),
    ("i've been hurting myself again", "self_harm"),
    ("i relapsed last night", "self_harm"),
    ("i did it again last night. the cutting", "self_harm"),
    ("been sh-ing again ngl", "self_harm"),
    ("i burned myself with a lighter again", "self_harm"),
    ("i scratch my arms until they bleed", "self_harm"),
    ("i keep hurting myself and i cant stop", "self_harm"),
    ("i want to hurt myself so bad rn", "self_harm"),
    ("i was 3 months clean and i messed up last night", "self_harm"),
    ("i make myself bleed so i can feel something", "self_harm"),
    ("my thighs are covered in marks and no one knows", "self_harm"),
    ("the urge to cut is really bad tonight", "self_harm"),
    ("i punish myself when i get bad grades", "self_harm"),
    ("i hurt myself to cope", "self_harm"),
    ("i hit myself until it bruises", "self_harm"),
    ("i broke my clean streak last night", "self_harm"),
]

# hard negatives: hyperbole, false friends, everyday pain and goodbyes; no interrupt
HARD_NEGATIVES: list[str] = [
    "this homework is killing me",
    "im dead 💀",
    "i want to die of embarrassment lol",
    "my mum is going to kill me when she sees my report",
    "lmao i'm literally dying 😂",
    "that song slaps, i'm dead",
    "i could just die, he replied to my story!!",
    "ugh mondays make me want to die lol",
    "i'm so done with this maths worksheet",
    "i'm tired of school tbh",
    "i dont see the point of algebra",
    "everyone would be better off without group projects",
    "i want everything to stop buffering 😤",
    "i just want this week to end",
    "i cut my fringe myself and it looks awful",
    "i relapsed on energy drinks again lol",
    "i cut my finger cooking pasta",
    "i burned myself on the oven tray",
    "i hurt myself at football practice",
    "my cat scratched my arms",
    "i wrote letters to my pen pal in spain",
    "i wrote a letter to my future self for a school project",
    "i won't be around this weekend, i'm at my dad's",
    "i won't be online much longer, my phone is at 2%",
    "whats the easiest way to revise for gcses",
    "what's the easiest way to tell my mum i failed",
    "i'm dying to see the new spiderman",
    "kms lol i forgot my pe kit again",
    "my brother keeps saying kys when he loses at fifa",
    "i'm over it, the teacher gave us more homework",
    "i deleted tiktok because i was so tired of it",
    "my phone died",
    "my plant died again lol",
    "my grandad died last year and i still miss him",
    "we learned about suicide prevention in pshe today",
    "is this chat anonymous?",
    "someone made a fake account of me",
    "they keep posting my pics in the group chat",
    "i gave my old clothes to charity",
    "i gave my old switch to my cousin because i got a new one",
    "i'm ready to go, my mum is picking me up",
    "it's time to go to bed, thanks for listening",
    "i need to go, bye thanks",
    "bye for now, i'll come back tomorrow",
    "i'm exhausted after netball",
    "i have no energy today, barely slept",
    "my life is a mess lol my room is a disaster",
    "i've got a plan for friday: cinema with my mates",
    "i can't see a future where i pass chemistry lol",
    "i'm tired of my sister stealing my clothes",
    "i'm done with him, we broke up",
    "i want to end things with my boyfriend",
    "how do i end things with my girlfriend nicely",
    "i'm so done with this group chat drama",
    "the pain in my knee won't stop",
    "my wrist hurts from gaming too much",
    "i have scars from when i fell off my bike",
    "i wear hoodies because i'm always cold",
    "i bruise easily from hockey",
    "i'd rather die than wear that dress 😂",
    "dead tired after the sleepover",
    "i'm dying of boredom in history",
    "ugh i'm literally dead, my crush saw my old posts 💀",
    "that test destroyed me",
    "we had a minute's silence for the people who died in the war",
    "my character died in minecraft hardcore and i lost everything",
    "my mum says the internet will be the death of me",
    "im so stressed about exams but im okay",
    "i'm not in danger, just annoyed someone hacked my snap",
    "my ex keeps messaging me and i want it to stop",
    "i want the notifications to stop, my phone won't stop buzzing",
    "i'm so tired of this game's servers going down",
    "i feel like giving up on maths tbh",
    "i want out of this group chat, how do i leave without them seeing",
]

# hard negatives flagged by design, escalate never silence: a negation or a laugh beside the words never cancels them
# ("i'm not suicidal, …", "i wanna kms 😭" about a level), nor do a few words a listener must check ("i have a plan")
FLAGGED_BY_DESIGN: list[tuple[str, str]] = [
    ("this level is so hard i wanna kms 😭", "suicide"),
    ("i'm not suicidal, i just need advice about a fake account", "suicide"),
    ("i don't want to hurt myself, i just want the pictures gone", "self_harm"),
    ("i have a plan to tell my teacher tomorrow", "suicide"),
    ("i hit my head on the cupboard door", "self_harm"),
    ("my friend said she'll kill me if i tell anyone about her crush lol", "abuse_home"),
]

# told to kill oneself, aimed at the writer: read as suicide; said about something else: not
TOLD_TO: list[tuple[str, str]] = [
    ("they told me to kys", "suicide"),
    ("someone in my class keeps telling me to kys", "suicide"),
    ("a guy on roblox said kys to me", "suicide"),
    ("they commented kys under my tiktok", "suicide"),
    ("my brother keeps saying kys when he loses at fifa", "none"),
]


def test_the_lists_are_the_sizes_said() -> None:
    assert len(RISKY) == 80
    assert len(HARD_NEGATIVES) + len(FLAGGED_BY_DESIGN) == 80


@pytest.mark.parametrize(("message", "risk"), RISKY)
def test_indirect_words_reach_their_interrupt(engine: Engine, message: str, risk: str) -> None:
    assert risk_of(engine, message) == risk


@pytest.mark.parametrize("message", HARD_NEGATIVES)
def test_hard_negatives_stay_unflagged(engine: Engine, message: str) -> None:
    assert risk_of(engine, message) == Risk.NONE.value


@pytest.mark.parametrize(("message", "risk"), FLAGGED_BY_DESIGN + TOLD_TO)
def test_flagged_by_design(engine: Engine, message: str, risk: str) -> None:
    assert risk_of(engine, message) == risk
