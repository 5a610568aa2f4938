"""`archspec check` and `archspec convert`: the backends compute the same function, and
checkpoints move between them exactly."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
ASYMM = ["specs/asymmnet_large.yaml", "specs/asymmnet_small.yaml"]
# checked here in CI: the families no family test checks across the frameworks
# (test_efficientnet, test_convnext, test_mobilenet, test_shufflenet, test_regnet, test_vit,
# test_swin and the seeds' tests check theirs), without the other variants of the same
# blocks (ResNet-34: ResNet-18's module with more blocks; ResNet-50: ResNeXt-50's module with
# one group of 64, as the seed ResNet-50 of test_seed_ms_resnet50 checks too; ResNet-101,
# -152, ResNeXt-101: minutes more); every bundled spec is checked nightly
CI_CHECKED = ("asymmnet_large", "asymmnet_small", "resnet18", "resnext50")
UNCHECKED = [f"specs/{name}.yaml" for name in CI_CHECKED]
# parameters a spec needs at 48x48: the seed ResNeXt's head pools a fixed 7x7 window; a Swin
# pads and masks its windows for image_size
SETS_AT_48 = {"specs/seed_resnext50.yaml": ["--set", "pool_size=2"]}
SETS_AT_48.update({f"specs/swin_{v}.yaml": ["--set", "image_size=48"] for v in "tsb"})
# a ViT's position embedding is for image_size; a 32-pixel patch does not divide 48
SETS_AT_48.update({f"specs/vit_{v}_16.yaml": ["--set", "image_size=48"] for v in "bl"})
SETS_AT_48.update(
    {f"specs/vit_{v}_32.yaml": ["--set", "image_size=48", "--set", "patch_size=24"] for v in "bl"}
)


def archspec(*args: str, env: dict | None = None, cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, "-m", "archspec.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def check_json(*args: str, env: dict | None = None) -> dict:
    proc = archspec("check", *args, "--json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] == (proc.returncode == 0)
    return data


# one narrower multiplier in CI (the same rounding to multiples of 8 at other widths nightly)
@pytest.mark.parametrize(
    "sets",
    [
        [],
        pytest.param(["--set", "multiplier=0.75"], marks=pytest.mark.nightly),
        ["--set", "multiplier=0.5"],
        pytest.param(["--set", "multiplier=0.35"], marks=pytest.mark.nightly),
        ["--set", "asymmrate=0"],
        ["--set", "asymmrate=2"],
    ],
    ids=["defaults", "k0.75", "k0.5", "k0.35", "r0", "r2"],
)
def test_check_passes_for_bundled_specs(sets):
    # 48x48 keeps MindSpore fast and still leaves the last BN 2x2 values per sample: at 1x1,
    # train-mode BN over a batch of 2 normalises two numbers and is ill-conditioned
    if not sets:  # the command itself, its JSON and exit status
        data = check_json(*UNCHECKED, "--input", "3x48x48")
    else:  # the AsymmNet parameters: the same check on the session's shared workers
        data = check_in_process(ASYMM, sets, "3x48x48")
    assert_agree(data)


def check_in_process(specs: list[str], sets: list[str], input_: str) -> dict:
    """What `archspec check SPECS --set ... --input ... --json` prints, computed as the
    command does (its --set and --input parsers, check_spec, the report's JSON) but on the
    session's shared framework workers instead of three fresh ones per run."""
    from conftest import check_workers

    from archspec.backend import available
    from archspec.check import TOLERANCE, check_spec
    from archspec.cli import parse_input, parse_set

    overrides, shape = parse_set(tuple(sets[1::2])), parse_input(input_)
    backends = list(available().values())
    reports = [check_spec(ROOT / s, backends, check_workers(), overrides, shape, 2) for s in specs]
    data = {
        "tolerance": TOLERANCE,
        "ok": all(r.ok for r in reports),
        "specs": [r.to_json() for r in reports],
    }
    return json.loads(json.dumps(data))  # the command's JSON, as check_json reads it


def test_check_covers_every_family():
    """Every bundled spec is checked in CI by this file or by its family's test."""
    families = {Path(s).stem.split("_")[0].rstrip("0123456789") for s in SPECS}
    tested = {"efficientnet", "convnext", "mobilenet", "shufflenet", "regnet", "seed", "vit"}
    tested |= {"swin"}
    assert families - tested == {Path(s).stem.split("_")[0].rstrip("0123456789") for s in UNCHECKED}
    assert set(UNCHECKED) <= set(SPECS)


@pytest.mark.nightly
def test_check_passes_for_every_bundled_spec():
    plain = [s for s in SPECS if s not in SETS_AT_48]
    assert_agree(check_json(*plain, "--input", "3x48x48"))
    for spec, sets in SETS_AT_48.items():
        assert_agree(check_json(spec, *sets, "--input", "3x48x48"))


def assert_agree(data: dict) -> None:
    assert data["tolerance"] == 1e-4
    for spec in data["specs"]:
        assert spec["ok"], json.dumps(spec, indent=1)[:3000]
        assert [b["backend"] for b in spec["backends"]] == ["torch", "paddle", "mindspore"]
        for b in spec["backends"]:
            assert (b["trainable"], b["bn_stats"], b["output_shape"]) == (
                spec["expected"]["trainable"],
                spec["expected"]["bn_stats"],
                spec["expected"]["output"],
            )
        for b in spec["backends"][1:]:
            assert b["eval"]["rel"] <= 1e-4 and b["eval"]["tol"] == 1e-4
            for key in ("train", "grad_input", "grad_weights"):
                assert b[key]["rel"] <= b[key]["tol"], (spec["spec"], b["backend"], key, b[key])
            if not b["kink_flips"]:
                assert b["grad_weights"]["tol"] < 1e-2


def broken_backends(tmp_path: Path) -> Path:
    """A copy of backends/ whose Paddle convolutions pad one pixel too many."""
    folder = tmp_path / "backends"
    shutil.copytree(ROOT / "backends", folder)
    table = folder / "paddle" / "backend.yaml"
    text = table.read_text()
    old = "      - {name: padding, value: padding, default: 0}\n      - {name: dilation"
    assert old in text
    table.write_text(text.replace(old, old.replace("value: padding,", "value: padding + 1,"), 1))
    return folder


def test_a_broken_emitter_fails_the_check_and_names_the_layer(tmp_path):
    spec = tmp_path / "chain.yaml"
    spec.write_text(
        "name: Chain\ninput: {channels: 3, height: 16, width: 16}\nnodes:\n"
        "  - {name: stem, op: conv2d, out: 8, kernel: 3, padding: 1}\n"
        "  - {name: bn, op: batchnorm2d}\n  - {name: act, op: relu}\n"
        "  - {name: pool, op: global_avg_pool}\n  - {op: flatten}\n"
        "  - {name: head, op: linear, out: 4}\n"
    )
    env = {"ARCHSPEC_BACKENDS": str(broken_backends(tmp_path)), **_env()}
    data = check_json(str(spec), env=env)
    _, paddle, mindspore = data["specs"][0]["backends"]
    assert not data["ok"]
    assert paddle["first_divergence"] == "stem (conv2d)"
    assert paddle["eval"]["rel"] > 1e-4
    assert mindspore["first_divergence"] is None and mindspore["eval"]["rel"] <= 1e-4
    table = archspec("check", str(spec), env=env)
    assert table.returncode == 1
    assert "DIFFERS from stem (conv2d)" in table.stdout


def _env() -> dict:
    import os

    return dict(os.environ)


def test_check_bad_input_is_a_user_error():
    proc = archspec("check", "specs/resnet18.yaml", "--backends", "torch,jax")
    assert (proc.returncode, proc.stderr) == (2, "--backends: error: unknown backend `jax`\n")
    proc = archspec("check", "specs/resnet18.yaml", "--set", "depth=3")
    assert proc.returncode == 2
    assert proc.stderr == "--set: error: `depth` is not a parameter of ResNet18\n"


# -- conversion -----------------------------------------------------------------------------

SAVE_TORCH = """
import sys, torch
sys.path.insert(0, {root!r})
from generated.torch.{stem} import {cls}
torch.manual_seed(1)
net = {cls}()
for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.normal_(); m.running_var.uniform_(0.5, 2)
torch.save(net.state_dict(), {path!r})
"""

COMPARE_TORCH = """
import sys, torch
a, b = torch.load({a!r}), torch.load({b!r})
assert a.keys() == b.keys(), a.keys() ^ b.keys()
bad = [k for k in a if not torch.equal(a[k], b[k])]
assert not bad, bad
print(len(a))
"""

LOAD_MINDSPORE = """
import sys
import mindspore as ms
sys.path.insert(0, {root!r})
from generated.mindspore.{stem} import {cls}
net = {cls}()
params = ms.load_checkpoint({path!r})
skipped, unused = ms.load_param_into_net(net, params, strict_load=True)
assert not skipped and not unused, (skipped, unused)
print(len(params))
"""


def python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.mark.parametrize(
    ("stem", "cls"), [("resnet18", "ResNet18"), ("asymmnet_small", "AsymmNetSmall")]
)
def test_round_trip_is_bit_identical(tmp_path, stem, cls):
    start = tmp_path / "start.pt"
    python(SAVE_TORCH.format(root=str(ROOT), stem=stem, cls=cls, path=str(start)))
    spec = f"specs/{stem}.yaml"
    chain = [
        ("torch", start),
        ("paddle", tmp_path / "a.pdparams"),
        ("mindspore", tmp_path / "b.ckpt"),
        ("torch", tmp_path / "end.pt"),
    ]
    # `archspec convert` itself (its messages, exit status) is tested below and in
    # test_attack_checkpoints; here its conversion runs on the session's shared workers
    from conftest import check_workers

    from archspec.backend import available
    from archspec.compiler import compile_spec
    from archspec.convert import convert

    graph, backends = compile_spec(ROOT / spec), available()
    counts = set()
    for (src_fw, src), (dst_fw, dst) in itertools.pairwise(chain):
        result = convert(graph, backends[src_fw], src, backends[dst_fw], dst, check_workers())
        assert result.notes == [] and dst.is_file(), (src, dst, result.notes)
        counts.add(result.count)
    count = python(COMPARE_TORCH.format(a=str(start), b=str(tmp_path / "end.pt")))
    assert int(count) > 0
    assert len(counts) == 1 and counts.pop() > 0  # every hop moves the same tensors


def test_torchvision_layout_resnet50_becomes_a_mindspore_checkpoint(tmp_path):
    """The generated PyTorch module has torchvision's keys (test_backends), so its state
    dict stands for a torchvision checkpoint: one command makes a MindSpore checkpoint
    that the generated MindSpore module loads with strict matching."""
    src, dst = tmp_path / "resnet50.pth", tmp_path / "resnet50.ckpt"
    python(SAVE_TORCH.format(root=str(ROOT), stem="resnet50", cls="ResNet50", path=str(src)))
    proc = archspec(
        "convert", "specs/resnet50.yaml", "--from", "torch", str(src), "--to", "mindspore", str(dst)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {dst}: 267 tensors, PyTorch -> MindSpore\n"
    loaded = python(
        LOAD_MINDSPORE.format(root=str(ROOT), stem="resnet50", cls="ResNet50", path=str(dst))
    )
    assert loaded == "267"  # 53 convs, 53 BNs x 4, fc weight and bias


def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path):
    src, dst = tmp_path / "r18.pt", tmp_path / "out.pdparams"
    python(SAVE_TORCH.format(root=str(ROOT), stem="resnet18", cls="ResNet18", path=str(src)))
    python(
        "import torch\n"
        f"s = torch.load({str(src)!r})\n"
        "del s['fc.bias']\n"
        "s['extra.weight'] = torch.zeros(3)\n"
        "s['conv1.weight'] = torch.zeros(64, 3, 3, 3)\n"
        f"torch.save(s, {str(src)!r})\n"
    )
    proc = archspec(
        "convert", "specs/resnet18.yaml", "--from", "torch", str(src), "--to", "paddle", str(dst)
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{src}: error: checkpoint does not fit the spec: missing: fc.bias; "
        "unexpected: extra.weight; wrong shape: conv1.weight: expected 64x3x7x7, got 64x3x3x3\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.pt"]


def test_convert_an_unreadable_file_is_a_user_error(tmp_path):
    src = tmp_path / "junk.pt"
    src.write_bytes(b"not a checkpoint")
    proc = archspec(
        "convert",
        "specs/resnet18.yaml",
        "--from",
        "torch",
        str(src),
        "--to",
        "paddle",
        str(tmp_path / "x.pdparams"),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{src}: error: cannot read a PyTorch checkpoint: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt"]
