"""Vision Transformers (vit_b_16, vit_b_32, vit_l_16, vit_l_32) reproduce torchvision's model
code itself: counts and MACs (its weights' meta), state-dict keys in order (class token and
position embedding with their leading batch axis), equal outputs with the reference's
weights; the three frameworks agree, gradients included; `archspec convert` moves a
torchvision state dict to PaddlePaddle and MindSpore.

torchvision is imported as tests/test_mobilenet.py does (`import_torchvision`). The
reference is torchvision's `VisionTransformer` built with each spec's figures at a small
image size (32 or 64: the position embedding's length follows), so CI stays quick; the
ViT-L variants are compared by counts in CI and by outputs nightly.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import check_workers, convert_on_shared_workers
from test_mobilenet import import_torchvision, on_meta

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.tensors import tensor_maps

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated"

# spec -> (class, patch_size, num_layers, num_heads, hidden_dim, mlp_dim): torchvision's
# vit_* builders' arguments
VARIANTS = {
    "vit_b_16": ("VisionTransformerB16", 16, 12, 12, 768, 3072),
    "vit_b_32": ("VisionTransformerB32", 32, 12, 12, 768, 3072),
    "vit_l_16": ("VisionTransformerL16", 16, 24, 16, 1024, 4096),
    "vit_l_32": ("VisionTransformerL32", 32, 24, 16, 1024, 4096),
}
# the figures (trainable; GFLOPS), which torchvision's meta also holds
FIGURES = {
    "vit_b_16": (86_567_656, 17.564),
    "vit_b_32": (88_224_232, 4.409),
    "vit_l_16": (304_326_632, 61.555),
}


def reference(spec: str, **kwargs):
    """torchvision's VisionTransformer with the spec's figures (random weights)."""
    import_torchvision()
    from torchvision.models.vision_transformer import VisionTransformer

    _, patch, layers, heads, hidden, mlp = VARIANTS[spec]
    args = dict(image_size=224, patch_size=patch, num_layers=layers, num_heads=heads)
    args.update(hidden_dim=hidden, mlp_dim=mlp)
    return VisionTransformer(**{**args, **kwargs})


def generated(spec: str, backend: str = "torch"):
    """The checked-in generated module."""
    path = GENERATED / backend / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(spec, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("spec", list(VARIANTS))
def test_summary_matches_torchvision(spec):
    """Trainable counts and MACs: the projections as linear layers, attention's two
    products L x L x D each, so the totals are torchvision's published GFLOPS."""
    meta = import_torchvision().models.get_model_weights(spec).DEFAULT.meta
    s = summarize(compile_spec(SPECS / f"{spec}.yaml"))
    assert s.bn_stats == 0 and s.output_shape == (1000,)
    assert s.trainable == meta["num_params"]
    assert round(s.macs / 1e9, 3) == meta["_ops"]
    if spec in FIGURES:
        assert (s.trainable, round(s.macs / 1e9, 3)) == FIGURES[spec]


def test_attention_macs_are_the_products_and_projections():
    """vit_b_16: convolution and linear layers 16.85 G, attention's products 0.715 G."""
    graph = compile_spec(SPECS / "vit_b_16.yaml")
    length, d = 197, 768
    products = sum(2 * length * length * d for n in graph.nodes if n.op == "multihead_attention")
    assert round(products / 1e9, 3) == 0.715
    assert round((summarize(graph).macs - products) / 1e9, 2) == 16.85


def test_vit_b_16_counts_equal_the_built_model():
    model = on_meta(reference, "vit_b_16")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summarize(compile_spec(SPECS / "vit_b_16.yaml")).trainable == trainable


@pytest.mark.parametrize("spec", ["vit_b_16", "vit_b_32"])
def test_keys_are_torchvision_keys_in_order(spec):
    size = 64 if spec.endswith("32") else 32
    theirs = on_meta(reference, spec, image_size=size).state_dict()
    theirs = {k: tuple(v.shape) for k, v in theirs.items()}
    graph = compile_spec(SPECS / f"{spec}.yaml", {"image_size": size}, (3, size, size))
    ours = {t.native: t.shape for t in tensor_maps(graph, available()["torch"])}
    assert list(ours) == list(theirs)
    assert ours == theirs  # class_token 1 x 1 x D, encoder.pos_embedding 1 x L+1 x D
    assert list(ours)[:3] == ["class_token", "conv_proj.weight", "conv_proj.bias"]
    assert "encoder.layers.encoder_layer_11.self_attention.in_proj_weight" in ours


