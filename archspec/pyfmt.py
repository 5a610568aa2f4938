"""Formatting generated Python: calls that fit stay on one line, others wrap as ruff does.

The emitters build calls as `Call` trees and let this module lay them out, so generated
files come out formatted (ruff-format compatible) without running a formatter, and the
bytes depend on nothing but the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 100
INDENT = "    "


@dataclass
class Call:
    """`fn(arg, ..., key=value)`; arguments are source strings or nested calls."""

    fn: str | Call
    args: list[str | Call] = field(default_factory=list)
    kwargs: list[tuple[str, str | Call]] = field(default_factory=list)
    star: bool = False  # fn(*args[0])
    brackets: str = "()"  # "[]" with fn="" makes a list display

    def flat(self) -> str:
        """The call on one line."""
        fn = self.fn.flat() if isinstance(self.fn, Call) else self.fn
        return f"{fn}{self.brackets[0]}{', '.join(self._parts(flat=True))}{self.brackets[1]}"

    def _parts(self, flat: bool) -> list[str]:
        def text(v: str | Call) -> str:
            return v.flat() if isinstance(v, Call) else v

        parts = [text(a) for a in self.args]
        if self.star and parts:
            parts[0] = "*" + parts[0]
        return parts + [f"{k}={text(v)}" for k, v in self.kwargs]

    def items(self) -> list[tuple[str, str | Call]]:
        """(prefix, value) pairs: positional arguments have an empty prefix."""
        items: list[tuple[str, str | Call]] = [("", a) for a in self.args]
        if self.star and items:
            items[0] = ("*", items[0][1])
        return items + [(f"{k}=", v) for k, v in self.kwargs]


def render(value: str | Call, level: int, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines for `prefix + value + suffix` at indentation `level`, wrapped to WIDTH."""
    pad = INDENT * level
    if not isinstance(value, Call):
        return [pad + prefix + value + suffix]
    line = pad + prefix + value.flat() + suffix
    if len(line) <= WIDTH or not value.items():
        return [line]
    inner = ", ".join(value._parts(flat=True))
    if isinstance(value.fn, Call):  # f(a)(b): split the first call, keep `(b)` on its last line
        return render(value.fn, level, prefix, f"({inner}){suffix}")
    open_, close = str(value.fn) + value.brackets[0], value.brackets[1]
    items = value.items()
    if len(items) == 1 and value.brackets == "()":
        # a lone argument is split on its own, without a trailing comma (as ruff does)
        key, item = items[0]
        inner_lines = render(item, level + 1, key)
        return [pad + prefix + open_, *inner_lines, pad + close + suffix]
    if len(INDENT * (level + 1) + inner) <= WIDTH:
        return [pad + prefix + open_, INDENT * (level + 1) + inner, pad + close + suffix]
    lines = [pad + prefix + open_]
    for key, item in items:
        lines.extend(render(item, level + 1, key, ","))
    lines.append(pad + close + suffix)
    return lines


def from_source(source: str) -> str | Call:
    """A call written as source, as a Call tree the formatter can wrap."""
    import ast

    def convert(node: ast.expr) -> str | Call:
        if not isinstance(node, ast.Call) or any(k.arg is None for k in node.keywords):
            return double_quotes(ast.unparse(node))
        if any(isinstance(a, ast.Starred) for a in node.args):
            return double_quotes(ast.unparse(node))
        return Call(
            convert(node.func),
            [convert(a) for a in node.args],
            [(k.arg, convert(k.value)) for k in node.keywords],
        )

    return convert(ast.parse(source, mode="eval").body)


def signature(name: str, params: list[str], level: int) -> list[str]:
    """`def name(params):`, one parameter per line when it does not fit."""
    pad = INDENT * level
    line = f"{pad}def {name}({', '.join(params)}):"
    if len(line) <= WIDTH:
        return [line]
    inner = INDENT * (level + 1) + ", ".join(params)
    if len(inner) <= WIDTH:
        return [f"{pad}def {name}(", inner, f"{pad}):"]
    return [f"{pad}def {name}(", *(f"{INDENT * (level + 1)}{p}," for p in params), f"{pad}):"]


def double_quotes(source: str) -> str:
    """Rewrite 'single-quoted' string literals with double quotes, as ruff format does."""
    import io
    import tokenize

    out, last = [], 0
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        text = tok.string
        if tok.type == tokenize.STRING and text[:1] == "'" and '"' not in text and "\\" not in text:
            start = offsets[tok.start[0] - 1] + tok.start[1]
            out.append(source[last:start])
            out.append('"' + text[1:-1] + '"')
            last = start + len(text)
    out.append(source[last:])
    return "".join(out)


class Writer:
    """Collects indented lines of code."""

    def __init__(self, level: int = 0):
        self.level = level
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        """Add one line at the current indentation (an empty line stays empty)."""
        self.lines.append(INDENT * self.level + text if text else "")

    def assign(self, target: str, value: str | Call) -> None:
        """`target = value`, wrapped if long."""
        self.lines.extend(render(value, self.level, f"{target} = "))

    def conditional(self, target: str, present: str, cond: str, absent: str) -> None:
        """`target = present if cond else absent`, split over lines as ruff does."""
        line = f"{INDENT * self.level}{target} = {present} if {cond} else {absent}"
        if len(line) <= WIDTH:
            self.lines.append(line)
            return
        self.line(f"{target} = (")
        with self.indent():
            self.line(present)
            self.line(f"if {cond}")
            self.line(f"else {absent}")
        self.line(")")

    def expr(self, value: str | Call) -> None:
        """A call as a statement."""
        self.lines.extend(render(value, self.level))

    def indent(self) -> Writer:
        """Context manager: one level deeper."""
        return _Indent(self)


class _Indent:
    def __init__(self, writer: Writer):
        self.writer = writer

    def __enter__(self) -> Writer:
        self.writer.level += 1
        return self.writer

    def __exit__(self, *exc) -> None:
        self.writer.level -= 1
