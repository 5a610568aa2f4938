"""Layers built on tensors of any rank take the input size they read.

A generated constructor passes each layer its input size: the running channel count where
it describes the axis the layer reads (axis 0 for convolutions and norms, the last axis for
linear layers), and the static size otherwise. These specs put linear layers on maps that
are not channels-last, convolutions after a linear layer and a permute, and a permute that
moves the running count away from both ends; each must build and agree in every framework.
"""

from __future__ import annotations

import pytest
from conftest import HEAD, check_workers

from archspec.backend import available
from archspec.check import check_spec
from archspec.emit import permuted_layout

SPECS = {
    # C x H*W: the linear layer reads H*W (64), not the channels (4)
    "linear_after_partial_flatten": (
        """
          - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1}
          - {name: flat, op: flatten, start: 1}
          - {name: fc, op: linear, out: 5}
        """,
        [2, 4, 5],
    ),
    # reshape, a linear layer on the last axis, its output moved in front for a convolution
    "conv_after_linear_and_permute": (
        """
          - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1}
          - {name: r, op: reshape, shape: [4, 4, 16]}
          - {name: fc, op: linear, out: 5}
          - {name: p, op: permute, dims: [2, 0, 1]}
          - {name: conv2, op: conv2d, out: 6, kernel: 1}
        """,
        [2, 6, 4, 4],
    ),
    # channels last, then a permute that swaps the last two axes: the count stays behind
    "linear_after_a_middle_swap": (
        """
          - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1}
          - {name: p, op: permute, dims: [1, 2, 0]}
          - {name: ln, op: layer_norm, shape: [4]}
          - {name: fc, op: linear, out: 6}
          - {name: q, op: permute, dims: [0, 2, 1]}
          - {name: fc2, op: linear, out: 3}
          - {name: back, op: permute, dims: [2, 0, 1]}
          - {name: conv2, op: conv2d, out: 2, kernel: 1}
        """,
        [2, 2, 8, 6],
    ),
}


@pytest.mark.parametrize("name", SPECS)
def test_every_framework_builds_and_agrees(write_spec, name):
    nodes, output = SPECS[name]
    path = write_spec(HEAD + "nodes:\n" + nodes)
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == output


@pytest.mark.parametrize(
    ("order", "before", "expected"),
    [
        ([1, 2, 0], "first", ("last", True)),  # channels last
        ([2, 0, 1], "last", ("first", True)),  # back in front
        ([0, 2, 1], "first", ("first", True)),  # the channels stay in front
        ([0, 2, 1], "last", ("first", False)),  # the counted axis moves to the middle
        ([1, 2, 0], "last", ("first", False)),
        ([1, 0], "both", ("last", True)),
    ],
)
def test_permuted_layout(order, before, expected):
    assert permuted_layout(order, before) == expected
