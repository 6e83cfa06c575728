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
