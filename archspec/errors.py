"""Located diagnostics: every user error names its file, line and column."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


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


class Collector:
    """Gathers diagnostics so that one run reports all errors of a file."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(self, pos: Pos, message: str, hint: str | None = None) -> None:
        """Record one error."""
        self.diagnostics.append(Diagnostic(pos, message, hint))

    def extend(self, error: SpecError) -> None:
        """Record every diagnostic of an error."""
        self.diagnostics.extend(error.diagnostics)

    def raise_if_any(self) -> None:
        """Raise a SpecError holding everything collected so far."""
        if self.diagnostics:
            raise SpecError(self.diagnostics)


def did_you_mean(name: str, choices) -> str | None:
    """A hint naming the closest known spelling, if one is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return f"did you mean `{close[0]}`?" if close else None
