"""Hostile specs: every one is refused with a located error, in bounded time and memory.

The issue: any spec under 2 MB is accepted or refused within seconds and 500 MB, with a
located error (`file:line:col: error: ...`, exit status 2, no traceback) naming the limit
it hit. Each class of attack is tried in several variants, each through the CLI in its own
process under RLIMIT_AS (1 GB) and a timeout; the wall-clock bound asserted (10 s) is
generous for a loaded two-core machine, where each attack takes about a second.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HEAD

from archspec import expr, ir, load
from archspec.compiler import compile_spec
from archspec.errors import Pos, SpecError, quote, shorten

ROOT = Path(__file__).resolve().parent.parent
MEMORY = 1 << 30  # RLIMIT_AS of each run
WALL = 10.0  # seconds, asserted (about 1 s each on an idle machine)
RSS = 500  # MB, asserted
LINE = re.compile(r"^(--set|--input|[^\n]+?(:\d+:\d+)?): error: .+$")


@dataclass
class Run:
    """One CLI run under limits: its exit status, output, wall time and peak memory."""

    status: int
    stdout: str
    stderr: str
    seconds: float
    rss_mb: int


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def archspec(*args: str, cwd: Path, timeout: float = 60) -> Run:
    """`python -m archspec.cli ARGS` with 1 GB of address space, killed after `timeout`."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "archspec.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_limits,
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out = [b"", b""]
        readers = [
            threading.Thread(target=lambda i, s: out.__setitem__(i, s.read()), args=(i, s))
            for i, s in enumerate((proc.stdout, proc.stderr))
        ]
        for reader in readers:
            reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        for reader in readers:
            reader.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
    return Run(
        proc.returncode,
        out[0].decode(errors="replace"),
        out[1].decode(errors="replace"),
        time.perf_counter() - start,
        usage.ru_maxrss // 1024,
    )


def refused(run: Run, expected: str) -> list[str]:
    """Assert a run is a clean, bounded refusal mentioning `expected`; return its lines."""
    assert run.seconds < WALL, f"took {run.seconds:.1f} s: {run.stderr[-300:]}"
    assert run.rss_mb < RSS, f"used {run.rss_mb} MB"
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    assert (run.status, run.stdout) == (2, ""), run.stderr[-500:]
    lines = run.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), run.stderr[:500]
    assert all(len(line) < 600 for line in lines), max(lines, key=len)
    assert expected in run.stderr, run.stderr[:500]
    return lines


def validate(tmp_path: Path, text: str | bytes, *args: str, name: str = "spec.yaml") -> Run:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return archspec("validate", name, *args, cwd=tmp_path)


def blocks(text: str) -> str:
    return HEAD + text


# -- 1. spec paths that are not regular files -------------------------------------------------


def _fifo(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "fifo")  # no writer: opening it for reading would block forever
    return "fifo"


def _socket(tmp_path: Path) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    os.chdir(tmp_path)  # a relative name: socket paths are limited to about 100 characters
    try:
        sock.bind("sock")
    finally:
        os.chdir(here)
        sock.close()  # the socket file stays
    return "sock"


def _zero_link(tmp_path: Path) -> str:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    return "zero.yaml"


def _folder(tmp_path: Path) -> str:
    (tmp_path / "folder.yaml").mkdir()
    return "folder.yaml"


NOT_REGULAR = [
    pytest.param(lambda tmp: "/dev/zero", "a character device", id="dev_zero"),
    pytest.param(lambda tmp: "/dev/null", "a character device", id="dev_null"),
    pytest.param(_fifo, "a pipe", id="fifo_without_writer"),
    pytest.param(_socket, "a socket", id="socket"),
    pytest.param(_zero_link, "a character device", id="symlink_to_dev_zero"),
]


@pytest.mark.parametrize(("make", "kind"), NOT_REGULAR)
def test_a_spec_path_that_is_not_a_regular_file_is_refused(tmp_path, make, kind):
    path = make(tmp_path)
    lines = refused(archspec("validate", path, cwd=tmp_path), kind)
    assert lines == [f"{path}: error: file is {kind}, not a regular file"]


