"""Property test: random conv / batch-norm / pool chains against PyTorch's shape formulas.

The expected sizes are computed here, independently of archspec, from the formulas of
PyTorch's `aten/src/ATen/native/Pool.h` (`pooling_output_shape`, `pool2d_shape_check`)
and `torch.nn.Conv2d`'s documentation. Attribute values are drawn partly out of range
(kernel 0, stride 0, oversized padding), so both the accepting and the rejecting side of
every rule are exercised.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from archspec.compiler import compile_spec
from archspec.errors import SpecError

SMALL = st.integers(min_value=0, max_value=4)

CONV = st.fixed_dictionaries(
    {
        "op": st.just("conv2d"),
        "out": st.integers(min_value=1, max_value=6),
        "kernel": SMALL,
        "stride": SMALL,
        "padding": st.integers(min_value=0, max_value=3),
        "dilation": st.integers(min_value=1, max_value=3),
    }
)
BATCHNORM = st.just({"op": "batchnorm2d"})
MAX_POOL = st.fixed_dictionaries(
    {
        "op": st.just("max_pool2d"),
        "kernel": SMALL,
        "padding": st.integers(min_value=0, max_value=2),
        "ceil_mode": st.booleans(),
    },
    optional={"stride": SMALL, "dilation": st.integers(min_value=1, max_value=2)},
)
AVG_POOL = st.fixed_dictionaries(
    {
        "op": st.just("avg_pool2d"),
        "kernel": SMALL,
        "padding": st.integers(min_value=0, max_value=2),
        "ceil_mode": st.booleans(),
    },
    optional={"stride": SMALL},
)
LAYERS = st.lists(st.one_of(CONV, BATCHNORM, MAX_POOL, AVG_POOL), min_size=1, max_size=5)
SIZES = st.integers(min_value=1, max_value=24)


class Rejected(Exception):
    """PyTorch would raise for this layer."""


def div_rtn(x: int, y: int) -> int:
    """C++ `div_rtn` of Pool.h: division rounding towards negative infinity (y > 0)."""
    return x // y


def pool_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """`pooling_output_shape` + the output check of `pool2d_shape_check`."""
    if k <= 0 or s <= 0 or d <= 0:
        raise Rejected("kernel, stride and dilation must be positive")
    if p > k // 2:
        raise Rejected("pad should be smaller than or equal to half of kernel size")
    out = div_rtn(size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0), s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    if out < 1:
        raise Rejected("Output size is too small")
    return out


def conv_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """torch.nn.Conv2d: floor((H + 2p - d(k - 1) - 1) / s) + 1, at least 1."""
    if k <= 0 or s <= 0:
        raise Rejected("non-positive kernel or stride")
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise Rejected("Kernel size can't be greater than actual input size")
    return out


def expected_shape(channels: int, height: int, width: int, layers: list[dict]):
    """The output shape PyTorch would give, or raise Rejected."""
    c, h, w = channels, height, width
    for layer in layers:
        if layer["op"] == "conv2d":
            args = (layer["kernel"], layer["stride"], layer["padding"], layer["dilation"])
            c, h, w = layer["out"], conv_size(h, *args), conv_size(w, *args)
        elif layer["op"] != "batchnorm2d":
            k, p = layer["kernel"], layer["padding"]
            s = layer.get("stride", k)
            d = layer.get("dilation", 1)
            # archspec refuses a pool window wider than the padded input even where
            # PyTorch's ceil mode yields one output (see the strict xfail in
            # test_language.py); keep that known difference out of the property
            assume(not (layer["ceil_mode"] and k > 0 and d * (k - 1) + 1 > h + 2 * p))
            assume(not (layer["ceil_mode"] and k > 0 and d * (k - 1) + 1 > w + 2 * p))
            h = pool_size(h, k, s, p, d, layer["ceil_mode"])
            w = pool_size(w, k, s, p, d, layer["ceil_mode"])
    return (c, h, w)


def to_yaml(channels: int, height: int, width: int, layers: list[dict]) -> str:
    lines = [
        "name: Chain",
        f"input: {{channels: {channels}, height: {height}, width: {width}}}",
        "nodes:",
    ]
    for layer in layers:
        attrs = ", ".join(f"{key}: {str(value).lower()}" for key, value in layer.items())
        lines.append(f"  - {{{attrs}}}")
    return "\n".join(lines) + "\n"


_counter = itertools.count()


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chains")


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    derandomize=True,  # CI sees the same chains every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(channels=st.integers(min_value=1, max_value=4), height=SIZES, width=SIZES, layers=LAYERS)
def test_chains_match_pytorch_shapes(spec_dir, channels, height, width, layers):
    try:
        expected = expected_shape(channels, height, width, layers)
    except Rejected:
        expected = None
    event("PyTorch accepts" if expected else "PyTorch refuses")
    path = spec_dir / f"chain_{next(_counter)}.yaml"
    path.write_text(to_yaml(channels, height, width, layers))
    try:
        graph = compile_spec(path)
    except SpecError as exc:
        assert expected is None, f"archspec refused a chain PyTorch accepts: {exc}"
        # every error is located on one of the layer lines of this file
        for d in exc.diagnostics:
            assert d.pos.file.endswith(path.name)
            assert 4 <= d.pos.line <= 3 + len(layers), str(exc)
        return
    assert expected is not None, "archspec accepted a chain PyTorch refuses"
    assert graph.output.shape == expected
    assert [n.shape for n in graph.nodes][-1] == expected
    assert len(graph.nodes) == len(layers)


def test_formulas_by_hand():
    """The test's own formulas, on cases worked out with PyTorch's documentation."""
    assert conv_size(224, 7, 2, 3, 1) == 112
    assert pool_size(112, 3, 2, 1, 1, False) == 56
    assert pool_size(8, 3, 2, 0, 1, True) == 4
    assert pool_size(5, 2, 2, 1, 1, True) == 3  # last window would start in the padding
    assert pool_size(2, 3, 2, 0, 1, True) == 1  # ceil mode: a window wider than the input
    with pytest.raises(Rejected):
        pool_size(2, 3, 2, 0, 1, False)
    with pytest.raises(Rejected):
        pool_size(8, 2, 2, 2, 1, False)
