"""Swin Transformer (tiny, small, base; torchvision's V1) reproduces torchvision's model:
counts, MACs, keys, equal outputs with torchvision's weights, the relative position index
buffer, and the three frameworks agree; the window ops on their own in every framework.

torchvision is imported as tests/test_mobilenet.py does (`import_torchvision`); without it the
comparisons with it are skipped.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import HEAD, by_path, check_workers, convert_on_shared_workers
from test_mobilenet import import_torchvision, on_meta

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.errors import SpecError
from archspec.tensors import tensor_maps

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated" / "torch"

CLASSES = {"swin_t": "SwinTransformerT", "swin_s": "SwinTransformerS", "swin_b": "SwinTransformerB"}
# a small Swin-T for the cross-framework checks: 24-wide tokens, 3 to 24 heads
SMALL = {"image_size": 32, "embed_dim": 24}


def reference(spec: str, **kwargs):
    """torchvision's model, randomly initialised (no download)."""
    return getattr(import_torchvision().models, spec)(**kwargs)


def generated(spec: str, **kwargs):
    """The checked-in generated PyTorch module's network."""
    path = GENERATED / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(f"swin_{spec}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, CLASSES[spec])(**kwargs)


def canonical(spec: str, **overrides) -> list[str]:
    graph = compile_spec(SPECS / f"{spec}.yaml", overrides)
    return [m.canonical for m in tensor_maps(graph, available()["torch"])]


@pytest.mark.parametrize("spec", CLASSES)
def test_summary_matches_torchvision(spec):
    """Trainable parameters and torchvision's published GFLOPS (meta["_ops"]): linear
    layers, the patch embedding and attention's two matrix products."""
    model = on_meta(reference, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta = import_torchvision().models.get_model_weights(spec).DEFAULT.meta
    s = summarize(compile_spec(SPECS / f"{spec}.yaml"))
    assert s.trainable == trainable == meta["num_params"]
    assert round(s.macs / 1e9, 3) == meta["_ops"]
    assert s.output_shape == (1000,)
    assert s.bn_stats == 0  # the relative position indexes are constants, not statistics


def test_attention_products_are_counted():
    """Each window attention adds windows x heads x N x N x head_dim twice to its MACs."""
    graph = compile_spec(SPECS / "swin_t.yaml")
    nodes = by_path(graph)
    logits, mixed = nodes["features.1.0.attn.logits"], nodes["features.1.0.attn.mixed"]
    assert logits.shape == (1, 64, 3, 49, 49) and mixed.shape == (1, 64, 3, 49, 32)
    assert logits.macs == mixed.macs == 64 * 3 * 49 * 49 * 32


@pytest.mark.parametrize("spec", CLASSES)
def test_tensor_names_are_torchvisions(spec):
    """Every state-dict key in torchvision's order, PatchMerging's included: its `norm` runs
    before `reduction` and is registered after it (the block's `order`)."""
    theirs = list(on_meta(reference, spec).state_dict())
    ours = list(on_meta(generated, spec).state_dict())
    assert ours == theirs
    assert sorted(canonical(spec)) == sorted(theirs)
    first = theirs.index("features.1.0.attn.relative_position_bias_table")
    assert theirs[first : first + 3] == [
        "features.1.0.attn.relative_position_bias_table",
        "features.1.0.attn.relative_position_index",
        "features.1.0.attn.qkv.weight",
    ]
    assert ours[first : first + 3] == theirs[first : first + 3]


def test_stochastic_depth_and_shifts_follow_torchvision():
    graph = compile_spec(SPECS / "swin_t.yaml")
    model = on_meta(reference, "swin_t")
    probs = [n.attrs["p"] for n in graph.nodes if n.op == "stochastic_depth"][::2]
    theirs = [m.p for m in model.modules() if type(m).__name__ == "StochasticDepth"]
    assert probs == pytest.approx(theirs) and probs[-1] == pytest.approx(0.2)
    # shifted blocks: every second one, where the window does not cover the whole map
    shifted = sorted({n.path.rsplit(".", 2)[0] for n in graph.nodes if n.op == "window_mask"})
    assert shifted == [
        "features.1.1",
        "features.3.1",
        "features.5.1",
        "features.5.3",
        "features.5.5",
    ]
    rolls = {n.path: n.attrs["shifts"] for n in graph.nodes if n.op == "roll"}
    assert rolls["features.1.1.attn.cyclic_shift"] == (-3, -3)
    assert rolls["features.1.1.attn.unshift"] == (3, 3)


def _load_compare(spec: str, sizes: tuple[int, ...]) -> None:
    import torch

    theirs = reference(spec).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in theirs.named_parameters():  # norms and biases matter too
            if tensor.ndim == 1:
                tensor.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
    for size in sizes:
        ours = generated(spec, image_size=size).eval()
        ours.load_state_dict(theirs.state_dict(), strict=True)
        assert torch.equal(
            ours.features[1][0].attn.relative_position_index,
            theirs.features[1][0].attn.relative_position_index,
        )
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert expected.abs().max().item() > 0.1
        diff = (got - expected).abs().max().item()
        assert diff <= 1e-5, diff
        assert not math.isnan(diff)


def test_generated_module_loads_torchvision_weights():
    """32: padded maps, one shifted stage; 64: two shifted stages, odd maps merged."""
    _load_compare("swin_t", (32, 64))


@pytest.mark.nightly
@pytest.mark.parametrize("spec", CLASSES)
def test_full_size_outputs_equal_torchvisions(spec):
    _load_compare(spec, (224,))


def test_generated_starts_as_torchvision_does():
    """Trunc-normal (std 0.02) linear weights and bias tables, zero biases, the index."""
    import torch

    torch.manual_seed(0)
    ours = dict(generated("swin_t", image_size=32).state_dict())
    table = ours["features.5.1.attn.relative_position_bias_table"]
    assert table.shape == (169, 12) and abs(table.std().item() - 0.02) < 0.002
    assert not ours["features.5.1.attn.qkv.bias"].any()
    assert not ours["features.1.0.mlp.0.bias"].any()
    assert torch.equal(ours["features.2.norm.weight"], torch.ones(384))
    index = ours["features.1.0.attn.relative_position_index"]
    assert index.dtype == torch.int64 and int(index.max()) == 168


def test_heads_must_divide_the_width():
    with pytest.raises(SpecError) as err:
        compile_spec(SPECS / "swin_t.yaml", {"embed_dim": 32})
    assert "swin_t.yaml:" in str(err.value)
    assert "the heads must divide the width" in str(err.value)


def test_three_frameworks_agree():
    """torch, Paddle and MindSpore: eval and train outputs, input and weight gradients."""
    path = SPECS / "swin_t.yaml"
    report = check_spec(path, list(available().values()), check_workers(), SMALL, (3, 32, 32), 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]


# every window op on small maps, in every framework: odd sizes, shifts along one axis,
# strided slices, a padded axis, products with broadcast leading axes
WINDOW_OPS = """
nodes:
  - {name: m, op: permute, dims: [1, 2, 0]}
  - {name: p, op: pad, axes: [0, 1], before: [0, 1], after: [2, 1]}
  - {name: r, op: roll, shifts: [2, -1], axes: [0, -2]}
  - {name: s0, op: slice, axes: [0, 1], start: [1, 0], step: [2, 3]}
  - {name: s1, op: slice, inputs: r, axes: [-3, -2], start: [0, 1], stop: [9, 12], step: [2, 3]}
  - {name: j, op: concat, inputs: [s0, s1], axis: -1}
  - {name: t, op: reshape, shape: [5, 2, 2, 6]}
  - {name: k, op: permute, inputs: t, dims: [0, 1, 3, 2]}
  - {name: q, op: scale, inputs: t, factor: 0.5}
  - {name: a, op: matmul, inputs: [q, k]}
  - {name: idx, op: relative_position_index, window: [1, 2]}
  - {name: tab, op: parameter, shape: [3, 2], init: {value: {normal: {std: 1.0}}}}
  - {name: b, op: relative_position_bias, inputs: [a, tab, idx]}
  - {name: w, op: softmax}
  - {name: o, op: matmul, inputs: [w, t]}
  - {name: g, op: reshape, shape: [10, 12]}
  - {name: z, op: linear, out: 32}
  - {name: h, op: reshape, shape: [5, 4, 1, 4, 4]}
  - {name: mk, op: window_mask, grid: [2, 8], window: [2, 2], shift: [0, 1]}
  - {name: f, op: flatten}
"""


def test_window_ops_agree_in_every_framework(write_spec):
    spec = HEAD.replace("height: 8, width: 8", "height: 9, width: 10") + WINDOW_OPS
    path = write_spec(spec)
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()


# loads the converted checkpoint into the generated module (a small Swin-T) and prints the
# eval output's largest difference from torchvision's; each framework in its own process
LOAD = {
    "paddle": """
import paddle
net = module.SwinTransformerT(image_size=32, embed_dim=24)
net.eval()
missing, unexpected = net.set_state_dict(paddle.load(sys.argv[2]))
assert (missing, unexpected) == ([], []), (missing, unexpected)
out = net(paddle.to_tensor(x)).numpy()
""",
    "mindspore": """
import mindspore as ms
net = module.SwinTransformerT(image_size=32, embed_dim=24)
net.set_train(False)
assert ms.load_param_into_net(net, ms.load_checkpoint(sys.argv[2]), strict_load=True) == ([], [])
out = net(ms.Tensor(x)).asnumpy()
""",
}
RUN = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("swin_t", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x, expected = np.load(sys.argv[3]), np.load(sys.argv[4])
{load}
print(float(np.abs(out - expected).max()))
"""


@pytest.mark.parametrize(("backend", "suffix"), [("paddle", "pdparams"), ("mindspore", "ckpt")])
def test_torchvision_checkpoint_converted_runs_in_each_framework(tmp_path, backend, suffix):
    """`archspec convert` maps torchvision's state dict, its int64 relative position
    indexes included, so the other frameworks compute torchvision's outputs."""
    import subprocess
    import sys

    import numpy as np
    import torch

    swin = import_torchvision().models.swin_transformer
    torch.manual_seed(0)
    theirs = swin.SwinTransformer([4, 4], 24, [2, 2, 6, 2], [3, 6, 12, 24], [7, 7], 4.0).eval()
    torch.save(theirs.state_dict(), tmp_path / "tv.pt")
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    out = tmp_path / f"converted.{suffix}"
    spec, src = SPECS / "swin_t.yaml", tmp_path / "tv.pt"
    sets = {"embed_dim": 24}  # the tensors do not depend on the image size
    result = convert_on_shared_workers(spec, sets, "torch", src, backend, out)
    assert (result.count, result.notes) == (185, [])
    module = ROOT / "generated" / backend / "swin_t.py"
    code = RUN.format(load=LOAD[backend])
    files = [str(module), str(out), str(tmp_path / "x.npy"), str(tmp_path / "expected.npy")]
    run = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.strip().splitlines()[-1]) <= 1e-5
