"""`archspec check`: prove that the generated modules of every backend compute the same function.

One backend (the first) initialises the weights from a fixed seed; the BN statistics are
then set to non-trivial random values, so batch norm is really exercised. The same
weights, the same input and the same loss probe go to every backend, each in its own
worker process. Outputs (eval and train mode) and the gradients of sum(output * probe)
with respect to the input and every weight are compared with the first backend's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archspec.analysis import summarize
from archspec.backend import Backend
from archspec.build import render
from archspec.compiler import compile_spec
from archspec.errors import SpecError
from archspec.ir import Graph
from archspec.runner import WorkerError, Workers
from archspec.tensors import from_native, tensor_maps, to_native

TOLERANCE = 1e-4  # largest relative difference accepted, float32
SEED = 0


@dataclass
class Diff:
    """The largest absolute difference, and relative to the reference's largest magnitude."""

    abs: float
    rel: float
    where: str = ""
    tol: float = TOLERANCE  # widened where float32 itself cannot reach TOLERANCE

    @property
    def ok(self) -> bool:
        """Within tolerance."""
        return self.rel <= self.tol


@dataclass
class BackendReport:
    """One backend's figures and its differences from the reference backend."""

    backend: str
    output_shape: list[int]
    trainable: int
    bn_stats: int
    eval: Diff | None = None
    train: Diff | None = None
    grad_input: Diff | None = None
    grad_weights: Diff | None = None
    # train-mode gradients are reported, not gated: through batch statistics they are
    # ill-conditioned in float32 itself (the reference's own float32 and float64 differ
    # by up to 1e-2 on deep networks), so no two frameworks can agree to 1e-4 there
    train_grad_input: Diff | None = None
    train_grad_weights: Diff | None = None
    first_divergence: str | None = None
    error: str | None = None  # the framework failed to build or run the module
    # units whose eval activation falls on the other side of a ReLU-type kink than in the
    # reference (a pre-activation within float32 rounding of the kink): the gradient is
    # then a different, equally valid one-sided derivative, and is reported, not gated
    kink_flips: int = 0

    @property
    def ok(self) -> bool:
        """Every comparison within tolerance (the reference is always ok)."""
        diffs = [self.eval, self.train, self.grad_input, self.grad_weights]
        return all(d is None or d.ok for d in diffs) and self.error is None


