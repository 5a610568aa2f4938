"""`archspec graph` (DOT, SVG, PNG) and `archspec summary --depth`, checked against the IR.

The DOT is parsed here (a few regular expressions: archspec writes one statement per
line); the expected boxes and edges are recomputed from the module tree and Node.inputs
independently of archspec.graph.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from archspec.analysis import summarize
from archspec.compiler import compile_spec
from archspec.graph import quote, to_dot
from archspec.ir import Graph, Module

SPECS = Path(__file__).resolve().parent.parent / "specs"
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")

QUOTED = r'"((?:[^"\\]|\\.)*)"'
NODE = re.compile(rf"^\s*(\w+) \[label={QUOTED}(.*)\];$")
EDGE = re.compile(rf"^\s*(\w+) -> (\w+) \[label={QUOTED}\];$")
CLUSTER = re.compile(r"^\s*subgraph cluster_\d+ \{$")
CLUSTER_LABEL = re.compile(rf"^\s*graph \[label={QUOTED},")


@dataclass
class Dot:
    """What the tests read from DOT text: node labels, edges with labels, clusters."""

    title: str
    nodes: dict[str, list[str]]  # id -> label lines
    edges: list[tuple[str, str, str]]
    clusters: list[str]

    def box(self, node_id: str) -> str:
        """A box's name: `<input>`, `<output>`, or its first label line (a module path)."""
        return f"<{node_id}>" if node_id in ("input", "output") else self.nodes[node_id][0]

    def named_edges(self) -> list[tuple[str, str, str]]:
        return [(self.box(a), self.box(b), label) for a, b, label in self.edges]


