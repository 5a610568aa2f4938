"""Located diagnostics: every user error names its file, line and column."""

from __future__ import annotations

import difflib
from collections import ChainMap
from dataclasses import dataclass
from typing import Any

MAX_QUOTE = 60  # a user's value quoted in a message: at most this many characters
MAX_MESSAGE = 400  # a whole message (a last resort: values are cut where they are quoted)
MAX_HINT_NAME = 100  # longer names are not typos: no "did you mean"
MAX_HINT_WORK = 1_000_000  # comparison work for "did you mean" hints in one compile


@dataclass(frozen=True)
class Pos:
    """A place in a source file, 1-based, as editors show it."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One user error: where, what, and an optional hint."""

    pos: Pos
    message: str
    hint: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", shorten(self.message, MAX_MESSAGE))
        if self.hint is not None:
            object.__setattr__(self, "hint", shorten(self.hint, MAX_MESSAGE))

    def __str__(self) -> str:
        text = f"{self.pos}: error: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(Exception):
    """One or more user errors; the CLI prints them and exits with status 2."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(
            set(diagnostics), key=lambda d: (d.pos.file, d.pos.line, d.pos.col, d.message)
        )
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def at(cls, pos: Pos, message: str, hint: str | None = None) -> SpecError:
        """Build an error with a single diagnostic."""
        return cls([Diagnostic(pos, message, hint)])


class LimitError(SpecError):
    """A spec beyond one of archspec's limits (size, nesting, work): reported, then stop."""


class Collector:
    """Gathers diagnostics so that one run reports all errors of a file.

    An error made inside a loop or a block is found once per instance: it is kept once
    (memory stays bounded), and `count` counts every report, so that callers can tell
    whether a step failed.
    """

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.count = 0
        self._seen: set[Diagnostic] = set()

    def add(self, pos: Pos, message: str, hint: str | None = None) -> None:
        """Record one error."""
        self.count += 1
        diagnostic = Diagnostic(pos, message, hint)
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self.diagnostics.append(diagnostic)

    def extend(self, error: SpecError | Collector) -> None:
        """Record every diagnostic of an error (or of another collector)."""
        for diagnostic in error.diagnostics:
            self.add(diagnostic.pos, diagnostic.message, diagnostic.hint)

    def raise_if_any(self) -> None:
        """Raise a SpecError holding everything collected so far."""
        if self.diagnostics:
            raise SpecError(self.diagnostics)

    def stop(self, pos: Pos, message: str) -> None:
        """Raise a LimitError: everything collected so far, and the limit that was hit."""
        raise LimitError([*self.diagnostics, Diagnostic(pos, message)])


def shorten(text: str, limit: int = MAX_QUOTE) -> str:
    """A user's text as a message quotes it: at most `limit` characters, cut with `...`."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """`repr(value)` cut to `limit` characters; cheap however big or nested the value is."""
    pieces, size = [], 0
    for piece in _repr_pieces(value, limit):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    return shorten("".join(pieces), limit)


_END = object()


def _repr_pieces(value: Any, limit: int):
    """The text of `repr(value)` piece by piece, without recursion."""
    stack = [(iter((value,)), "", True)]
    while stack:
        items, closer, first = stack.pop()
        item = next(items, _END)
        if item is _END:
            yield closer
            continue
        stack.append((items, closer, False))
        if not first:
            yield ", "
        if isinstance(item, (list, tuple)):
            yield "[" if isinstance(item, list) else "("
            stack.append((iter(item), "]" if isinstance(item, list) else ")", True))
        elif isinstance(item, dict):
            yield "{...}"
        else:
            yield _scalar_repr(item, limit)


def _scalar_repr(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return repr(value[: limit + 1])
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"<an integer of about {digits:,} digits>"
    return repr(value)


_hint_work = [0]


def reset_hints() -> None:
    """Start a new compile: "did you mean" hints get their whole budget again."""
    _hint_work[0] = 0


def did_you_mean(name: str, *choices) -> str | None:
    """A hint naming the closest known spelling, if one is close.

    `choices` are collections of names. Hints are skipped once a compile has spent
    MAX_HINT_WORK on them, so a spec with thousands of misspellings stays fast.
    """
    if not isinstance(name, str) or len(name) > MAX_HINT_NAME:
        return None
    groups = [m for c in choices for m in (c.maps if isinstance(c, ChainMap) else [c])]
    work = sum(len(group) for group in groups) * (len(name) + 20)
    if _hint_work[0] + work > MAX_HINT_WORK:
        return None
    _hint_work[0] += work
    names = {c for group in groups for c in group if isinstance(c, str) and not c.startswith("_")}
    close = difflib.get_close_matches(name, sorted(n for n in names if len(n) <= 100), n=1)
    return f"did you mean `{close[0]}`?" if close else None
