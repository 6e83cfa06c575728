"""The conversation as ops staff write it in flows.yaml, and the pure engine that runs it.

    model.py       the schema of flows.yaml (typed, frozen pydantic models; ``model_base.py`` what they share)
    positions.py   where each value stands in the file; problems as ``FILE:LINE:COLUMN: message``
    loader.py      YAML → positions → the schema → the checks: a loaded flow or every problem
    checks.py      what the schema cannot see: references, reachability, dead ends, translations, rules
    casework.py    the sections for notices and referrals
    rules.py       conditions of routing rules and conditional ``next`` branches
    hours.py       opening hours, closures, openings, past midnight, DST
    text.py        normalising and matching what a young person types
    keywords.py    the keyword first line: interrupt phrases in canonical form
    reading.py     the contract between the embedded model and the engine (``Risk``, ``Reading``)
    risk.py        what one message raises (phrases and the model's reading)
    understood.py  answers understood beyond the question asked
    engine.py      (flow, state, text, now) → (state', replies, outcome): pure, no I/O, no clock
    lifecycle.py   the conversation's status: bot → queued → with_listener → closed / referred / abandoned
    scenarios.py   conversation tests; ``simulate.py`` the terminal chat; ``classify.py`` one message's
                   decision; ``graph.py`` diagrams

Nothing here imports the rest of the gateway but ``messages.py`` and ``errors.py``: the ops tools
(``gateway flows …``) and the engine's tests use this package alone.
"""