@dataclass
class SpecReport:
    """All backends for one spec."""

    spec: str
    network: str
    overrides: dict[str, Any]
    input_shape: list[int]
    expected: dict[str, Any]
    backends: list[BackendReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every backend agrees with the reference and with the static analysis."""
        counts = all(
            (b.trainable, b.bn_stats, b.output_shape)
            == (self.expected["trainable"], self.expected["bn_stats"], self.expected["output"])
            for b in self.backends
        )
        return counts and all(b.ok for b in self.backends)

    def to_json(self) -> dict:
        """Plain data for --json."""
        return {**asdict(self), "ok": self.ok, "tolerance": TOLERANCE}


def check_spec(
    path: Path,
    backends: list[Backend],
    workers: Workers,
    overrides: dict,
    input_shape: tuple | None,
    batch: int,
) -> SpecReport:
    """Run one spec on every backend with shared weights; compare with the first."""
    graph = compile_spec(path, overrides, input_shape)
    summary = summarize(graph)
    report = SpecReport(
        str(path),
        graph.name,
        dict(overrides),
        list(graph.input_shape),
        {
            "trainable": summary.trainable,
            "bn_stats": summary.bn_stats,
            "output": [batch, *summary.output_shape],
        },
    )
    rng = np.random.default_rng(SEED)
    data = workers.path(f"{path.stem}-data.npz")
    x = rng.standard_normal((batch, *graph.input_shape)).astype(np.float32)
    probe = rng.standard_normal((batch, *summary.output_shape)).astype(np.float32)
    np.savez(data, x=x, probe=probe)
    weights = None
    reference: dict[str, np.ndarray] | None = None
    for backend in backends:
        try:
            native, trainable = build(graph, path, backend, workers, overrides)
            canonical = from_native(native, graph, backend, f"{backend.label} module")
            if weights is None:
                weights = randomize_statistics(canonical, graph, backend, rng)
            result = run(graph, backend, workers, weights, data)
        except (WorkerError, SpecError) as exc:
            reason = str(exc).strip().splitlines()[-1]
            report.backends.append(BackendReport(backend.label, [], 0, 0, error=reason))
            workers.restart(backend)
            continue
        maps = tensor_maps(graph, backend)
        stats = sum(math.prod(m.shape) for m in maps if not (m.trainable or m.constant))
        entry = BackendReport(backend.label, list(result["eval"].shape), trainable, stats)
        if reference is None:
            reference = result
            noise = float32_noise(graph, backend, workers, weights, data, result)
        else:
            compare(entry, reference, result)
            widen(entry, noise)
            entry.kink_flips = kink_flips(reference, result, graph)
            if entry.kink_flips:  # another one-sided derivative: reported, not gated
                entry.grad_input.tol = entry.grad_weights.tol = math.inf
            if not entry.ok:
                entry.first_divergence = first_divergence(reference, result, graph)
        report.backends.append(entry)
    return report


def build(
    graph: Graph, path: Path, backend: Backend, workers: Workers, overrides: dict
) -> tuple[dict[str, np.ndarray], int]:
    """Emit the module to a temporary file, build it in the worker: its tensors and size."""
    module = workers.path(f"{backend.label}_{path.stem}.py")
    Path(module).write_text(render(graph, path, backend, overrides))
    worker = workers[backend]
    trainable = worker.call("build", file=module, cls=graph.name, kwargs={}, seed=SEED)
    exported = workers.path(f"{backend.label}-export.npz")
    worker.call("export", path=exported)
    with np.load(exported) as data:
        return {k: data[k] for k in data.files}, trainable["trainable"]


NOISE_FACTOR = 10
GATED = ("eval", "train", "grad_input", "grad_weights")


def float32_noise(
    graph: Graph, backend: Backend, workers: Workers, weights: dict, data: str, result: dict
) -> dict[str, float]:
    """How far the reference's own float32 results are from its float64 ones.

    Deep ReLU networks have kinks: a pre-activation within float32 rounding of zero
    flips between frameworks, and gradients move by more than 1e-4 although every layer
    agrees. Where the reference framework runs in float64, the gate for each quantity is
    max(TOLERANCE, NOISE_FACTOR x that float32 error); otherwise it is TOLERANCE.
    """
    try:
        exact = run(graph, backend, workers, weights, data, precision="float64")
    except WorkerError:
        return {}
    probe = BackendReport(backend.label, [], 0, 0)
    compare(probe, exact, result)
    return {key: getattr(probe, key).rel for key in GATED}


def widen(entry: BackendReport, noise: dict[str, float]) -> None:
    """Apply the float32 noise floor to each gated comparison (see float32_noise)."""
    for key in GATED:
        d = getattr(entry, key)
        if d is not None and key in noise:
            d.tol = max(d.tol, NOISE_FACTOR * noise[key])


def randomize_statistics(weights: dict, graph: Graph, backend: Backend, rng) -> dict:
    """Non-trivial BN statistics: means around 0, variances in [0.5, 2]."""
    for m in tensor_maps(graph, backend):
        if m.trainable or m.constant:
            continue
        if m.canonical.endswith("var"):
            weights[m.canonical] = rng.uniform(0.5, 2.0, m.shape).astype(np.float32)
        else:
            weights[m.canonical] = (0.2 * rng.standard_normal(m.shape)).astype(np.float32)
    return weights


def run(
    graph: Graph,
    backend: Backend,
    workers: Workers,
    weights: dict | None,
    data: str,
    precision: str = "float32",
) -> dict[str, np.ndarray]:
    """Load the shared weights (unless None: keep them), run forward and backward."""
    worker = workers[backend]
    if weights is not None:
        arrays = workers.path(f"{backend.label}-weights.npz")
        np.savez(arrays, **to_native(weights, graph, backend))
        worker.call("load", path=arrays)
    out = workers.path(f"{backend.label}-out.npz")
    worker.call("run", inputs=data, out=out, precision=precision)
    with np.load(out) as result:
        raw = {k: result[k] for k in result.files}
    names, transposed = {}, set()
    for m in tensor_maps(graph, backend):
        for prefix in ("grad:", "train_grad:"):
            names[prefix + m.native] = prefix + m.canonical
            if m.transposed:
                transposed.add(prefix + m.native)
    return {names.get(k, k): v.T if k in transposed else v for k, v in raw.items()}


def diff(reference: np.ndarray, other: np.ndarray, floor: float = 0.0) -> Diff:
    """Largest absolute difference and its ratio to the reference's largest magnitude."""
    if reference.shape != other.shape:
        return Diff(math.inf, math.inf, f"shape {list(other.shape)} != {list(reference.shape)}")
    absolute = float(np.max(np.abs(reference - other))) if reference.size else 0.0
    scale = max(float(np.max(np.abs(reference))) if reference.size else 0.0, floor)
    return Diff(absolute, absolute / scale if scale else absolute)


def compare(entry: BackendReport, ref: dict, got: dict) -> None:
    """Fill in one backend's differences from the reference."""
    entry.eval = diff(ref["eval"], got["eval"])
    entry.train = diff(ref["train"], got["train"])
    entry.grad_input = diff(ref["grad:input"], got["grad:input"])
    entry.grad_weights = worst_gradient(ref, got, "grad:")
    entry.train_grad_input = diff(ref["train_grad:input"], got["train_grad:input"])
    entry.train_grad_weights = worst_gradient(ref, got, "train_grad:")


def worst_gradient(ref: dict, got: dict, prefix: str) -> Diff:
    """The weight whose gradient differs most, each relative to its own largest magnitude
    (floored at 1% of the largest weight gradient, so near-zero gradients don't dominate)."""
    keys = [k for k in ref if k.startswith(prefix) and k != f"{prefix}input"]
    scale = max((float(np.max(np.abs(ref[k]))) for k in keys), default=0.0)
    worst = Diff(0.0, 0.0)
    for key in keys:
        d = diff(ref[key], got.get(key, np.full(1, np.nan)), floor=1e-2 * scale)
        if not d.rel <= worst.rel:  # NaN-safe: a missing gradient is the worst
            worst = Diff(d.abs, d.rel, key.removeprefix(prefix))
    return worst


KINKED = {"relu": (0.0,), "relu6": (0.0, 6.0), "hardsigmoid": (0.0, 1.0), "hardswish": (0.0,)}


def kink_flips(ref: dict, got: dict, graph: Graph) -> int:
    """Activations at a kink (0, or a saturation value) in one backend but not the other."""
    flips = 0
    for node in graph.nodes:
        key = f"layer:{node.path}"
        if node.op not in KINKED or key not in ref or key not in got:
            continue
        if ref[key].shape != got[key].shape:
            continue
        for value in KINKED[node.op]:
            flips += int(np.count_nonzero((ref[key] == value) != (got[key] == value)))
    return flips


def first_divergence(ref: dict, got: dict, graph: Graph) -> str | None:
    """The first layer, in graph order, whose eval output differs beyond tolerance."""
    for node in graph.nodes:
        key = f"layer:{node.path}"
        if key in ref and key in got and not diff(ref[key], got[key]).ok:
            return f"{node.path} ({node.op})"
    return "the output (no single layer differs beyond tolerance)"
