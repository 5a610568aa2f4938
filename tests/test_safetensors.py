"""`archspec convert` reads and writes .safetensors for every framework.

- The suffix chooses the format; `--from`/`--to` say whose names and layouts the file holds
  (Paddle's (in, out) linear weights and `_mean`, MindSpore's `gamma`, PyTorch's
  `num_batches_tracked`). archspec reads and writes the file itself: no pickle, no framework.
- Round trips through .safetensors and the frameworks' own formats are bit-identical, and
  each framework's model loads the .safetensors written for it.
- A file from `safetensors.torch.save_file` of a real state dict converts; other precisions
  become float32 and are reported; integer, boolean and complex weights are refused.
- Crafted files (lying header lengths, offsets out of range, huge headers, duplicate names,
  pickles under the name) are located errors with exit status 2, and nothing is written.
- The metadata records the framework (`format`) and the spec; a file recorded for another
  framework than `--from` is refused.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import check_workers
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from archspec.backend import available
from archspec.build import render
from archspec.checkpoint import MAX_HEADER, select_state
from archspec.compiler import compile_spec
from archspec.convert import _read, convert
from archspec.errors import SpecError
from archspec.runner import Workers
from archspec.tensors import extras, from_native, tensor_maps, to_native

BACKENDS = available()
FRAMEWORKS = ["torch", "paddle", "mindspore"]
TITLE = {"torch": "PyTorch", "paddle": "PaddlePaddle", "mindspore": "MindSpore"}
FORMAT = {"torch": "pt", "paddle": "paddle", "mindspore": "mindspore"}

SPEC = """\
name: Tiny
input: {channels: 3, height: 8, width: 8}
nodes:
  - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: bn, op: batchnorm2d}
  - {op: relu}
  - {op: global_avg_pool}
  - {op: flatten}
  - {name: fc, op: linear, out: 2}
"""

# PyTorch writes the checkpoints a user would bring (in its own process)
TORCH = """
import importlib.util, os, sys
import numpy as np
import torch
from safetensors.torch import save_file

D = sys.argv[1]
with np.load(os.path.join(D, "torch.npz")) as z:
    sd = {k: torch.from_numpy(z[k].copy()) for k in z.files}
torch.save(sd, os.path.join(D, "plain.pt"))

