"""How `archspec import` writes: its files through build's Transaction (complete or not at
all), the model's class count as a network parameter (`num_classes`), and comments on the
parameters the importer had to name itself."""

from __future__ import annotations

import os
import textwrap
import types
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from test_mobilenet import import_torchvision

from archspec.build import STAGED, write_file
from archspec.importing import import_model, save_weights
from archspec.importing.prove import prove
from archspec.importing.write import network_params

torch = pytest.importorskip("torch")

MODELS = '''
from torch import nn


class Down(nn.Module):
    """A convolution whose stride no constructor argument holds."""

    def __init__(self, c, first):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2 if first else 1, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class Tiny(nn.Module):
    def __init__(self, num_classes=10, dropout=True):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(Down(4, True), Down(4, False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.body(self.stem(x))).flatten(1))


class Gate(nn.Module):
    def __init__(self, c, project):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        if project:
            self.extra = nn.Conv2d(c, c, 1)
        self.project = project

    def forward(self, x):
        x = self.conv(x)
        return self.extra(x) if self.project else x


class Gated(nn.Module):
    def __init__(self, width=4, classes=3):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(Gate(width, 1), Gate(width, 0))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.pool(self.body(self.stem(x))).flatten(1))
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(textwrap.dedent(MODELS))
    return path


# -- writing files -------------------------------------------------------------------------
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(STAGED))


def test_write_file_replaces_a_file_whole_with_the_umask_permissions(tmp_path):
    target = tmp_path / "spec.yaml"
    target.write_text("old\n")
    write_file(target, "new: 1\n")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "new: 1\n"
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert _leftovers(tmp_path) == []


def test_write_file_leaves_everything_as_it_was_when_the_writer_fails(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"previous")

    def half(tmp: str) -> None:
        Path(tmp).write_bytes(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file(target, half)
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []
    with pytest.raises(OSError, match="disk full"):
        write_file(tmp_path / "new" / "deeper" / "w.safetensors", half)
    assert not (tmp_path / "new").exists()  # the folders it made are removed again


def test_save_weights_writes_the_state_dict_or_nothing(tmp_path, monkeypatch):
    from safetensors import safe_open

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / "w.safetensors"
    save_weights(model, str(path), "Net")
    with safe_open(str(path), "np") as f:
        assert sorted(f.keys()) == sorted(model.state_dict())
        assert f.metadata()["archspec_spec"] == "Net"
    written = path.read_bytes()

    def failing(tmp, arrays, metadata):
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("interrupted")

    monkeypatch.setattr("archspec.checkpoint.write_safetensors", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        save_weights(model, str(path), "Other")
    assert path.read_bytes() == written and _leftovers(tmp_path) == []


def test_the_command_writes_the_spec_and_weights_into_new_folders(models, tmp_path):
    done = run_cli(
        "import",
        f"{models}:Tiny",
        "--input",
        "3x32x32",
        "-o",
        "out/tiny.yaml",
        "--weights",
        "out/w/tiny.safetensors",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "tiny.yaml").read_text()
    assert yaml.safe_load(text)["name"] == "Tiny"
    assert (tmp_path / "out" / "w" / "tiny.safetensors").stat().st_size > 0
    assert _leftovers(tmp_path / "out") == [] and _leftovers(tmp_path / "out" / "w") == []


# -- network parameters -----------------------------------------------------------------------
def _load(text: str, overrides=None):
    """The spec's PyTorch network class (its constructor takes the network's parameters)."""
    import tempfile

    from archspec.backend import available
    from archspec.compiler import compile_spec
    from archspec.emit import module_view

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text)
        graph = compile_spec(path, overrides, input_shape=(3, 32, 32))
    backend = available()["torch"]
    view = module_view(graph, backend, [])
    module = types.ModuleType("imported")
    exec(compile(backend.render(view), "<spec>", "exec"), module.__dict__)
    return graph, getattr(module, next(c.name for c in view.classes if c.is_network))


def test_torchvision_resnet18_reads_num_classes_from_a_network_parameter(tmp_path):
    tv = import_torchvision()
    stub = tmp_path / "tv.py"
    stub.write_text("from torchvision.models import resnet18\n")
    imported = import_model(f"{stub}:resnet18", (), (3, 32, 32))
    assert "  num_classes: {type: int, default: 1000}  # ResNet's constructor argument" in (
        imported.text.splitlines()
    )
    spec = yaml.safe_load(imported.text)
    assert spec["params"] == {"num_classes": {"type": "int", "default": 1000}}
    assert spec["nodes"][-1] == {"name": "fc", "op": "linear", "out": "num_classes"}
    # the other int arguments (groups=1, width_per_group=64) stay literals: not the head's
    assert spec["nodes"][0]["out"] == 64
    assert prove(imported.text, imported.model, (3, 32, 32)).ok  # built with the default

    graph, _ = _load(imported.text, {"num_classes": 10})
    assert graph.params == {"num_classes": 10} and graph.output.shape == (10,)
    _, network = _load(imported.text)
    rebuilt = network(num_classes=10).eval()
    model = tv.models.resnet18(num_classes=10).eval()
    loaded = rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert not loaded.missing_keys and not loaded.unexpected_keys
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want, got = model(x), rebuilt(x)
    assert got.shape == (2, 10)
    assert float((want - got).abs().max()) <= 1e-5 * float(want.abs().max())


def test_a_custom_model_gets_its_class_count_but_not_its_bool(models):
    imported = import_model(f"{models}:Tiny", (), (3, 32, 32))
    spec = yaml.safe_load(imported.text)
    assert spec["params"] == {"num_classes": {"type": "int", "default": 10}}
    assert spec["nodes"][-1]["out"] == "num_classes"
    assert prove(imported.text, imported.model, (3, 32, 32)).ok


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("classes=4",), "equals `width` too: which one is meant is unknown"),
        (("width=8", "classes=8"), "both arguments hold the value"),
    ],
)
def test_an_ambiguous_class_count_stays_a_literal(models, args, why):
    imported = import_model(f"{models}:Gated", args, (3, 32, 32))
    spec = yaml.safe_load(imported.text)
    assert "params" not in spec, why
    assert isinstance(spec["nodes"][-1]["out"], int)
    assert prove(imported.text, imported.model, (3, 32, 32)).ok


def _net(*outs: int) -> list[dict]:
    """Top-level nodes: a stem convolution, a sequence, linear layers of these widths."""
    return [
        {"name": "stem", "op": "conv2d", "out": 8, "kernel": 3},
        {"name": "body", "seq": [{"op": "relu"}, {"key": "pool", "op": "global_avg_pool"}]},
        *({"name": f"fc{k}", "op": "linear", "out": o} for k, o in enumerate(outs)),
    ]


@pytest.mark.parametrize(
    ("init_args", "outs", "expected"),
    [
        ({"n": 10}, (10,), {"n": {"type": "int", "default": 10}}),
        ({"n": 10, "flag": True}, (10,), {"n": {"type": "int", "default": 10}}),
        ({"flag": True}, (1,), {}),  # a bool is not an int here, though True == 1
        ({"n": 10.0}, (10,), {}),  # nor is a float
        ({"n": 10}, (10, 5), {}),  # not the last layer's `out`
        ({"n": 8}, (8,), {}),  # also the stem's `out`
        ({"n": 3}, (3,), {}),  # also the stem's kernel
        ({"n": 10, "m": 10}, (10,), {}),  # two arguments: which one?
        ({"range": 10}, (10,), {}),  # a builtin: the generated code would shadow it
        ({"lambda": 10}, (10,), {}),  # a keyword
        ({"pool": 10}, (10,), {}),  # a node's name
        ({"Block": 10}, (10,), {}),  # a block's name
    ],
)
def test_the_network_parameter_rule_is_conservative(init_args, outs, expected):
    nodes = _net(*outs)
    assert network_params(nodes, init_args, {"Block"}) == expected
    assert nodes[-1]["out"] == (next(iter(expected)) if expected else outs[-1])


# -- comments ----------------------------------------------------------------------------------
def test_a_parameter_named_after_a_node_says_so(models):
    imported = import_model(f"{models}:Tiny", (), (3, 32, 32))
    lines = imported.text.splitlines()
    at = lines.index("  Down:")
    assert lines[at : at + 5] == [
        "  Down:",
        "    doc: A convolution whose stride no constructor argument holds.",
        "    params:",
        "      conv_stride: int  # differs between instances; no constructor argument matches",
        "    nodes:",
    ]
    spec = yaml.safe_load(imported.text)
    assert spec["blocks"]["Down"]["params"] == {"conv_stride": "int"}
    assert spec["nodes"][1]["args"] == {"conv_stride": "2 if i == 0 else 1"}
    assert all(len(line) <= 100 for line in lines if not line.startswith("#"))  # not the path


def test_an_invented_flag_says_so_and_an_argument_flag_does_not(models):
    imported = import_model(f"{models}:Gated", (), (3, 32, 32))
    lines = imported.text.splitlines()
    at = lines.index("  Gate:")
    # `project` is an argument, but 1/0 are ints, not None or false: the flag is invented
    assert lines[at + 1 : at + 4] == [
        "    params:",
        "      has_extra: bool  # invented: only some instances have `extra`",
        "    nodes:",
    ]
    assert prove(imported.text, imported.model, (3, 32, 32)).ok
    # the network's parameter defaults to the value the model was built with
    six = import_model(f"{models}:Tiny", ("num_classes=6",), (3, 32, 32)).text
    assert "  num_classes: {type: int, default: 6}  # Tiny's constructor argument" in six
