"""The words and emoji that only greet ("Bonjour !", "salut", "hello", "coucou 👋"): read by the engine (a greeting
alone at a question is asked again kindly) and by the language guess (a greeting tells no language)."""

from __future__ import annotations

GREETING_WORDS = frozenset(
    ("bonjour", "bonsoir", "salut", "coucou", "slt", "bjr", "bsr", "cc", "kikou", "wesh", "allo", "hello", "hey", "hi",
     "hola", "yo", "madame", "monsieur")
)  # fmt: skip
"""Words that only greet (canonical: "Bonjour !", "BONJOURRR", "coucou 👋" read "bonjour", "coucou"): a message made
of them alone, at a question, is asked the question again kindly (``greeted``), not told "not understood". They are
no language's words (``gateway/flows/written.py``): French teenagers say "hello", "hey", "hi" all the time."""
GREETING_EMOJI = frozenset("👋🙂😊😀😃😄🤗✌")
"""The emoji that may stand beside a greeting: "salut 😢" is not a greeting alone."""
SMALL_TALK = ("ca va", "cava", "sa va", "sava", "cv", "comment ca va", "comment vas tu", "comment tu vas",
              "comment allez vous", "how are you")  # fmt: skip
"""The usual small talk beside a greeting (canonical: "ça va ?", "comment vas-tu", "how r u"): "salut ça va", "slt cv"
greet. Once, beside at least one greeting word and nothing else: "ça va pas", "cv pas", "ça va" alone are read as
any answer."""


def only_greets(canonical: str) -> bool:
    """Whether ``canonical`` (``keywords.canonical``) is one to four :data:`GREETING_WORDS`, with at most one
    :data:`SMALL_TALK` phrase and nothing else."""
    padded = f" {canonical} "
    said = next((f" {p} " for p in sorted(SMALL_TALK, key=len, reverse=True) if f" {p} " in padded), None)
    words = (padded.replace(said, " ", 1) if said else padded).split()
    return 0 < len(words) <= 4 and all(word in GREETING_WORDS for word in words)