spec = importlib.util.spec_from_file_location("tiny_torch", os.path.join(D, "tiny_torch.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
torch.manual_seed(0)
net = module.Tiny()
net.train()
net(torch.randn(2, 3, 8, 8))  # moves the BN statistics and num_batches_tracked
real = net.state_dict()
save_file(real, os.path.join(D, "real.safetensors"), metadata={"format": "pt"})
save_file({"module." + k: v for k, v in real.items()}, os.path.join(D, "module.safetensors"))
np.savez(os.path.join(D, "real.npz"), **{k: v.numpy() for k, v in real.items()})
for name in ("float64", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"):
    low = {k: v.to(getattr(torch, name)) if v.is_floating_point() else v
           for k, v in real.items()}
    save_file(low, os.path.join(D, f"d_{name}.safetensors"))
    np.savez(os.path.join(D, f"d_{name}.npz"), **{k: v.float().numpy() if v.is_floating_point()
             else v.numpy() for k, v in low.items()})
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def graph(spec):
    return compile_spec(spec)


@pytest.fixture(scope="module")
def ref(graph) -> dict[str, np.ndarray]:
    """Canonical weights, exactly representable in float16 too."""
    rng = np.random.default_rng(0)
    out = {}
    for m in tensor_maps(graph, BACKENDS["torch"]):
        low = 32 if m.canonical.endswith("var") else -127
        out[m.canonical] = (rng.integers(low, 128, m.shape) / 64).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory, spec, graph, ref) -> Path:
    """Checkpoints written by PyTorch and safetensors.torch, in their own process."""
    folder = tmp_path_factory.mktemp("made")
    np.savez(folder / "torch.npz", **to_native(ref, graph, BACKENDS["torch"]))
    (folder / "tiny_torch.py").write_text(render(graph, spec, BACKENDS["torch"], {}))
    proc = subprocess.run(
        [sys.executable, "-c", TORCH, str(folder)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def pool():
    """The session's shared framework workers (conversions keep no state in a worker)."""
    return check_workers()


def run(graph, pool, src_fw: str, src: Path, dst_fw: str, dst: Path):
    return convert(graph, BACKENDS[src_fw], src, BACKENDS[dst_fw], dst, workers=pool)


def refused(graph, pool, src_fw: str, src: Path, dst_fw: str, dst: Path) -> str:
    with pytest.raises(SpecError) as info:
        run(graph, pool, src_fw, src, dst_fw, dst)
    assert not dst.exists()
    return str(info.value)


def read_back(graph, pool, fw: str, path: Path) -> dict[str, np.ndarray]:
    """A written checkpoint, read back to canonical arrays (nothing may need changing)."""
    backend = BACKENDS[fw]
    known = {m.native for m in tensor_maps(graph, backend)} | set(extras(graph, backend))
    state = select_state(_read(pool, backend, path), known, str(path))
    assert state.notes == []
    notes: list[str] = []
    out = from_native(state.arrays, graph, backend, str(path), dtypes=state.dtypes, notes=notes)
    assert notes == []
    return out


def assert_same(got: dict, want: dict) -> None:
    """The same names, dtypes, shapes and bytes."""
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        assert got[key].tobytes() == value.tobytes(), key


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="np") as file:
        return file.metadata()


def native(graph, fw: str, canonical: dict) -> dict[str, np.ndarray]:
    return to_native(canonical, graph, BACKENDS[fw])


def canonical_of(graph, fw: str, arrays: dict) -> dict[str, np.ndarray]:
    return from_native(arrays, graph, BACKENDS[fw], "test")


def crafted(header: dict | bytes, body: bytes = b"", length: int | None = None) -> bytes:
    """A .safetensors file by hand: 8-byte length, JSON header, data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + body


def entry(dtype: str, shape: list[int], start: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archspec.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


# -- 1. round trips and each framework's names -------------------------------------------------


def test_a_round_trip_through_safetensors_is_bit_identical(graph, pool, ref, made, tmp_path):
    """torch .pt -> paddle .safetensors -> mindspore .ckpt -> torch .safetensors -> torch .pt"""
    chain = [
        ("torch", made / "plain.pt"),
        ("paddle", tmp_path / "a.safetensors"),
        ("mindspore", tmp_path / "b.ckpt"),
        ("torch", tmp_path / "c.safetensors"),
        ("torch", tmp_path / "d.pt"),
    ]
    for (src_fw, src), (dst_fw, dst) in itertools.pairwise(chain):
        result = run(graph, pool, src_fw, src, dst_fw, dst)
        assert (result.count, result.notes) == (8, []), (src, dst)
    paddle = load_file(tmp_path / "a.safetensors")
    assert_same(paddle, native(graph, "paddle", ref))
    assert paddle["fc.weight"].shape == (4, 2)  # Paddle's (in, out)
    assert {"bn._mean", "bn._variance"} <= set(paddle)
    assert metadata(tmp_path / "a.safetensors") == {"format": "paddle", "archspec_spec": "Tiny"}
    torch_st = load_file(tmp_path / "c.safetensors")
    assert_same(torch_st, native(graph, "torch", ref))
    assert torch_st["bn.num_batches_tracked"].dtype == np.int64
    assert metadata(tmp_path / "c.safetensors") == {"format": "pt", "archspec_spec": "Tiny"}
    assert_same(read_back(graph, pool, "torch", tmp_path / "d.pt"), ref)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_each_framework_loads_the_safetensors_written_for_it(
    spec, graph, pool, ref, made, tmp_path, fw
):
    dst = tmp_path / "out.safetensors"
    assert run(graph, pool, "torch", made / "plain.pt", fw, dst).notes == []
    arrays = load_file(dst)
    assert_same(arrays, native(graph, fw, ref))
    assert metadata(dst) == {"format": FORMAT[fw], "archspec_spec": "Tiny"}
    if fw == "mindspore":
        assert {"bn.gamma", "bn.beta", "bn.moving_mean", "bn.moving_variance"} <= set(arrays)
    # the framework's own model takes the file's tensors with strict loading
    module = pool.path(f"tiny_{fw}.py")
    Path(module).write_text(render(graph, spec, BACKENDS[fw], {}))
    worker = pool[BACKENDS[fw]]
    worker.call("build", file=module, cls="Tiny", kwargs={}, seed=0)
    np.savez(pool.path("load.npz"), **arrays)
    worker.call("load", path=pool.path("load.npz"))
    worker.call("export", path=pool.path("export.npz"))
    with np.load(pool.path("export.npz")) as data:
        exported = {k: data[k] for k in data.files}
    assert_same(exported, arrays)


def test_safetensors_to_safetensors_needs_no_framework(graph, ref, tmp_path):
    src, dst = tmp_path / "in.safetensors", tmp_path / "OUT.SafeTensors"
    save_file(native(graph, "torch", ref), src)
    with Workers() as workers:
        result = convert(graph, BACKENDS["torch"], src, BACKENDS["mindspore"], dst, workers)
        assert workers.workers == {}
    assert (result.count, result.notes) == (8, [])
    assert_same(load_file(dst), native(graph, "mindspore", ref))


# -- 2. files others wrote ------------------------------------------------------------------


def test_a_real_torch_state_dict_from_safetensors_torch_converts(graph, pool, made, tmp_path):
    with np.load(made / "real.npz") as data:
        real = {k: data[k] for k in data.files}
    assert real["bn.num_batches_tracked"] == 1
    want = canonical_of(graph, "torch", real)
    dst = tmp_path / "out.pdparams"
    result = run(graph, pool, "torch", made / "real.safetensors", "paddle", dst)
    assert (result.count, result.notes) == (8, [])
    assert_same(read_back(graph, pool, "paddle", dst), want)
    # DataParallel's prefix is removed as for the other formats
    dst = tmp_path / "out.safetensors"
    result = run(graph, pool, "torch", made / "module.safetensors", "torch", dst)
    assert result.notes == ["removed prefix `module.`"]
    assert_same(canonical_of(graph, "torch", load_file(dst)), want)


@pytest.mark.parametrize(
    "dtype", ["float64", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"]
)
def test_other_precisions_become_float32_and_are_reported(graph, pool, made, tmp_path, dtype):
    with np.load(made / f"d_{dtype}.npz") as data:  # PyTorch's own float32 of the values
        want = canonical_of(graph, "torch", {k: data[k] for k in data.files})
    dst = tmp_path / "out.safetensors"
    result = run(graph, pool, "torch", made / f"d_{dtype}.safetensors", "paddle", dst)
    assert result.notes == [f"converted 8 tensors from {dtype} to float32"]
    assert_same(canonical_of(graph, "paddle", load_file(dst)), want)


def test_the_cli_reports_a_float64_conversion(spec, graph, ref, tmp_path):
    shutil.copy(spec, tmp_path / "tiny.yaml")
    wide = {k: v.astype(np.float64) for k, v in native(graph, "torch", ref).items()}
    wide["bn.num_batches_tracked"] = np.asarray(5, np.int64)
    save_file(wide, tmp_path / "f64.safetensors")
    proc = cli(
        "convert",
        "tiny.yaml",
        "--from",
        "torch",
        "f64.safetensors",
        "--to",
        "mindspore",
        "out.safetensors",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "f64.safetensors: note: converted 8 tensors from float64 to float32\n"
        "wrote out.safetensors: 8 tensors, PyTorch -> MindSpore\n"
    )
    assert_same(load_file(tmp_path / "out.safetensors"), native(graph, "mindspore", ref))


@pytest.mark.parametrize(
    ("name", "dtype", "problem"),
    [
        ("conv.weight", "int32", "conv.weight: expected floating point, got int32"),
        ("bn.weight", "bool", "bn.weight: expected floating point, got bool"),
        ("fc.weight", "complex64", "fc.weight: expected floating point, got complex64"),
        ("conv.bias", "uint8", "conv.bias: expected floating point, got uint8"),
    ],
)
def test_non_floating_weights_are_refused(graph, pool, ref, tmp_path, name, dtype, problem):
    arrays = native(graph, "torch", ref)
    arrays[name] = arrays[name].astype(dtype)
    src = tmp_path / "bad.safetensors"
    save_file(arrays, src)
    message = refused(graph, pool, "torch", src, "paddle", tmp_path / "out.pdparams")
    assert message == f"{src}: error: checkpoint does not fit the spec: wrong dtype: {problem}"


def test_a_dtype_numpy_cannot_hold_is_refused(graph, pool, ref, tmp_path):
    arrays = {k: v for k, v in native(graph, "paddle", ref).items() if k != "fc.bias"}
    header, start = {}, 0
    for key, value in arrays.items():
        header[key] = entry("F32", list(value.shape), start, start + value.nbytes)
        start += value.nbytes
    header["fc.bias"] = entry("F8_E8M0", [2], start, start + 2)
    src = tmp_path / "e8m0.safetensors"
    src.write_bytes(crafted(header, b"".join(v.tobytes() for v in arrays.values()) + b"\x7f\x7f"))
    message = refused(graph, pool, "paddle", src, "torch", tmp_path / "out.pt")
    assert message == (
        f"{src}: error: checkpoint entries that must be tensors are not: "
        "`fc.bias` is a tensor of F8_E8M0"
    )


# -- 3. crafted files ----------------------------------------------------------------------


class Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def crafted_cases(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, what the message says after `not a safetensors file: `)."""
    f32 = entry("F32", [2], 0, 8)
    twice = b'{"fc.bias": ' + json.dumps(f32).encode()
    lying = crafted({"fc.bias": f32}, bytes(8), length=1000)
    return {
        "too short": (b"\x01\x02\x03", "3 bytes, too short for a header length"),
        "header length past the end": (
            lying,
            f"its header length (1000 bytes) runs past the end of the file ({len(lying)} bytes)",
        ),
        "huge header length": (
            crafted(b"{}", length=2**62),
            f"its header length ({2**62} bytes) is over the {MAX_HEADER}-byte limit",
        ),
        "header just over the limit": (
            crafted(b"{}", length=MAX_HEADER + 1),
            f"its header length ({MAX_HEADER + 1} bytes) is over the {MAX_HEADER}-byte limit",
        ),
        "offsets out of range": (  # the second tensor ends 8 bytes past the file
            crafted({"conv.bias": f32, "fc.bias": entry("F32", [2], 8, 16)}, bytes(8)),
            "incomplete metadata, file not fully covered",  # safetensors' own words
        ),
        "offsets far out of range": (
            crafted({"fc.bias": entry("F32", [2], 1 << 40, (1 << 40) + 8)}, bytes(8)),
            "invalid offset for tensor `fc.bias`",
        ),
        "offsets that do not fit the shape": (
            crafted({"fc.bias": entry("F32", [2, 2], 0, 8)}, bytes(8)),
            "invalid shape, data type, or offset for tensor",
        ),
        "overlapping tensors": (
            crafted({"fc.bias": f32, "fc.weight": f32}, bytes(8)),
            "invalid offset for tensor",
        ),
        "a shape that overflows": (
            crafted({"fc.bias": entry("F32", [2**40, 2**40], 0, 8)}, bytes(8)),
            "overflow",
        ),
        "not JSON": (crafted(b"{x}"), "invalid JSON in header"),
        "unknown dtype": (crafted({"fc.bias": entry("X99", [2], 0, 8)}, bytes(8)), "X99"),
        "metadata that is not text": (
            crafted({"__metadata__": {"format": 3}, "fc.bias": f32}, bytes(8)),
            "invalid JSON in header",
        ),
        "a name twice": (
            crafted(twice + b", " + twice[1:] + b"}", bytes(8)),
            "`fc.bias` appears twice in its header",
        ),
        "a pickle": (
            pickle.dumps({"fc.bias": Reduce(os.system, f"touch {marker}")}, protocol=4),
            "it is a pickle",
        ),
        "a zip": (b"PK\x03\x04" + bytes(60), "it is a zip archive"),
    }


@pytest.mark.parametrize("name", list(crafted_cases(Path("m"))))
def test_crafted_files_are_refused(graph, pool, tmp_path, name):
    marker = tmp_path / "MARKER"
    data, detail = crafted_cases(marker)[name]
    src = tmp_path / "evil.safetensors"
    src.write_bytes(data)
    message = refused(graph, pool, "torch", src, "paddle", tmp_path / "out.pdparams")
    assert message.startswith(f"{src}: error: not a safetensors file: "), message
    assert detail in message
    assert "\n" not in message
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.safetensors"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "header length past the end",
            "its header length (1000 bytes) runs past the end of the file (83 bytes)",
        ),
        ("offsets out of range", None),
        (
            "huge header length",
            f"its header length ({2**62} bytes) is over the {MAX_HEADER}-byte limit",
        ),
    ],
)
def test_the_cli_refuses_crafted_files_with_status_2(spec, tmp_path, name, message):
    shutil.copy(spec, tmp_path / "tiny.yaml")
    (tmp_path / "evil.safetensors").write_bytes(crafted_cases(tmp_path / "MARKER")[name][0])
    proc = cli(
        "convert",
        "tiny.yaml",
        "--from",
        "paddle",
        "evil.safetensors",
        "--to",
        "torch",
        "out.pt",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("evil.safetensors: error: not a safetensors file: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    if message:
        assert proc.stderr == f"evil.safetensors: error: not a safetensors file: {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.safetensors", "tiny.yaml"]


def test_a_safetensors_under_another_name_gets_a_hint(graph, pool, ref, tmp_path):
    src = tmp_path / "weights.pt"
    save_file(native(graph, "torch", ref), src)
    message = refused(graph, pool, "torch", src, "paddle", tmp_path / "out.pdparams")
    assert message.startswith(f"{src}: error: cannot read a PyTorch checkpoint: ")
    assert message.endswith(" (it looks like a safetensors file: name it .safetensors)")


# -- 4. the recorded format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("paddle", "torch"), ("torch", "paddle"), ("mindspore", "torch"), ("torch", "mindspore")],
)
def test_a_file_recorded_for_another_framework_is_refused(
    graph, pool, made, tmp_path, written, read_as
):
    src = tmp_path / "in.safetensors"
    run(graph, pool, "torch", made / "plain.pt", written, src)
    message = refused(graph, pool, read_as, src, "torch", tmp_path / "out.pt")
    assert message == (
        f"{src}: error: holds {TITLE[written]}'s tensor names and layouts (its metadata records "
        f"format `{FORMAT[written]}`), not {TITLE[read_as]}'s (read it with --from {written})"
    )


