"""`archspec import`: PyTorch models (written here, and torchvision's) become specs whose
rebuilt module loads the original's state dict strictly and computes the same function;
blocks are recovered from module classes, repeats from Sequentials; unsupported ops are
all reported at once, located, and nothing is written."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest
import yaml
from conftest import run_cli
from test_mobilenet import import_torchvision

from archspec.errors import SpecError
from archspec.importing import import_model
from archspec.importing.prove import prove

torch = pytest.importorskip("torch")

MODELS = '''
import torch
from torch import nn
from torch.nn import functional as F


class Unit(nn.Module):
    """Two convolutions and a shortcut, projected where the shape changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = nn.ReLU(inplace=True)  # one module, called twice
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.proj is None else self.proj(x)
        return self.act(out + shortcut)


class Stem(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x):
        torch._assert(x.shape[1] == 3, "an RGB image")  # a shape check: dropped
        return F.relu(self.conv(x))


class Net(nn.Module):
    """Nested custom blocks, functional calls, an optional branch, a shared ReLU."""

    def __init__(self, width=8, classes=5):
        super().__init__()
        self.stem = Stem(width)
        self.stage1 = nn.Sequential(Unit(width, width), Unit(width, width))
        self.stage2 = nn.Sequential(Unit(width, 2 * width, 2), Unit(2 * width, 2 * width))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stem(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.head(x)


class MeanHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        x = self.shuffle(self.conv(x))
        return torch.cumsum(x, dim=1)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            x = -x
        return x


class NormAct(nn.BatchNorm2d):
    """A batch norm that runs F.batch_norm on its own weights, then its activation."""

    def __init__(self, channels):
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x):
        x = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, self.eps
        )
        return self.act(x)