def _perturb(model) -> None:
    """Every tensor random (the reference's zero head and class token would hide mistakes)."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln.weight")):
                tensor.uniform_(0.5, 1.5)
            else:
                tensor.normal_(0.0, 0.05)


def _compare(spec: str, sizes: tuple[int, ...], **kwargs) -> None:
    import torch

    module = generated(spec)
    for size in sizes:
        theirs = reference(spec, image_size=size, **kwargs).eval()
        ours = getattr(module, VARIANTS[spec][0])(image_size=size, **kwargs).eval()
        assert list(ours.state_dict()) == list(theirs.state_dict())
        _perturb(theirs)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert expected.abs().max().item() > 0.1
        diff = (got - expected).abs().max().item()
        assert diff <= 1e-5, diff
        assert not math.isnan(diff)


def test_generated_vit_b_16_computes_torchvisions_function():
    _compare("vit_b_16", (32, 64))


def test_generated_vit_b_32_computes_torchvisions_function():
    _compare("vit_b_32", (64,), num_layers=4)


def test_generated_module_starts_as_torchvision_does():
    """Zero class token, position embedding of std 0.02, PyTorch's attention init."""
    import torch

    torch.manual_seed(0)
    ours = generated("vit_b_16").VisionTransformerB16(image_size=32, num_layers=1)
    assert ours.class_token.abs().max().item() == 0.0
    assert abs(ours.encoder.pos_embedding.std().item() - 0.02) < 0.003
    attention = ours.encoder.layers.encoder_layer_0.self_attention
    assert isinstance(attention, torch.nn.MultiheadAttention) and attention.batch_first
    assert attention.in_proj_bias.abs().max().item() == 0.0


@pytest.mark.nightly
@pytest.mark.parametrize("spec", list(VARIANTS))
def test_full_size_outputs_equal_torchvisions(spec):
    _compare(spec, (224,))


def test_three_frameworks_agree():
    """Two layers at 32x32 (a 2x2 patch grid and the class token), gradients included."""
    report = check_spec(
        SPECS / "vit_b_16.yaml",
        list(available().values()),
        check_workers(),
        {"image_size": 32, "num_layers": 2},
        (3, 32, 32),
        2,
    )
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]


@pytest.mark.nightly
def test_three_frameworks_agree_at_full_depth():
    path = SPECS / "vit_b_16.yaml"
    report = check_spec(
        path, list(available().values()), check_workers(), {"image_size": 32}, (3, 32, 32), 2
    )
    assert report.ok, report.to_json()


SMALL = {"hidden_dim": 96, "num_heads": 4, "mlp_dim": 192, "num_layers": 2}
# loads the converted checkpoint into the generated module and prints the eval output's
# largest difference from torchvision's; each framework in its own process
LOAD = {
    "paddle": """
import paddle
net = module.VisionTransformerB16(hidden_dim=96, num_heads=4, mlp_dim=192, num_layers=2)
net.eval()
missing, unexpected = net.set_state_dict(paddle.load(sys.argv[2]))
assert (missing, unexpected) == ([], []), (missing, unexpected)
out = net(paddle.to_tensor(x)).numpy()
""",
    "mindspore": """
import mindspore as ms
net = module.VisionTransformerB16(hidden_dim=96, num_heads=4, mlp_dim=192, num_layers=2)
net.set_train(False)
assert ms.load_param_into_net(net, ms.load_checkpoint(sys.argv[2]), strict_load=True) == ([], [])
out = net(ms.Tensor(x)).asnumpy()
""",
}
RUN = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("vit_b_16", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x, expected = np.load(sys.argv[3]), np.load(sys.argv[4])
{load}
print(float(np.abs(out - expected).max()))
"""


@pytest.mark.parametrize(("backend", "suffix"), [("paddle", "pdparams"), ("mindspore", "ckpt")])
def test_torchvision_checkpoint_converted_runs_in_each_framework(tmp_path, backend, suffix):
    """`archspec convert` maps torchvision's state dict (in_proj_weight, out_proj as Paddle's
    (in, out) Linear, the class token and position embedding) so the other frameworks
    compute torchvision's outputs."""
    import subprocess
    import sys

    import numpy as np
    import torch

    # at 224x224 (convert takes the spec's input size): two narrow layers keep it quick
    theirs = reference("vit_b_16", hidden_dim=96, num_heads=4, mlp_dim=192, num_layers=2).eval()
    _perturb(theirs)
    torch.save(theirs.state_dict(), tmp_path / "tv.pt")
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    out = tmp_path / f"converted.{suffix}"
    spec, src = SPECS / "vit_b_16.yaml", tmp_path / "tv.pt"
    result = convert_on_shared_workers(spec, SMALL, "torch", src, backend, out)
    assert (result.count, result.notes) == (32, [])  # 3 + 2 x 12 + 2 + 2 + class, pos
    module = GENERATED / backend / "vit_b_16.py"
    code = RUN.format(load=LOAD[backend])
    files = [str(module), str(out), str(tmp_path / "x.npy"), str(tmp_path / "expected.npy")]
    run = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.strip().splitlines()[-1]) <= 1e-5