def test_the_cli_refuses_a_format_mismatch_with_status_2(spec, made, tmp_path):
    shutil.copy(spec, tmp_path / "tiny.yaml")
    shutil.copy(made / "real.safetensors", tmp_path / "hf.safetensors")  # format "pt"
    proc = cli(
        "convert",
        "tiny.yaml",
        "--from",
        "paddle",
        "hf.safetensors",
        "--to",
        "torch",
        "out.safetensors",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        "hf.safetensors: error: holds PyTorch's tensor names and layouts (its metadata "
        "records format `pt`), not PaddlePaddle's (read it with --from torch)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf.safetensors", "tiny.yaml"]


def test_an_unknown_format_and_another_spec_are_reported(graph, pool, ref, tmp_path):
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    save_file(native(graph, "paddle", ref), src, metadata={"format": "np", "archspec_spec": "X"})
    result = run(graph, pool, "paddle", src, "torch", dst)
    assert result.notes == [
        "its metadata records format `np`, no framework's here: "
        "read as PaddlePaddle's names and layouts",
        "written for spec `X`, read with spec `Tiny`",
    ]
    assert_same(load_file(dst), native(graph, "torch", ref))


# -- 5. writing: private folder, rename, ordinary mode -------------------------------------


def test_a_link_at_the_destination_is_replaced_not_followed(graph, pool, made, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    dst = tmp_path / "out.safetensors"
    dst.symlink_to(victim)
    old = os.umask(0o022)
    try:
        run(graph, pool, "torch", made / "plain.pt", "paddle", dst)
    finally:
        os.umask(old)
    assert victim.read_bytes() == b"precious"
    assert stat.S_ISREG(os.lstat(dst).st_mode)
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors", "victim"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_failure_while_writing_leaves_nothing_and_keeps_the_old_file(
    graph, pool, made, tmp_path, monkeypatch, failure
):
    import archspec.convert

    def fail(*args):
        raise failure("interrupted")

    dst = tmp_path / "out.safetensors"
    dst.write_bytes(b"old checkpoint")
    monkeypatch.setattr(archspec.convert, "_finish", fail)
    with pytest.raises(failure):
        run(graph, pool, "torch", made / "plain.pt", "mindspore", dst)
    assert dst.read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]
