"""Every generated module, in every framework, is the network the static analysis describes.

Each framework runs alone in a subprocess (`backend_worker.py`): importing paddle before
mindspore in one process breaks MindSpore, and a test suite must not depend on luck.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from backend_cases import ASYMMNETS, CASES, COMPILED, NIGHTLY, RESNETS, case_id

from archspec.analysis import summarize
from archspec.compiler import compile_spec

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["torch", "paddle", "mindspore"]
BN_NAMES = {
    "torch": ("weight", "bias", "running_mean", "running_var"),
    "paddle": ("weight", "bias", "_mean", "_variance"),
    "mindspore": ("gamma", "beta", "moving_mean", "moving_variance"),
}


@cache
def workers(*flags: str) -> dict[str, subprocess.Popen]:
    """Start one worker per backend, all at once (they run in parallel), on first use."""
    worker = str(ROOT / "tests" / "backend_worker.py")
    return {
        backend: subprocess.Popen(
            [sys.executable, worker, backend, "--compile", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for backend in BACKENDS
    }


@cache
def report(backend: str, *flags: str) -> dict:
    """The worker's report for one backend (waits for it)."""
    out, err = workers(*flags)[backend].communicate()
    assert workers(*flags)[backend].returncode == 0, err[-3000:]
    return json.loads(out)


@cache
def expected(spec: str, kwargs: tuple, shape: tuple) -> tuple:
    s = summarize(compile_spec(ROOT / "specs" / f"{spec}.yaml", dict(kwargs), shape))
    return s.trainable, s.bn_stats, [2, *s.output_shape]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_module_matches_static_analysis(backend, case):
    spec, kwargs, shape = case
    got = report(backend)[case_id(case)]
    assert "error" not in got, got.get("error")
    trainable, bn_stats, out = expected(spec, tuple(kwargs.items()), shape)
    assert (got["trainable"], got["bn_stats"]) == (trainable, bn_stats)
    assert got["eval_shape"] == got["train_shape"] == out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", COMPILED)
def test_framework_compiler_accepts_module(backend, spec):
    got = report(backend)[case_id(COMPILED[spec])]
    assert "error" not in got, got.get("error")
    assert " ok" in got["compiled"]
    assert got["compiled"].endswith(("diff 0.0e+00",)) or float(got["compiled"][-7:]) < 1e-5


@pytest.mark.nightly
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", NIGHTLY, ids=case_id)
def test_every_variant_runs_and_compiles(backend, case):
    spec, kwargs, shape = case
    got = report(backend, "--nightly")[case_id(case)]
    assert "error" not in got, got.get("error")
    trainable, bn_stats, out = expected(spec, tuple(kwargs.items()), shape)
    assert (got["trainable"], got["bn_stats"]) == (trainable, bn_stats)
    assert got["eval_shape"] == got["train_shape"] == out
    assert " ok" in got["compiled"]


# -- reference key sets, written from networks.md, not imported from reference libraries ----

BLOCKS = {
    "resnet18": ([2, 2, 2, 2], False),
    "resnet34": ([3, 4, 6, 3], False),
    "resnet50": ([3, 4, 6, 3], True),
    "resnet101": ([3, 4, 23, 3], True),
    "resnet152": ([3, 8, 36, 3], True),
    "resnext50": ([3, 4, 6, 3], True),
    "resnext101_32x8d": ([3, 4, 23, 3], True),
    "resnext101_64x4d": ([3, 4, 23, 3], True),
}


def bn(prefix: str, names: tuple) -> list[str]:
    return [f"{prefix}.{n}" for n in names]


def reference_resnet_keys(spec: str, bn_names: tuple) -> set[str]:
    """torchvision's (and paddle.vision's) ResNet state-dict keys."""
    layers, bottleneck = BLOCKS[spec]
    keys = ["conv1.weight", *bn("bn1", bn_names), "fc.weight", "fc.bias"]
    for stage, count in enumerate(layers, 1):
        for b in range(count):
            p = f"layer{stage}.{b}"
            for c in range(1, 4 if bottleneck else 3):
                keys += [f"{p}.conv{c}.weight", *bn(f"{p}.bn{c}", bn_names)]
            if b == 0 and (stage > 1 or bottleneck):  # the stride or the width changes
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1", bn_names)]
    return set(keys)


ASYMM_ROWS = {  # kernel, mid, out, se, stride (networks.md)
    "asymmnet_large": [
        (16, 16, 0),
        (64, 24, 0),
        (72, 24, 0),
        (72, 40, 1),
        (120, 40, 1),
        (120, 40, 1),
        (240, 80, 0),
        (200, 80, 0),
        (184, 80, 0),
        (184, 80, 0),
        (480, 112, 1),
        (672, 112, 1),
        (672, 160, 1),
        (960, 160, 1),
        (960, 160, 1),
    ],
    "asymmnet_small": [
        (16, 16, 1),
        (72, 24, 0),
        (88, 24, 0),
        (96, 40, 1),
        (240, 40, 1),
        (240, 40, 1),
        (120, 48, 1),
        (144, 48, 1),
        (288, 96, 1),
        (576, 96, 1),
        (576, 96, 1),
    ],
}


def reference_asymmnet_keys(spec: str, bn_names: tuple, k: float = 1.0, r: int = 1) -> set:
    """The AsymmNet reference implementation's (Paddle) keys, per networks.md."""

    def make_divisible(x: float) -> int:
        return math.ceil(x / 8) * 8

    keys = [
        "first_block.0.weight",
        *bn("first_block.1", bn_names),
        "last_block.0.weight",
        *bn("last_block.1", bn_names),
        "last_block.4.weight",
        "output.weight",
        "output.bias",
    ]
    channels = make_divisible(16 * k)
    for i, (mid, out, se) in enumerate(ASYMM_ROWS[spec]):
        mid, out, p = make_divisible(k * mid), make_divisible(k * out), f"asymm_block.{i}"
        if mid > max(channels, r * channels):
            keys += [f"{p}.expand.conv.weight", *bn(f"{p}.expand.bn", bn_names)]
        keys += [f"{p}.dw_conv.conv.weight", *bn(f"{p}.dw_conv.bn", bn_names)]
        if se:
            keys += [
                f"{p}.se.out.0.weight",
                f"{p}.se.out.0.bias",
                f"{p}.se.out.2.weight",
                f"{p}.se.out.2.bias",
            ]
        keys += [f"{p}.pw_conv_linear.conv.weight", *bn(f"{p}.pw_conv_linear.bn", bn_names)]
        channels = out
    return set(keys)


def test_reference_keys_are_what_networks_md_says():
    assert len(reference_asymmnet_keys("asymmnet_large", BN_NAMES["torch"])) == 265


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", RESNETS + ASYMMNETS)
def test_state_dict_keys_match_reference(backend, spec):
    got = set(report(backend)[case_id((spec, {}, (3, 64, 64)))]["keys"])
    if spec in BLOCKS:
        want = reference_resnet_keys(spec, BN_NAMES[backend])
    else:
        want = reference_asymmnet_keys(spec, BN_NAMES[backend])
    assert sorted(got ^ want) == []