# -- the ops on their own: emitted forms and emitter limits ---------------------------------

TOKENS = """\
  - {name: t, op: flatten, start: 1}
  - {name: tokens, op: permute, dims: [1, 0]}
"""


def test_each_framework_writes_select_expand_and_attention(write_spec):
    from test_new_ops import render_spec, spec_with

    nodes = TOKENS + (
        "  - {name: cls, op: parameter, shape: [1, 3], batch_axis: true}\n"
        "  - {name: c, op: concat, inputs: [cls, tokens], axis: 0}\n"
        "  - {name: a, op: multihead_attention, heads: 3, bias: false}\n"
        "  - {name: last, op: select, index: -1, axis: -1}\n"
    )
    path = write_spec(spec_with(nodes))
    expected = {
        "torch": [
            "self.cls = nn.Parameter(torch.zeros(1, 1, 3))",
            "out = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)",
            "out, _ = self.a(out, out, out, need_weights=False)",
            "out = out[..., -1]",
        ],
        "paddle": [
            "out = paddle.concat([self.cls.expand([tokens.shape[0], -1, -1]), tokens], axis=1)",
            "out = self.a(out)",
            "out = out[..., -1]",
        ],
        "mindspore": [
            "out = ops.cat([ops.broadcast_to(self.cls, (tokens.shape[0], -1, -1)), tokens], 1)",
            "out = out[..., -1]",
        ],
    }
    for backend, lines in expected.items():
        text = render_spec(path, backend)
        for line in lines:
            assert line in text, (backend, line, text)
    assert "nn.MultiheadAttention(in_channels, 3, bias=False, batch_first=True)" in render_spec(
        path, "torch"
    )


def test_attention_in_a_sequence_is_refused_by_pytorch(write_spec):
    """nn.MultiheadAttention takes query, key and value: a sequence calls it with one."""
    from test_new_ops import render_spec, spec_with

    from archspec.errors import SpecError

    nodes = TOKENS + "  - seq: [{op: multihead_attention, heads: 3}, {op: relu}]\n"
    path = write_spec(spec_with(nodes))
    with pytest.raises(SpecError) as info:
        render_spec(path, "torch")
    assert str(info.value) == (
        "spec.yaml:6:11: error: PyTorch emitter: `multihead_attention` cannot be a sequence "
        "item or repeat (its call takes more than one input): make it a node of a block"
    )
    assert "MultiheadAttention(" in render_spec(path, "paddle")  # one input there


def test_select_axis_must_be_written_as_a_number(write_spec):
    from test_new_ops import render_spec, spec_with

    from archspec.errors import SpecError

    path = write_spec(
        spec_with(TOKENS + "  - {op: select, index: k, axis: k}\n", extra="params: {k: 0}\n")
    )
    with pytest.raises(SpecError) as info:
        render_spec(path, "torch")
    assert str(info.value) == (
        "spec.yaml:7:34: error: PyTorch emitter: select: `axis` must be written as a number"
    )


@pytest.mark.parametrize("bias", [True, False])
def test_attention_agrees_across_frameworks(write_spec, bias):
    """Four heads over 16 tokens of width 8, with and without biases; a batch-axis
    position embedding added; a token selected on its own axis."""
    from test_new_ops import spec_with

    nodes = TOKENS + (
        "  - {name: pos, op: parameter, shape: [16, 8], batch_axis: true,"
        " init: {value: {normal: {std: 0.5}}}}\n"
        "  - {name: e, op: add, inputs: [tokens, pos]}\n"
        f"  - {{name: a, op: multihead_attention, heads: 4, bias: {str(bias).lower()}}}\n"
        "  - {name: s, op: select, index: 3, axis: 0}\n"
    )
    path = write_spec(spec_with(nodes, 8, 4, 4))
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 8]