@pytest.mark.parametrize(
    ("make", "kind"), [*NOT_REGULAR, pytest.param(_folder, "a folder", id="folder")]
)
def test_a_base_that_is_not_a_regular_file_is_refused(tmp_path, make, kind):
    base = make(tmp_path)
    run = validate(tmp_path, HEAD + f"extends: {base}\nnodes:\n  - {{op: relu}}\n")
    lines = refused(run, kind)
    assert lines == [f"spec.yaml:3:10: error: base spec {base} is {kind}, not a regular file"]


def test_a_base_of_a_base_that_is_a_device_is_refused_where_it_is_named(tmp_path):
    (tmp_path / "mid.yaml").write_text("extends: /dev/zero\n")
    run = validate(tmp_path, HEAD + "extends: mid.yaml\nnodes:\n  - {op: relu}\n")
    assert refused(run, "device") == [
        "mid.yaml:1:10: error: base spec /dev/zero is a character device, not a regular file"
    ]


def test_a_file_is_read_up_to_its_limit_whatever_its_size_says(tmp_path):
    """A sparse 8 GB file: refused after reading 2 MB, not after reading 8 GB."""
    with open(tmp_path / "huge.yaml", "wb") as handle:
        handle.truncate(8 << 30)
    lines = refused(archspec("validate", "huge.yaml", cwd=tmp_path), "larger than")
    assert lines == ["huge.yaml: error: file is larger than 2000000 bytes"]


def test_a_device_that_says_size_zero_is_never_read(tmp_path):
    (tmp_path / "small.yaml").write_text("x: 1\n")
    assert load.read_regular_file(str(tmp_path / "small.yaml"), Pos("x"), None, 10) == b"x: 1\n"
    with pytest.raises(SpecError, match="larger than"):
        load.read_regular_file(str(tmp_path / "small.yaml"), Pos("x"), None, 3)
    with pytest.raises(SpecError, match="a character device"):
        load.read_regular_file("/dev/urandom", Pos("x"), None, 10**6)