def unquote(body: str) -> str:
    """Inverse of DOT quoting plus Graphviz's label escapes, as archspec writes them."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), body)


def parse_dot(text: str) -> Dot:
    lines = text.splitlines()
    head = re.match(rf"^digraph {QUOTED} {{$", lines[0])
    assert head, lines[0]
    assert lines[-1] == "}"
    nodes: dict[str, list[str]] = {}
    edges, clusters = [], []
    for i, line in enumerate(lines[1:-1], 1):
        if m := EDGE.match(line):
            edges.append((m[1], m[2], unquote(m[3])))
        elif (m := NODE.match(line)) and m[1] not in ("graph", "node", "edge"):
            assert m[1] not in nodes, f"node {m[1]} declared twice"
            nodes[m[1]] = unquote(m[2]).split("\n")
        elif CLUSTER.match(line):
            clusters.append(unquote(CLUSTER_LABEL.match(lines[i + 1])[1]))
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return Dot(unquote(head[1]), nodes, edges, clusters)


@cache
def bundled(name: str) -> Graph:
    return compile_spec(SPECS / f"{name}.yaml")


def ops_below(module: Module) -> list:
    if module.node is not None:
        return [module.node]
    return [n for c in module.children for n in ops_below(c)]


def expected(graph: Graph, depth: int | None):
    """Boxes (names), clusters and named edges at `depth`, from the IR alone."""
    owner: dict[str, str] = {}
    boxes, clusters = ["<input>"], []

    def visit(module: Module, level: int) -> None:
        ops = ops_below(module)
        if not ops:
            return
        if module.kind == "op" or (depth is not None and level >= depth):
            name = module.path or module.name
            boxes.append(name)
            owner.update((n.path, name) for n in ops)
            return
        if level > 0:
            clusters.append(module.path)
        for child in module.children:
            visit(child, level + 1)

    visit(graph.root, 0)
    boxes.append("<output>")
    shapes = {n.path: n.shape for n in graph.nodes} | {"input": graph.input_shape}
    owner["input"] = "<input>"
    pairs = [(p, n.path) for n in graph.nodes for p in n.inputs]
    pairs.append((graph.output.producer, None))
    edges: dict[tuple[str, str], str] = {}
    for producer, consumer in pairs:
        src, dst = owner[producer], owner[consumer] if consumer else "<output>"
        if src != dst:
            edges.setdefault((src, dst), "x".join(map(str, shapes[producer])))
    return boxes, clusters, edges


def check_against_ir(graph: Graph, depth: int | None) -> Dot:
    dot = parse_dot(to_dot(graph, depth))
    boxes, clusters, edges = expected(graph, depth)
    assert [dot.box(i) for i in dot.nodes] == boxes
    assert [c.split(":")[0] for c in dot.clusters] == clusters
    named = dot.named_edges()
    assert len(named) == len({(a, b) for a, b, _ in named}), "duplicate edges"
    assert all(a != b for a, b, _ in named), "self-loop"
    assert {(a, b): label for a, b, label in named} == edges
    return dot


# -- the DOT graph against the IR ---------------------------------------------------------
def test_resnet18_full_depth_one_box_per_op():
    graph = bundled("resnet18")
    dot = check_against_ir(graph, None)
    assert len(dot.nodes) == len(graph.nodes) + 2  # every op, the input and the output
    pairs = {(p, n.path) for n in graph.nodes for p in n.inputs}
    assert len(dot.edges) == len(pairs) + 1  # every (input -> node) pair, the output edge
    assert len(dot.edges) == 70 + 8  # input -> 69 ops -> output, and 8 residual edges
    assert len(dot.clusters) == 4 + 8 + 3  # stages, blocks, downsample sequences
    by_path = {dot.box(i): dot.nodes[i] for i in dot.nodes}
    assert by_path["conv1"] == ["conv1", "conv2d 7x7 /2, 64"]
    assert by_path["layer2.0.conv1"] == ["layer2.0.conv1", "conv2d 3x3 /2, 128"]
    assert by_path["maxpool"] == ["maxpool", "max_pool2d 3x3 /2"]
    assert by_path["fc"] == ["fc", "linear, 1000"]
    assert by_path["<input>"] == ["input", "3x224x224"]
    assert by_path["<output>"] == ["output", "1000"]
    edges = {(a, b): label for a, b, label in dot.named_edges()}
    assert edges["maxpool", "layer1.0.conv1"] == "64x56x56"
    assert edges["maxpool", "layer1.0.add"] == "64x56x56"  # the residual edge
    assert edges["layer1.1.relu_out", "layer2.0.downsample.0"] == "64x56x56"
    assert edges["fc", "<output>"] == "1000"


@pytest.mark.parametrize("depth", [None, 0, 1, 2, 3, 4])
@pytest.mark.parametrize("spec", ["resnet18", "resnet50", "resnext50", "asymmnet_large"])
def test_boxes_clusters_and_edges_match_the_ir(spec, depth):
    check_against_ir(bundled(spec), depth)


def test_collapsed_counts_resnet18():
    graph = bundled("resnet18")
    whole = check_against_ir(graph, 0)
    assert [whole.box(i) for i in whole.nodes] == ["<input>", "ResNet18", "<output>"]
    assert whole.named_edges() == [
        ("<input>", "ResNet18", "3x224x224"),
        ("ResNet18", "<output>", "1000"),
    ]
    top = check_against_ir(graph, 1)
    assert len(top.nodes) == 11 + 2 and len(top.edges) == 12 and top.clusters == []
    stages = check_against_ir(graph, 2)
    assert len(stages.nodes) == 4 + 8 + 3 + 2 and len(stages.edges) == 16
    assert stages.clusters == [f"layer{k}: BasicBlock x2" for k in range(1, 5)]


def test_collapsed_box_shows_path_name_and_parameters():
    graph = bundled("resnet50")
    dot = check_against_ir(graph, 2)
    boxes = {dot.box(i): dot.nodes[i] for i in dot.nodes}
    trainable = sum(
        math.prod(s)
        for n in graph.nodes
        if n.path.startswith("layer1.0.")
        for s in n.params.values()
    )
    assert boxes["layer1.0"] == ["layer1.0", "Bottleneck", f"{trainable:,} params"]
    assert boxes["layer1.0"][2] == "75,008 params"
    layers = check_against_ir(graph, 1)
    assert [layers.nodes[i] for i in layers.nodes][5][:2] == ["layer1", "Bottleneck x3"]


def test_inline_spec_edges_outputs_and_empty_modules(write_spec):
    path = write_spec(
        """
        name: Net
        input: {channels: 3, height: 8, width: 8}
        blocks:
          Two:
            params: {c: int}
            nodes:
              - {name: a, op: conv2d, out: c, kernel: 1}
              - {name: b, op: conv2d, out: c, kernel: 3, inputs: x}
            output: a
        nodes:
          - {name: t, block: Two, args: {c: 4}}
          - {name: none, op: relu, repeat: 0}
          - {name: s, seq: [{op: relu}, {op: relu, when: false}]}
          - {name: cat, op: concat, inputs: [t, t, s]}
        """
    )
    graph = compile_spec(path)
    full = check_against_ir(graph, None)
    assert sorted(full.named_edges()) == [
        ("<input>", "t.a", "3x8x8"),
        ("<input>", "t.b", "3x8x8"),
        ("cat", "<output>", "12x8x8"),
        ("s.0", "cat", "4x8x8"),
        ("t.a", "cat", "4x8x8"),  # concat reads t twice: one edge
        ("t.a", "s.0", "4x8x8"),
    ]
    folded = check_against_ir(graph, 1)
    assert [folded.box(i) for i in folded.nodes] == ["<input>", "t", "s", "cat", "<output>"]
    rows = summarize(graph, 1).layers
    assert [(r.path, r.op, r.shape, r.ops) for r in rows] == [
        ("t", "Two", (4, 8, 8), 2),  # the block's `output: a`, not its last op
        ("s", "seq", (4, 8, 8), 1),
        ("cat", "concat", (12, 8, 8), 1),
    ]


def test_labels_escape_quotes_and_backslashes(write_spec):
    value = 'say "hi" \\ back\\N\\" end\\'
    for text in [value, "", "\\", '"', "a\nb", "tab\there"]:
        assert unquote(quote(text)[1:-1]) == text.replace("\t", " ")
    assert quote('a"b\\') == '"a\\"b\\\\"'  # the closing quote is never escaped
    path = write_spec(
        """
        name: Net
        input: {channels: 3, height: 8, width: 8}
        params:
          mode: {type: str, default: plain}
        nodes:
          - {op: relu}
        """
    )
    graph = compile_spec(path, {"mode": value})
    dot = parse_dot(to_dot(graph))
    assert dot.title == f"Net(mode={value!r})"
    if HAS_DOT:
        svg = subprocess.run(
            ["dot", "-Tsvg"], input=to_dot(graph), capture_output=True, text=True, check=True
        ).stdout
        texts = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
        assert f"Net(mode={value!r})" in texts


# -- the command ----------------------------------------------------------------------------
def archspec(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archspec.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_stdout_is_dot_and_options_apply(tmp_path):
    spec = str(SPECS / "resnet18.yaml")
    proc = archspec("graph", spec, "--depth", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == to_dot(bundled("resnet18"), 1)
    proc = archspec(
        "graph", spec, "--input", "3x64x64", "--set", "num_classes=10", "-o", "-", cwd=tmp_path
    )
    dot = parse_dot(proc.stdout)
    edges = {(a, b): label for a, b, label in dot.named_edges()}
    assert edges["<input>", "conv1"] == "3x64x64" and edges["fc", "<output>"] == "10"
    assert list(tmp_path.iterdir()) == []


def test_dot_file_is_written_through_a_renamed_temporary(tmp_path):
    target = tmp_path / "net.dot"
    target.write_text("old")
    proc = archspec("graph", str(SPECS / "resnet18.yaml"), "-o", "net.dot", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wrote net.dot\n"
    assert target.read_text() == to_dot(bundled("resnet18"))
    assert [p.name for p in tmp_path.iterdir()] == ["net.dot"]  # no temporary left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "net.pdf"], "--output: error: cannot tell the format of `net.pdf`"),
        (["-o", "missing/net.dot"], "--output: error: cannot write into `missing`"),
        (["--depth", "-1"], "Invalid value for '--depth'"),
        (["--input", "3x0x4"], "--input: error: expected CxHxW"),
    ],
)
def test_bad_options_are_located_errors(tmp_path, args, message):
    proc = archspec("graph", str(SPECS / "resnet18.yaml"), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_missing_dot_is_a_located_error(tmp_path, suffix):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    proc = archspec(
        "graph", str(SPECS / "resnet18.yaml"), "-o", f"net.{suffix}", cwd=tmp_path, env=env
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("--output: error: writing SVG or PNG needs Graphviz's `dot`")
    assert "apt-get install graphviz" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["bin"]
    proc = archspec("graph", str(SPECS / "resnet18.yaml"), "-o", "net.dot", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr  # DOT needs nothing


@needs_dot
@pytest.mark.parametrize("depth", [None, 1, 2])
def test_svg_has_one_node_group_per_box(tmp_path, depth):
    args = [] if depth is None else ["--depth", str(depth)]
    proc = archspec("graph", str(SPECS / "resnet18.yaml"), *args, "-o", "net.svg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    dot = parse_dot(to_dot(bundled("resnet18"), depth))
    svg = ET.parse(tmp_path / "net.svg").getroot()
    groups = [g.get("class") for g in svg.iter("{http://www.w3.org/2000/svg}g")]
    assert groups.count("node") == len(dot.nodes)
    assert groups.count("edge") == len(dot.edges)
    assert groups.count("cluster") == len(dot.clusters)
    assert [p.name for p in tmp_path.iterdir()] == ["net.svg"]


@needs_dot
def test_png_is_a_png(tmp_path):
    proc = archspec(
        "graph", str(SPECS / "resnet18.yaml"), "--depth", "2", "-o", "n.png", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- summary --depth ------------------------------------------------------------------------
def totals(s):
    return (s.trainable, s.bn_stats, s.macs, s.activations, s.output_shape)


def test_summary_depth_1_resnet152_has_eleven_rows():
    graph = bundled("resnet152")
    s = summarize(graph, 1)
    assert [r.path for r in s.layers] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
        "avgpool", "flatten", "fc",
    ]  # fmt: skip
    assert totals(s) == totals(summarize(graph)) == (
        60_192_808, 151_424, 11_513_626_624, s.activations, (1000,)
    )  # fmt: skip
    rows = {r.path: r for r in s.layers}
    assert (rows["layer3"].op, rows["layer3"].kind, rows["layer3"].ops) == (
        "Bottleneck x36", "repeat", 36 * 10 + 2
    )  # fmt: skip
    assert rows["layer4"].shape == (2048, 7, 7)


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4, 10])
@pytest.mark.parametrize("spec", ["resnet50", "resnext101_64x4d", "asymmnet_large"])
def test_summary_totals_never_change_with_depth(spec, depth):
    graph = bundled(spec)
    whole, folded = summarize(graph), summarize(graph, depth)
    assert totals(folded) == totals(whole)
    for field in ("trainable", "bn_stats", "macs"):
        assert sum(getattr(r, field) for r in folded.layers) == getattr(whole, field)
    assert sum(r.ops for r in folded.layers) == len(graph.nodes)
    assert folded.layers[-1].shape == whole.output_shape


def test_summary_depth_2_resnet50_counts_blocks_from_the_ir():
    graph = bundled("resnet50")
    rows = {r.path: r for r in summarize(graph, 2).layers}
    assert len(rows) == 4 + (3 + 4 + 6 + 3) + 3
    for block in ("layer1.0", "layer1.1", "layer3.5"):
        ops = [n for n in graph.nodes if n.path.startswith(block + ".")]
        assert rows[block].trainable == sum(math.prod(s) for n in ops for s in n.params.values())
        assert rows[block].macs == sum(n.macs for n in ops)
        assert rows[block].op == "Bottleneck" and rows[block].kind == "block"
    # by hand: 1x1 64->64, 3x3 64->64, 1x1 64->256, downsample 1x1 64->256, BN scale+shift
    conv = 64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256
    assert rows["layer1.0"].trainable == conv + 2 * (64 + 64 + 256 + 256) == 75_008
    assert rows["layer1.0"].bn_stats == 2 * (64 + 64 + 256 + 256)
    # without a downsample and reading 256 channels: networks.md's 70,400
    assert rows["layer1.1"].trainable == 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * 384 == 70_400
    assert rows["layer1.0"].shape == (256, 56, 56)


def test_summary_cli_depth_table_and_json(tmp_path):
    spec = str(SPECS / "resnet152.yaml")
    proc = archspec("summary", spec, "--depth", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Bottleneck x36" in proc.stdout and "layer3.0" not in proc.stdout
    assert "60,192,808" in proc.stdout and "11,513,626,624" in proc.stdout
    assert len(proc.stdout.splitlines()) < 25  # a 152-layer network on one screen
    data = json.loads(archspec("summary", spec, "--depth", "1", "--json", cwd=tmp_path).stdout)
    assert data["depth"] == 1 and len(data["layers"]) == 11
    assert data["layers"][4] == {
        "path": "layer1",
        "op": "Bottleneck x3",
        "shape": [256, 56, 56],
        "trainable": 215_808,
        "bn_stats": 2_816,
        "macs": 667_942_912,
        "kind": "repeat",
        "ops": 3 * 10 + 2,  # ten ops a block, and the downsample
    }
    assert sum(r["trainable"] for r in data["layers"]) == data["trainable"] == 60_192_808
    plain = json.loads(archspec("summary", spec, "--json", cwd=tmp_path).stdout)
    assert "depth" not in plain and set(plain["layers"][0]) == {
        "path", "op", "shape", "trainable", "bn_stats", "macs"
    }  # fmt: skip