class SameConv(nn.Conv2d):
    """TensorFlow's "same" padding, computed from the input's size in forward."""

    def forward(self, x):
        h, w = x.shape[-2:]
        pad_h = max((-(h // -self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - h, 0)
        pad_w = max((-(w // -self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - w, 0)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Split(nn.Module):
    """Half the channels through a branch, a layer scale, a channel shuffle by views."""

    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(SameConv(half, half, 3), NormAct(half))
        self.gamma = nn.Parameter(torch.full((channels // 2, 1, 1), 0.5))

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.gamma * self.branch(b)], dim=1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous()
        return x.view(n, c, h, w)


class Modern(nn.Module):
    """Functions on a module's own weights, shapes read in forward, parameters, views."""

    def __init__(self):
        super().__init__()
        self.stem = SameConv(3, 8, 3, stride=2)
        self.units = nn.Sequential(Split(8), Split(8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.units(self.stem(x))
        if x.shape[-1] > 1:  # a branch on a size: the traced run's
            x = x.mean((2, 3))
        return self.head(x)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(textwrap.dedent(MODELS))
    return path


def test_a_custom_model_round_trips_with_its_blocks_and_repeats(models):
    imported = import_model(f"{models}:Net", (), (3, 16, 16))
    spec = yaml.safe_load(imported.text)
    assert list(spec["blocks"]) == ["Stem", "Unit"]
    unit = spec["blocks"]["Unit"]
    assert unit["doc"] == "Two convolutions and a shortcut, projected where the shape changes."
    # what differs between the four instances, named after the constructor's arguments
    assert unit["params"] == {"cout": "int", "stride": "int", "has_proj": "bool"}
    by_name = {n["name"]: n for n in unit["nodes"]}
    assert by_name["conv1"] == {
        "name": "conv1",
        "op": "conv2d",
        "out": "cout",
        "kernel": 3,
        "stride": "stride",
        "padding": 1,
        "bias": False,
    }
    assert by_name["bn2"] == {"name": "bn2", "op": "batchnorm2d", "eps": 0.001}
    assert by_name["act_1"]["op"] == "relu"  # the shared ReLU, called again: a copy
    stages = {n["name"]: n for n in spec["nodes"]}
    assert stages["stage1"]["repeat"] == 2 and stages["stage1"]["block"] == "Unit"
    assert stages["stage2"]["args"]["stride"] == "2 if i == 0 else 1"
    proof = prove(imported.text, imported.model, (3, 16, 16))
    assert proof.ok, proof.problems
    assert proof.difference <= 1e-5
    assert (
        proof.trainable[0]
        == proof.trainable[1]
        == sum(p.numel() for p in imported.model.parameters())
    )


def test_a_spatial_mean_is_a_global_pool_and_a_flatten(models):
    imported = import_model(f"{models}:MeanHead", (), (3, 8, 8))
    nodes = yaml.safe_load(imported.text)["nodes"]
    assert [n["op"] for n in nodes] == ["conv2d", "global_avg_pool", "flatten", "linear"]
    assert prove(imported.text, imported.model, (3, 8, 8)).ok


def test_functions_on_own_weights_sizes_parameters_and_views_round_trip(models):
    """A BatchNorm2d subclass calling F.batch_norm on its weights is a `batchnorm2d` keyed
    as the module (its activation joins the parent); a conv padding by its input's size
    is `pad` + `conv2d` at that size; `self.gamma` is a parameter; chunk, cat and the
    view-transpose-view shuffle are `chunk`, `concat` and `channel_shuffle`."""
    imported = import_model(f"{models}:Modern", (), (3, 15, 15))
    spec = yaml.safe_load(imported.text)
    assert [n["op"] for n in spec["nodes"][:2]] == ["pad", "conv2d"]
    assert spec["nodes"][0]["after"] == [1, 1]  # 15 -> 8 at stride 2: one pixel after
    split = spec["blocks"]["Split"]["nodes"]
    assert [(n["name"], n.get("op")) for n in split] == [
        ("gamma", "parameter"),  # reads nothing: listed first
        ("chunk", "chunk"),
        ("branch", None),
        ("multiply", "multiply"),
        ("concat", "concat"),
        ("channel_shuffle", "channel_shuffle"),
    ]
    branch = split[2]["seq"]
    assert [i.get("op") for i in branch] == ["pad", "conv2d", "batchnorm2d", "relu"]
    # the modules keep their keys; the calls the model makes in forward take their op's
    assert [i.get("key") for i in branch] == ["'pad'", "'0'", "'1'", None]
    proof = prove(imported.text, imported.model, (3, 15, 15))
    assert proof.ok, proof.problems
    assert proof.keys == len(imported.model.state_dict()) == 20


def test_unsupported_ops_are_reported_together_and_located(models):
    with pytest.raises(SpecError) as caught:
        import_model(f"{models}:Unsupported", (), (3, 8, 8))
    messages = [d.message for d in caught.value.diagnostics]
    assert len(messages) == 2
    assert any(m.startswith("`shuffle`:") and "PixelShuffle" in m for m in messages)
    assert any("cumsum" in m for m in messages)
    assert all(d.pos.file == str(models) and d.pos.line > 0 for d in caught.value.diagnostics)


def test_data_dependent_control_flow_names_the_line(models):
    with pytest.raises(SpecError) as caught:
        import_model(f"{models}:Branchy", (), (3, 8, 8))
    (d,) = caught.value.diagnostics
    line = textwrap.dedent(MODELS).splitlines().index("        if x.sum() > 0:") + 1
    assert (d.pos.file, d.pos.line) == (str(models), line)
    assert d.message.startswith("data-dependent control flow")


def test_a_module_with_weights_called_twice_is_refused(models):
    with pytest.raises(SpecError, match="calls `conv` twice: its weights would be shared"):
        import_model(f"{models}:Shared", (), (3, 8, 8))


def test_the_command_writes_nothing_on_error_and_the_spec_on_success(models, tmp_path):
    out = tmp_path / "out.yaml"
    failed = run_cli(
        "import", f"{models}:Unsupported", "--input", "3x8x8", "-o", str(out), cwd=tmp_path
    )
    assert failed.returncode == 2 and not out.exists()
    assert failed.stderr.count(": error: ") == 2
    done = run_cli(
        "import",
        f"{models}:Net",
        "--args",
        "width=4",
        "--input",
        "3x16x16",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "keys loaded strictly" in done.stdout and out.exists()
    built = run_cli(
        "build", str(out), "--backend", "all", "--out", str(tmp_path / "gen"), cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr


def test_torchvision_resnet50_is_one_bottleneck_block_and_four_repeats(tmp_path):
    tv = import_torchvision()
    stub = tmp_path / "tv.py"
    stub.write_text("from torchvision.models import resnet50\n")
    imported = import_model(f"{stub}:resnet50", (), (3, 32, 32))
    spec = yaml.safe_load(imported.text)
    assert list(spec["blocks"]) == ["Bottleneck"]
    # `downsample` is the constructor's argument, but also the node's name: a flag of its own
    assert spec["blocks"]["Bottleneck"]["params"] == {
        "planes": "int",
        "stride": "int",
        "has_downsample": "bool",
    }
    repeats = [(n["name"], n["repeat"]) for n in spec["nodes"] if "repeat" in n]
    assert repeats == [("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)]
    from archspec.resources import SPECS_DIR

    bundled = sum(
        len((SPECS_DIR / f).read_text().splitlines()) for f in ("resnet18.yaml", "resnet50.yaml")
    )
    assert len(imported.text.splitlines()) <= 2 * bundled
    proof = prove(imported.text, imported.model, (3, 32, 32))
    assert proof.ok and proof.keys == len(tv.models.resnet50().state_dict())


# the generated MindSpore module, the converted checkpoint loaded strictly, on a saved input
MINDSPORE_RUN = """
import sys, importlib.util
import numpy as np
import mindspore as ms
folder = sys.argv[1]
spec = importlib.util.spec_from_file_location("net", folder + "/gen/mindspore/resnet50.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
net = module.ResNet()
not_loaded, unused = ms.load_param_into_net(net, ms.load_checkpoint(folder + "/resnet50.ckpt"),
                                            strict_load=True)
assert not not_loaded and not unused, (not_loaded, unused)
net.set_train(False)
out = net(ms.Tensor(np.load(folder + "/x.npy")))
np.save(folder + "/y.npy", out.asnumpy())
"""


def test_torchvision_resnet50_to_a_mindspore_checkpoint_end_to_end(tmp_path):
    """The README's walk-through: import with weights, convert, build, load, agree."""
    import subprocess
    import sys

    import_torchvision()
    if importlib.util.find_spec("mindspore") is None:  # not imported here: it sets the
        pytest.skip("mindspore is not installed")  # environment later workers inherit
    (tmp_path / "tv.py").write_text(
        "import torch\n"
        "torch.library.register_fake = lambda name, fn=None, *a, **k: fn or (lambda f: f)\n"
        "from torchvision.models import resnet50\n"
    )
    steps = [
        (
            "import",
            "tv.py:resnet50",
            "--input",
            "3x32x32",
            "-o",
            "resnet50.yaml",
            "--weights",
            "resnet50.safetensors",
        ),
        (
            "convert",
            "resnet50.yaml",
            "--from",
            "torch",
            "resnet50.safetensors",
            "--to",
            "mindspore",
            "resnet50.ckpt",
        ),
        ("build", "resnet50.yaml", "--backend", "mindspore", "--out", "gen"),
    ]
    for step in steps:
        done = run_cli(*step, cwd=tmp_path)
        assert done.returncode == 0, (step, done.stderr)
    from safetensors.numpy import load_file

    weights = load_file(str(tmp_path / "resnet50.safetensors"))
    model = import_torchvision().models.resnet50().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    x = torch.randn(1, 3, 32, 32)
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "x.npy", x.numpy())
    ran = subprocess.run(
        [sys.executable, "-c", MINDSPORE_RUN, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    with torch.no_grad():
        want = model(x).numpy()
    got = np.load(tmp_path / "y.npy")
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