@pytest.mark.parametrize("parts", [1, 3, 6])
def test_bases_count_towards_the_byte_limit_in_all(tmp_path, parts):
    """Files of 0.9 MB and 1.2 MB / parts, that extend each other, are one input: 2 MB in all."""
    pad = "#" * 99 + "\n"
    for k in range(1, parts + 1):
        nxt = f"extends: part{k + 1}.yaml\n" if k < parts else ""
        (tmp_path / f"part{k}.yaml").write_text(nxt + "doc: x\n" + pad * (12_000 // parts))
    run = validate(tmp_path, HEAD + "extends: part1.yaml\nnodes: [{op: relu}]\n" + pad * 9000)
    refused(run, "the spec and its bases are larger than 2000000 bytes in all")


# -- 2. work that never reaches the op limit ---------------------------------------------------

ITERATIONS = "repeat: more than 50,000 iterations in all"
BOUND = "the network binds more than 50,000 nodes and block parameters in all"
STEPS = "expression too costly: more than 500,000 evaluation steps in all"
NESTED_ITEMS = "list of more than 10000 items in all (nested lists counted)"


def _nested_repeats(levels: int) -> str:
    node = "{op: relu, when: false}"
    for _ in range(levels):
        node = "{repeat: 10000, seq: [" + node + "]}"
    return HEAD + "nodes:\n  - " + node + "\n"


def _fan_out_blocks(depth: int, leaf: str) -> str:
    text = "".join(
        f"  B{k}:\n    nodes:\n      - {{block: B{k + 1}}}\n      - {{block: B{k + 1}}}\n"
        for k in range(depth)
    )
    return HEAD + f"blocks:\n{text}  B{depth}:\n    nodes: [{leaf}]\nnodes:\n  - {{block: B0}}\n"


def _fan_out_functions(depth: int) -> str:
    text = "".join(
        f"  f{k}: {{args: [x], expr: 'f{k + 1}(x) + f{k + 1}(x)'}}\n" for k in range(depth)
    )
    return (
        HEAD
        + f"functions:\n{text}  f{depth}: {{args: [x], expr: x}}\n"
        + ("let: {v: f0(1)}\nnodes:\n  - {op: relu}\n")
    )


def _let(value: str, nodes: str = "  - {op: relu}\n") -> str:
    return HEAD + f"let:\n  v: {value!r}\nnodes:\n{nodes}"


WORK = [
    pytest.param(_nested_repeats(2), ITERATIONS, id="repeat_10000x10000_absent"),
    pytest.param(_nested_repeats(3), ITERATIONS, id="repeat_10000x10000x10000_absent"),
    pytest.param(
        HEAD
        + "tables:\n  t: {columns: [a], rows: ["
        + ", ".join(["[1]"] * 300)
        + "]}\nnodes:\n  - for_each: t\n    seq: [{for_each: t, seq: [{op: relu, when: false}]}]\n",
        ITERATIONS,
        id="for_each_300x300",
    ),
    pytest.param(
        HEAD + "nodes:\n  - repeat: 10000\n    seq: [{op: relu, repeat: 10000, when: i >= 0}]\n",
        ITERATIONS,
        id="repeat_of_repeated_ops",
    ),
    pytest.param(_fan_out_blocks(60, "{op: relu, when: false}"), BOUND, id="blocks_2^60_absent"),
    pytest.param(_fan_out_blocks(40, "{seq: []}"), BOUND, id="blocks_2^40_empty_sequences"),
    pytest.param(
        HEAD
        + "blocks:\n  B:\n    params:\n"
        + "".join(f"      p{k}: 1\n" for k in range(20_000))
        + "    nodes: [{op: relu}]\nnodes:\n  - {block: B, repeat: 100}\n",
        BOUND,
        id="block_of_20000_params_called_100_times",
    ),
    pytest.param(
        HEAD + "nodes:\n  - repeat: 10000\n    seq: [{op: relu}, {op: relu}, {op: relu}]\n",
        "the network has more than 20,000 ops",
        id="ops_30000",
    ),
    pytest.param(_let("[[0] * 9999] * 9999"), NESTED_ITEMS, id="list_of_lists_times"),
    pytest.param(_let("sum([[1] * 9999] * 9999, [])"), NESTED_ITEMS, id="sum_of_lists"),
    pytest.param(_let("[[0] * 9999] * 9999 == [[0] * 9999] * 9999"), NESTED_ITEMS, id="compare"),
    pytest.param(
        _let("[[0] * 5000] + [[0] * 5000] + [[0] * 5000]"), NESTED_ITEMS, id="list_concatenation"
    ),
    pytest.param(
        HEAD + "params: {big: [" + ", ".join(["[1, 2, 3, 4]"] * 3000) + "]}\n"
        "let: {v: big == big}\nnodes:\n  - {op: relu}\n",
        NESTED_ITEMS,
        id="compare_nested_yaml_lists",
    ),
    pytest.param(_fan_out_functions(24), STEPS, id="functions_2^24"),
    pytest.param(
        _let("[1] * 9000", "  - repeat: 10000\n    seq: [{op: relu, when: v == v}]\n"),
        STEPS,
        id="compare_lists_in_a_loop",
    ),
    pytest.param(
        _let(
            "max([[1] * 100] * 90)", "  - repeat: 10000\n    seq: [{op: relu, when: max(v) == v}]\n"
        ),
        STEPS,
        id="max_of_lists_in_a_loop",
    ),
    pytest.param(
        _let("round(5, -10**14)"), "round(): the number of digits must be within", id="round"
    ),
    pytest.param(
        HEAD
        + "let:\n"
        + "".join(f"  v{k}: '" + "+".join(["1"] * 30) + "'\n" for k in range(2000))
        + "nodes:\n  - {op: relu}\n",
        "expressions too long: more than 100,000 characters in all",
        id="expressions_of_120000_characters",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), WORK)
def test_work_is_bounded_and_the_limit_is_named(tmp_path, spec, expected):
    refused(validate(tmp_path, spec), expected)


def test_errors_repeated_in_loops_and_misspellings_stay_fast(tmp_path):
    """A bad node in a loop, 20,000 names a hint could suggest, 30,000 unknown attributes."""
    names = "".join(f"  Block{k}: {{nodes: [{{op: relu}}]}}\n" for k in range(10_000))
    spec = HEAD + f"blocks:\n{names}nodes:\n  - repeat: 10000\n    seq:\n"
    spec += "      - {op: relu, when: undefined_name}\n      - {op: relu, unknown_op_key: 1}\n"
    spec += "      - {op: relu, " + ", ".join(f"z{k}: 1" for k in range(3000)) + "}\n"
    lines = refused(validate(tmp_path, spec), "undefined name `undefined_name`")
    assert len(lines) == 3002


def test_many_cycles_and_a_deep_dag_of_blocks_are_checked_in_linear_time(tmp_path):
    cycles = "".join(
        f"  B{k}:\n    nodes:\n" + "".join(f"      - {{block: B{j}}}\n" for j in range(40))
        for k in range(40)
    )
    run = validate(tmp_path, HEAD + f"blocks:\n{cycles}nodes:\n  - {{op: relu}}\n")
    assert len(refused(run, "uses itself")) <= ir.MAX_CYCLES
    dag = _fan_out_blocks(2000, "{op: relu}")  # 2^2000 paths, 4,000 calls; B0 never used
    run = validate(tmp_path, dag.replace("nodes:\n  - {block: B0}\n", "nodes:\n  - {op: relu}\n"))
    assert (run.status, run.seconds < WALL) == (0, True), run.stderr


# -- 3. user mistakes that must be located errors ----------------------------------------------


def test_a_symlink_loop_as_the_spec_path(tmp_path):
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    lines = refused(archspec("validate", "a.yaml", cwd=tmp_path), "symbolic links")
    assert lines == ["a.yaml: error: cannot read file: Too many levels of symbolic links"]


EXTENDS = [
    pytest.param("loop.yaml", "Too many levels of symbolic links", id="symlink_loop"),
    pytest.param('"base\\0.yaml"', "a file path cannot contain a NUL character", id="nul"),
    pytest.param("a" * 5000, "File name too long", id="name_of_5000_characters"),
    pytest.param(("d" * 300 + "/") * 3 + "b.yaml", "File name too long", id="long_component"),
    pytest.param("[a.yaml]", "`extends` must be a file path", id="not_a_string"),
    pytest.param("missing.yaml", "base spec not found: missing.yaml", id="missing"),
]


@pytest.mark.parametrize(("base", "expected"), EXTENDS)
def test_a_bad_extends_is_a_located_error(tmp_path, base, expected):
    (tmp_path / "loop.yaml").symlink_to("loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to("loop.yaml")
    lines = refused(
        validate(tmp_path, HEAD + f"extends: {base}\nnodes: [{{op: relu}}]\n"), expected
    )
    assert len(lines) == 1 and lines[0].startswith("spec.yaml:3:10: error: ")
    assert len(lines[0]) < 200


def _deep_alias() -> str:
    inner = "[" * 60 + "1" + "]" * 60
    return HEAD + f"let: {{a: &a {inner}}}\ndoc: " + "[" * 50 + "*a" + "]" * 50 + "\n"


NESTING = "YAML nested more than 100 levels deep"
DEEP_YAML = [
    pytest.param(HEAD + "doc: " + "[" * 500 + "]" * 500 + "\n", NESTING, id="flow_500"),
    pytest.param(HEAD + "doc:\n  " + "- " * 500 + "x\n", NESTING, id="block_500"),
    pytest.param(HEAD + "doc: " + "{a: " * 500 + "1" + "}" * 500 + "\n", NESTING, id="maps_500"),
    pytest.param(_deep_alias(), NESTING, id="alias_deepening"),
    # libyaml stops at 1,000 levels itself, as a syntax error, or we stop first at 100
    pytest.param(HEAD + "doc: " + "[" * 100_000 + "]" * 100_000 + "\n", "nest", id="flow_100000"),
    pytest.param(HEAD + "doc:\n  " + "- " * 100_000 + "x\n", "nest", id="block_100000"),
]


@pytest.mark.parametrize(("spec", "expected"), DEEP_YAML)
def test_deeply_nested_yaml_is_a_located_error(tmp_path, spec, expected):
    lines = refused(validate(tmp_path, spec), expected)
    assert len(lines) == 1 and re.match(r"spec\.yaml:\d+:\d+: error: ", lines[0])


def _chain(count: int, seqs: int = 0) -> str:
    def wrap(node: str) -> str:
        for _ in range(seqs):
            node = "{seq: [" + node + "]}"
        return node

    text = "".join(
        f"  B{k}:\n    nodes:\n      - {wrap(f'{{block: B{k + 1}}}')}\n" for k in range(count)
    )
    return (
        HEAD + f"blocks:\n{text}  B{count}:\n    nodes: [{{op: relu}}]\nnodes:\n  - {{block: B0}}\n"
    )


DEEP_BLOCKS = "blocks and sequences nested more than 100 deep"


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(_chain(250), id="250_blocks"),
        pytest.param(_chain(1000), id="1000_blocks"),
        pytest.param(_chain(60, seqs=40), id="60_blocks_of_40_sequences"),
    ],
)
def test_blocks_nested_too_deeply_are_refused_not_a_crash(tmp_path, spec):
    lines = refused(validate(tmp_path, spec, "--backend", "all"), DEEP_BLOCKS)
    assert len(lines) == 1


def test_blocks_nested_99_deep_still_build(tmp_path):
    run = validate(tmp_path, _chain(98), "--backend", "all")
    assert run.status == 0, run.stderr
    run = archspec("build", "spec.yaml", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert run.status == 0, run.stderr


DIGITS = "integer with more than 4,300 digits"
BIG_INTS = [
    pytest.param("1" * 5000, id="decimal"),
    pytest.param("-" + "9" * 4301, id="negative"),
    pytest.param("0x" + "f" * 4000, id="hex"),
    pytest.param("0" + "7" * 5000, id="octal"),
    pytest.param(":".join(["59"] * 2000), id="base_60"),
]


@pytest.mark.parametrize("number", BIG_INTS)
def test_integers_beyond_4300_digits_in_a_spec(tmp_path, number):
    spec = HEAD + f"nodes:\n  - {{op: conv2d, out: {number}, kernel: 1}}\n"
    assert refused(validate(tmp_path, spec), DIGITS) == [f"spec.yaml:4:23: error: {DIGITS}"]
    table = HEAD + f"tables:\n  t: {{columns: [a], rows: [[{number}]]}}\nnodes: [{{op: relu}}]\n"
    refused(validate(tmp_path, table), DIGITS)


@pytest.mark.parametrize("number", [p.values[0] for p in BIG_INTS[:3]])
def test_integers_beyond_4300_digits_on_the_command_line(tmp_path, number):
    (tmp_path / "spec.yaml").write_text(HEAD + "params: {n: 1}\nnodes: [{op: relu}]\n")
    run = archspec("summary", "spec.yaml", "--set", f"n={number}", cwd=tmp_path)
    assert refused(run, DIGITS) == [f"--set: error: `n`: {DIGITS}"]
    run = archspec("summary", "spec.yaml", "--input", f"3x{number}x8", cwd=tmp_path)
    assert refused(run, "--input") == [
        f"--input: error: expected CxHxW with positive integers, got `{shorten('3x' + number)}`"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[" * 150 + "]" * 150, "`n`: YAML nested more than 100 levels deep"),
        ("[" + ",".join(["1"] * 60_000) + "]", "`n`: document expands to more than 50,000"),
        ("{" + "a: 1, " * 2000 + "}", "expected a number, boolean, name or list"),
    ],
)
def test_set_values_beyond_a_limit_say_which(tmp_path, value, expected):
    (tmp_path / "spec.yaml").write_text(HEAD + "params: {n: 1}\nnodes: [{op: relu}]\n")
    lines = refused(archspec("summary", "spec.yaml", "--set", f"n={value}", cwd=tmp_path), expected)
    assert len(lines) == 1 and len(lines[0]) < 150


LONG = "n" * 1000  # YAML keys stop at 1,024 characters
QUOTED = [
    pytest.param(_let("n" * 1900), "undefined name `nnnn", id="undefined_name"),
    pytest.param(HEAD + f"nodes:\n  - {{name: a, op: {LONG}}}\n", "unknown op `nnn", id="op"),
    pytest.param(HEAD + f"nodes:\n  - {{op: {LONG}}}\n", "module path longer than", id="path"),
    pytest.param(HEAD + f"nodes:\n  - {{op: relu, {LONG}: 1}}\n", "no attribute `nnn", id="key"),
    pytest.param(HEAD + f"{LONG}: 1\nnodes: [{{op: relu}}]\n", "unknown key `nnn", id="top_key"),
    pytest.param(_let("ceil(1e300)"), "value <an integer of about 301 digits>", id="huge_int"),
    pytest.param(
        _let("[1] * 5000", "  - {op: relu, repeat: v}\n"), "got [1, 1, 1", id="repeat_a_list"
    ),
    pytest.param(
        HEAD + "params:\n  s: {type: str, default: " + "a" * 100_000 + "}\n"
        "nodes:\n  - {op: conv2d, out: s, kernel: 1}\n",
        "value longer than 10000 items",
        id="long_string_value",
    ),
    pytest.param(
        HEAD + "params:\n  s: {type: int, default: " + "a" * 100_000 + "}\nnodes: [{op: relu}]\n",
        "expected int, got 'aaaa",
        id="wrong_type_default",
    ),
    pytest.param(
        HEAD + "params:\n  l: {type: list, default: [" + ", ".join(["[1, 2]"] * 2000) + "]}\n"
        "nodes:\n  - {op: conv2d, out: l, kernel: 1}\n",
        "expected an integer, got [[1, 2]",
        id="list_attribute",
    ),
    pytest.param(
        HEAD
        + "blocks:\n  B:\n    nodes: [{op: relu}]\n"
        + f"nodes:\n  - {{block: B, args: {{{LONG}: 1}}}}\n",
        "has no parameter `nnn",
        id="block_argument",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), QUOTED)
def test_huge_values_are_quoted_cut_to_a_readable_length(tmp_path, spec, expected):
    lines = refused(validate(tmp_path, spec), expected)
    for line in lines:
        message = line.split(": error: ", 1)[1]
        assert len(message) < 200, message


# -- the limits are far above real networks ------------------------------------------------------


def test_bundled_specs_compile_with_every_limit_divided_by_twenty(monkeypatch):
    for module, name in [
        (load, "MAX_VALUES"),
        (expr, "MAX_STEPS"),
        (expr, "MAX_SOURCES"),
        (ir, "MAX_BOUND"),
        (ir, "MAX_ITERATIONS"),
        (ir, "MAX_NODES"),
    ]:
        monkeypatch.setattr(module, name, getattr(module, name) // 20)
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        assert compile_spec(path).nodes


def test_quote_is_cheap_and_short_for_any_value():
    assert quote(10**5000) == "<an integer of about 5,001 digits>"
    assert quote("a" * 10**6) == "'" + "a" * 56 + "..."
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert quote(deep) == "[" * 57 + "..."
    assert quote([1, "x", 2.5, None, True]) == "[1, 'x', 2.5, None, True]"
    assert len(quote(list(range(10**6)))) == 60
