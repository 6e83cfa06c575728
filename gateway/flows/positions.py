"""Where each value of a flows.yaml stands, and the problems found in it, as ``FILE:LINE:COLUMN: message``.

Shared by the loader (YAML and schema problems, ``loader.py``) and the semantic checks (``checks.py``), which
both map error paths back to positions. The loader runs the checks; the checks import only this module.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.flows.model import Flow

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        # Messages quote names from the file: a line break or control character inside must not split the line.
        object.__setattr__(self, "message", "".join(map(_visible, self.message)))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def _visible(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char


@dataclass
class Positions:
    """Where each value (``values``) and each mapping key (``keys``) stands, by path; 1-based."""

    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Sequence[str | int], key: bool = False) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            found = (self.keys if key else self.values).get(p) or self.values.get(p)
            if found:
                return found
            p = p[:-1]
        return self.values.get((), (1, 1))


@dataclass(frozen=True)
class LoadedFlow:
    flow: Flow
    version: str
    file: str
    positions: Positions


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
