"""`archspec convert` on hostile, wrong and unusual checkpoints.

- Nothing a checkpoint carries ever runs: Paddle's pickles are read by a restricted
  unpickler (every payload below would run under paddle.load), PyTorch's by torch's
  weights-only unpickler, MindSpore's protobuf field by field.
- Temporary files have unpredictable names in a private folder: links planted under any
  plausible name are never written through; a failure leaves nothing behind.
- Wrong precisions are converted to float32 and said so; integer, boolean and complex
  weights, and MindSpore tensors with too few or too many bytes, are refused.
- Training scripts' wrappers and prefixes are removed and said so.
- User mistakes are located errors with exit status 2, never internal errors.

Real checkpoints are written once per module by each framework in its own process; most
conversions run in this process through one shared pool of framework workers.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import check_workers

from archspec.backend import available
from archspec.checkpoint import select_state
from archspec.compiler import compile_spec
from archspec.convert import _read, convert
from archspec.errors import SpecError
from archspec.tensors import extras, from_native, tensor_maps, to_native

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = available()
FRAMEWORKS = ["torch", "paddle", "mindspore"]
SUFFIX = {"torch": ".pt", "paddle": ".pdparams", "mindspore": ".ckpt"}
TITLE = {"torch": "PyTorch", "paddle": "PaddlePaddle", "mindspore": "MindSpore"}

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

# -- the checkpoints each framework writes (run in their own processes) -------------------

TORCH = """
import os, sys
import numpy as np
import torch

D = sys.argv[1]
with np.load(os.path.join(D, "torch.npz")) as z:
    sd = {k: torch.from_numpy(z[k].copy()) for k in z.files}


def save(obj, name):
    torch.save(obj, os.path.join(D, name))


class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(D, "MARKER"),))


def cast(dtype):
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}


prefixed = {"module." + k: v for k, v in sd.items()}
optimizer = {
    "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4, 3, 3, 3)}},
    "param_groups": [{"lr": 0.1, "params": [0]}],
}
save(sd, "plain.pt")
save({"state_dict": sd}, "w_state_dict.pt")
save({"model": sd, "epoch": 3, "optimizer": optimizer}, "w_model.pt")
save({"model_state_dict": prefixed, "epoch": 3, "scheduler": None}, "w_model_state_dict.pt")
save(prefixed, "w_module.pt")
save({"_orig_mod." + k: v for k, v in prefixed.items()}, "w_compiled.pt")
save({"model": {"state_dict": sd}}, "w_nested.pt")
save({**sd, "epoch": 7, "arch": "tiny", "best_acc": None}, "w_extras.pt")
save(
    {k: torch.nn.Parameter(v) if v.is_floating_point() else v for k, v in sd.items()},
    "w_grad.pt",
)
save([sd], "e_list.pt")
save(sd["conv.weight"], "e_tensor.pt")
save({**sd, "conv.weight": 3}, "e_int_entry.pt")
save({**sd, "fc.bias": None}, "e_none.pt")
for name in ("float64", "float16", "bfloat16"):
    save(cast(getattr(torch, name)), f"d_{name}.pt")
save({**sd, "conv.weight": sd["conv.weight"].to(torch.int32)}, "b_int32.pt")
save({**sd, "bn.weight": sd["bn.weight"] > 0}, "b_bool.pt")
save({**sd, "fc.weight": sd["fc.weight"].to(torch.complex64)}, "b_complex64.pt")
save({**cast(torch.float64), "fc.bias": torch.tensor([1e300, 0.0], dtype=torch.float64)},
     "b_overflow.pt")
save({"conv.weight": Payload()}, "evil_zip.pt")
"""

PADDLE = """
import os, sys
import numpy as np
import paddle

D = sys.argv[1]
with np.load(os.path.join(D, "paddle.npz")) as z:
    sd = {k: paddle.to_tensor(z[k]) for k in z.files}


def save(obj, name, **kwargs):
    paddle.save(obj, os.path.join(D, name), **kwargs)


save(sd, "plain.pdparams")
save(sd, "p2.pdparams", protocol=2)
save({"model": sd, "epoch": 3}, "w_model.pdparams")
save({"model": sd, "epoch": 3}, "w_model_p2.pdparams", protocol=2)
for name in ("float64", "float16", "bfloat16"):
    save({k: v.astype(name) for k, v in sd.items()}, f"d_{name}.pdparams")
"""

MINDSPORE = """
import os, sys
import numpy as np
import mindspore as ms
from mindspore.train.checkpoint_pb2 import Checkpoint

D = sys.argv[1]
with np.load(os.path.join(D, "mindspore.npz")) as z:
    arrays = {k: z[k] for k in z.files}


def save(tensors, name, **kwargs):
    items = [{"name": k, "data": v if isinstance(v, ms.Tensor) else ms.Tensor(v)}
             for k, v in tensors.items()]
    ms.save_checkpoint(items, os.path.join(D, name), **kwargs)


def edit(name, tag, change):
    proto = Checkpoint()
    proto.ParseFromString(open(os.path.join(D, "plain.ckpt"), "rb").read())
    for value in proto.value:
        if value.tag == tag:
            value.tensor.tensor_content = change(value.tensor.tensor_content)
    open(os.path.join(D, name), "wb").write(proto.SerializeToString())


save(arrays, "plain.ckpt")
save(arrays, "crc.ckpt", crc_check=True)
for name in ("float64", "float16"):
    save({k: v.astype(name) for k, v in arrays.items()}, f"d_{name}.ckpt")
save({k: ms.Tensor(v).astype(ms.bfloat16) for k, v in arrays.items()}, "d_bfloat16.ckpt")
save({**arrays, "conv.weight": arrays["conv.weight"].astype(np.int32)}, "b_int32.ckpt")
save({**arrays, "bn.gamma": arrays["bn.gamma"] > 0}, "b_bool.ckpt")
moments = {"moments." + k: np.zeros_like(v) for k, v in arrays.items()}
training = {"learning_rate": np.float32(0.1), "global_step": np.array([5], np.int32)}
save({**arrays, **moments, **training}, "w_train.ckpt",
     append_dict={"epoch_num": 3, "step_num": 30})
edit("short.ckpt", "conv.weight", lambda data: data[:-4])
edit("long.ckpt", "fc.bias", lambda data: data + bytes(4))
"""

SCRIPTS = {"torch": TORCH, "paddle": PADDLE, "mindspore": MINDSPORE}


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
    """Canonical weights, exactly representable in float16 and bfloat16 too."""
    rng = np.random.default_rng(0)
    out = {}
    for m in tensor_maps(graph, BACKENDS["torch"]):
        low = 32 if m.canonical.endswith("var") else -127
        out[m.canonical] = (rng.integers(low, 128, m.shape) / 64).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory, graph, ref) -> Path:
    """Real checkpoints written by each framework (three processes, run side by side)."""
    folder = tmp_path_factory.mktemp("made")
    for fw in FRAMEWORKS:
        np.savez(folder / f"{fw}.npz", **to_native(ref, graph, BACKENDS[fw]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPTS[fw], str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for fw in FRAMEWORKS
    ]
    for fw, proc in zip(FRAMEWORKS, procs, strict=True):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{fw}: {err[-3000:]}"
    assert not (folder / "MARKER").exists()
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
    assert all(
        a.dtype.kind == "f" for k, a in state.arrays.items() if k not in extras(graph, backend)
    )
    notes: list[str] = []
    out = from_native(state.arrays, graph, backend, str(path), dtypes=state.dtypes, notes=notes)
    assert notes == []
    return out


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == np.float32, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def cli(*args: str, cwd: Path, timeout: float = 60, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "archspec.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


# -- 1. nothing a checkpoint carries runs ------------------------------------------------------


class Reduce:
    """Pickles as `callable(*args)`: what a hostile checkpoint carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def payloads(marker: Path, state: dict) -> dict[str, tuple[object, str]]:
    """name -> (object to pickle, the global that must be refused)."""
    import subprocess as sp

    from numpy.testing._private.utils import runstring

    stealth_bias = Reduce(
        eval,
        f"({touch_code(marker)}, __import__('numpy').zeros(2, 'float32'))[1]",
    )
    return {
        "os.system": (
            {**state, "conv.weight": Reduce(os.system, f"touch {marker}")},
            "posix.system",
        ),
        "exec": ({**state, "fc.bias": Reduce(exec, touch_code(marker))}, "builtins.exec"),
        "eval": (Reduce(eval, f"__import__('os').system('touch {marker}')"), "builtins.eval"),
        "subprocess": (Reduce(sp.call, ["touch", str(marker)]), "subprocess.call"),
        "numpy exec gadget": (Reduce(runstring, touch_code(marker), {}), None),
        "stealth": ({**state, "fc.bias": stealth_bias}, "builtins.eval"),
        "nested in a list": (
            {"state_dict": state, "history": [1, 2, [Reduce(os.system, f"touch {marker}")]]},
            "posix.system",
        ),
    }


def runstring_name() -> str:
    from numpy.testing._private.utils import runstring

    return f"{runstring.__module__}.{runstring.__name__}"


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "name",
    ["os.system", "exec", "eval", "subprocess", "numpy exec gadget", "stealth", "nested in a list"],
)
def test_a_pdparams_payload_never_runs(graph, pool, ref, tmp_path, name, protocol):
    marker = tmp_path / "MARKER"
    state = to_native(ref, graph, BACKENDS["paddle"])
    obj, refused_global = payloads(marker, state)[name]
    refused_global = refused_global or runstring_name()
    src, dst = tmp_path / "evil.pdparams", tmp_path / "out.pt"
    src.write_bytes(pickle.dumps(obj, protocol=protocol))
    message = refused(graph, pool, "paddle", src, "torch", dst)
    assert message == (
        f"{src}: error: cannot read a PaddlePaddle checkpoint: "
        f"refused to load `{refused_global}`: a .pdparams holds only arrays"
    )
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pdparams"]


def test_handwritten_pickles_are_refused_before_anything_is_called(graph, pool, tmp_path):
    marker = tmp_path / "MARKER"
    cases = {
        # protocol 0: INST looks the class up and calls it at once
        b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n.": "refused to load `os.system`",
        # getattr(__import__('os'), 'system') built from builtins
        b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR.": (
            "refused to load `builtins.getattr`"
        ),
        # protocol 2: GLOBAL, then REDUCE
        b"\x80\x02cposix\nsystem\nX\x05\x00\x00\x00touch\x85R.": "refused to load `posix.system`",
        # the allowed ndarray may not be called (a huge allocation)
        b"\x80\x02cnumpy\nndarray\nJ\x00\x10\xa5\x54\x85R.": "truncated or corrupt pickle",
        # bytes through _codecs.encode with any codec but latin1
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.": (
            "refused to load `_codecs.encode`"
        ),
        b"\x80\x02cnumpy\nload\nX\x01\x00\x00\x00x\x85R.": "refused to load `numpy.load`",
    }
    for data, expected in cases.items():
        src = tmp_path / "evil.pdparams"
        src.write_bytes(data)
        message = refused(graph, pool, "paddle", src, "torch", tmp_path / "out.pt")
        assert message.startswith(f"{src}: error: cannot read a PaddlePaddle checkpoint: ")
        assert expected in message, message
        assert not marker.exists()


@pytest.mark.parametrize(("protocol", "cut"), [(2, 1), (2, 3), (2, 12), (4, 1), (4, 12)])
def test_a_truncated_payload_is_refused_without_running(graph, pool, ref, tmp_path, protocol, cut):
    """Without frames (protocol 2) pickle.load runs the REDUCE before it finds the end
    missing; here the lookup is refused first. Protocol 4 reads whole frames first."""
    marker = tmp_path / "MARKER"
    state = to_native(ref, graph, BACKENDS["paddle"])
    data = pickle.dumps({"payload": Reduce(os.system, f"touch {marker}"), **state}, protocol)
    src = tmp_path / "evil.pdparams"
    src.write_bytes(data[:-cut])
    message = refused(graph, pool, "paddle", src, "torch", tmp_path / "out.pt")
    prefix = f"{src}: error: cannot read a PaddlePaddle checkpoint: "
    if protocol == 2:
        assert message == prefix + "refused to load `posix.system`: a .pdparams holds only arrays"
    else:
        assert message == (
            prefix + "not a readable .pdparams: truncated or corrupt pickle "
            "(pickle data was truncated)"
        )
    assert not marker.exists()


def test_a_truncated_real_pdparams_is_a_located_error(graph, pool, made, tmp_path):
    data = (made / "plain.pdparams").read_bytes()
    src = tmp_path / "cut.pdparams"
    src.write_bytes(data[: len(data) // 2])
    message = refused(graph, pool, "paddle", src, "torch", tmp_path / "out.pt")
    assert message.startswith(
        f"{src}: error: cannot read a PaddlePaddle checkpoint: "
        "not a readable .pdparams: truncated or corrupt pickle ("
    )


def test_the_cli_refuses_a_payload_with_status_2_and_no_traceback(spec, ref, graph, tmp_path):
    marker = tmp_path / "MARKER"
    state = to_native(ref, graph, BACKENDS["paddle"])
    stealth = Reduce(eval, f"({touch_code(marker)}, __import__('numpy').zeros(2, 'float32'))[1]")
    src = tmp_path / "evil.pdparams"
    src.write_bytes(pickle.dumps({**state, "fc.bias": stealth}, protocol=4))
    proc = cli(
        "convert",
        str(spec),
        "--from",
        "paddle",
        "evil.pdparams",
        "--to",
        "torch",
        "out.pt",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "evil.pdparams: error: cannot read a PaddlePaddle checkpoint: "
        "refused to load `builtins.eval`: a .pdparams holds only arrays\n"
    )
    assert proc.stdout == ""
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pdparams"]


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
def test_a_pt_payload_is_refused_by_the_weights_only_unpickler(graph, pool, made, tmp_path, kind):
    marker = made / "MARKER"  # the zip one was made by TORCH, pointing there
    if kind == "raw pickle":
        marker = tmp_path / "MARKER"
        src = tmp_path / "evil.pt"
        payload = {"conv.weight": Reduce(os.system, f"touch {marker}")}
        src.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        src = made / "evil_zip.pt"
    message = refused(graph, pool, "torch", src, "paddle", tmp_path / "out.pdparams")
    assert message.startswith(
        f"{src}: error: cannot read a PyTorch checkpoint: "
        "refused by PyTorch's weights-only unpickler: "
    )
    assert "posix.system" in message
    assert "\n" not in message
    assert not marker.exists()


def test_a_ckpt_is_never_unpickled(graph, pool, tmp_path):
    marker = tmp_path / "MARKER"
    src = tmp_path / "evil.ckpt"
    src.write_bytes(pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2))
    message = refused(graph, pool, "mindspore", src, "torch", tmp_path / "out.pt")
    assert message.startswith(f"{src}: error: cannot read a MindSpore checkpoint: not a MindSpore")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["plain.pdparams", "p2.pdparams"])
@pytest.mark.parametrize("target", FRAMEWORKS)
def test_a_real_pdparams_still_converts_exactly(graph, pool, ref, made, tmp_path, name, target):
    dst = tmp_path / f"out{SUFFIX[target]}"
    result = run(graph, pool, "paddle", made / name, target, dst)
    assert (result.count, result.notes) == (8, [])
    assert_same(read_back(graph, pool, target, dst), ref)


@pytest.mark.parametrize("source", ["torch", "mindspore"])
def test_real_checkpoints_of_the_other_frameworks_convert_exactly(
    graph, pool, ref, made, tmp_path, source
):
    dst = tmp_path / "out.pdparams"
    result = run(graph, pool, source, made / f"plain{SUFFIX[source]}", "paddle", dst)
    assert (result.count, result.notes) == (8, [])
    assert_same(read_back(graph, pool, "paddle", dst), ref)


# -- 2. temporary files --------------------------------------------------------------------------


def plausible_names(dst: Path) -> list[str]:
    name, stem, suffix = dst.name, dst.stem, dst.suffix
    return sorted(
        {
            f".{stem}.archspec-tmp{suffix}",  # the old fixed name
            f".{name}.archspec-tmp",
            f".{stem}.archspec-tmp{suffix}.ckpt",
            f"{name}.ckpt",
            f"{stem}.ckpt",
            f"{stem}.tmp",
            f"{name}.tmp",
            f".{name}.tmp",
            f"{name}~",
            f".{name}.swp",
            f"{name}.part",
            f"checkpoint{suffix}",
            "checkpoint.ckpt",
            "checkpoint.tmp",
            "target.npz",
        }
        - {name}
    )


@pytest.mark.parametrize(
    ("target", "dst_name"),
    [
        ("torch", "out.pt"),
        ("paddle", "out.pdparams"),
        ("mindspore", "out.ckpt"),
        ("mindspore", "out.bin"),
    ],
)
def test_planted_links_are_never_written_through(
    graph, pool, ref, made, tmp_path, target, dst_name
):
    victims, out = tmp_path / "victims", tmp_path / "out"
    victims.mkdir()
    out.mkdir()
    dst = out / dst_name
    links = {}
    for i, name in enumerate(plausible_names(dst)):
        victim = victims / f"victim{i}"
        victim.write_bytes(f"precious {i}".encode())
        (out / name).symlink_to(victim)
        links[name] = victim
    run(graph, pool, "torch", made / "plain.pt", target, dst)
    for i, (name, victim) in enumerate(links.items()):
        assert victim.read_bytes() == f"precious {i}".encode(), name
        assert (out / name).is_symlink() and (out / name).readlink() == victim
    assert stat.S_ISREG(os.lstat(dst).st_mode)
    assert sorted(p.name for p in out.iterdir()) == sorted([*links, dst_name])
    assert_same(read_back(graph, pool, target, dst), ref)


def test_a_link_at_the_destination_is_replaced_not_followed(graph, pool, made, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    dst = tmp_path / "out.pt"
    dst.symlink_to(victim)
    run(graph, pool, "torch", made / "plain.pt", "torch", dst)
    assert victim.read_bytes() == b"precious"
    assert not dst.is_symlink() and dst.is_file()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_written_file_has_an_ordinary_mode(graph, pool, made, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        for target in FRAMEWORKS:  # MindSpore itself makes its files read-only (0400)
            dst = tmp_path / f"out{SUFFIX[target]}"
            run(graph, pool, "torch", made / "plain.pt", target, dst)
            assert stat.S_IMODE(os.stat(dst).st_mode) == mode, target
    finally:
        os.umask(old)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_failure_while_writing_leaves_nothing_and_keeps_the_old_file(
    graph, pool, made, tmp_path, monkeypatch, failure
):
    import archspec.convert

    def fail(*args):
        raise failure("interrupted")

    dst = tmp_path / "out.ckpt"
    dst.write_bytes(b"old checkpoint")
    monkeypatch.setattr(archspec.convert, "_finish", fail)
    with pytest.raises(failure):
        run(graph, pool, "torch", made / "plain.pt", "mindspore", dst)
    assert dst.read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ckpt"]


def test_a_refused_checkpoint_leaves_nothing(graph, pool, made, tmp_path):
    dst = tmp_path / "sub" / "out.pt"
    refused(graph, pool, "torch", made / "b_int32.pt", "torch", dst)
    assert list(tmp_path.iterdir()) == []


# -- 3. MindSpore writes exactly the name asked for ---------------------------------------------


def test_to_mindspore_writes_exactly_the_requested_name(spec, graph, pool, ref, made, tmp_path):
    shutil.copy(made / "plain.pt", tmp_path / "in.pt")
    proc = cli(
        "convert",
        str(spec),
        "--from",
        "torch",
        "in.pt",
        "--to",
        "mindspore",
        "out.bin",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wrote out.bin: 8 tensors, PyTorch -> MindSpore\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pt", "out.bin"]
    assert_same(read_back(graph, pool, "mindspore", tmp_path / "out.bin"), ref)
    # and MindSpore's own loader reads it (it insists on the .ckpt suffix)
    shutil.copy(tmp_path / "out.bin", tmp_path / "copy.ckpt")
    code = (
        "import mindspore as ms, sys\n"
        "p = ms.load_checkpoint(sys.argv[1])\n"
        "print(' '.join(sorted(p)))\n"
    )
    names = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "copy.ckpt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert names == sorted(to_native(ref, graph, BACKENDS["mindspore"]))


# -- 4. wrong dtypes and sizes -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
@pytest.mark.parametrize("source", FRAMEWORKS)
def test_other_precisions_become_float32_and_are_reported(
    graph, pool, ref, made, tmp_path, source, dtype
):
    dst = tmp_path / "out.pt"
    result = run(graph, pool, source, made / f"d_{dtype}{SUFFIX[source]}", "torch", dst)
    assert result.notes == [f"converted 8 tensors from {dtype} to float32"]
    assert_same(read_back(graph, pool, "torch", dst), ref)


@pytest.mark.parametrize(
    ("source", "name", "problem"),
    [
        ("torch", "b_int32.pt", "conv.weight: expected floating point, got int32"),
        ("torch", "b_bool.pt", "bn.weight: expected floating point, got bool"),
        ("torch", "b_complex64.pt", "fc.weight: expected floating point, got complex64"),
        ("torch", "b_overflow.pt", "fc.bias: float64 values beyond float32's range"),
        ("mindspore", "b_int32.ckpt", "conv.weight: expected floating point, got int32"),
        ("mindspore", "b_bool.ckpt", "bn.gamma: expected floating point, got bool"),
    ],
)
def test_non_floating_weights_are_refused(graph, pool, made, tmp_path, source, name, problem):
    src = made / name
    message = refused(graph, pool, source, src, "paddle", tmp_path / "out.pdparams")
    assert message == f"{src}: error: checkpoint does not fit the spec: wrong dtype: {problem}"


def test_non_floating_pdparams_weights_are_refused(graph, pool, ref, tmp_path):
    state = to_native(ref, graph, BACKENDS["paddle"])
    for dtype in ("int64", "int8", "bool", "complex128"):
        src = tmp_path / "bad.pdparams"
        src.write_bytes(pickle.dumps({**state, "conv.bias": state["conv.bias"].astype(dtype)}))
        message = refused(graph, pool, "paddle", src, "torch", tmp_path / "out.pt")
        assert message == (
            f"{src}: error: checkpoint does not fit the spec: "
            f"wrong dtype: conv.bias: expected floating point, got {dtype}"
        )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("short.ckpt", "`conv.weight` declares 4x3x3x3 Float32 (432 bytes) but holds 428 bytes"),
        ("long.ckpt", "`fc.bias` declares 2 Float32 (8 bytes) but holds 12 bytes"),
    ],
)
def test_mindspore_data_must_match_its_shape(graph, pool, made, tmp_path, name, problem):
    src = made / name
    message = refused(graph, pool, "mindspore", src, "torch", tmp_path / "out.pt")
    assert message == f"{src}: error: cannot read a MindSpore checkpoint: {problem}"


def test_a_crc_checked_mindspore_checkpoint_converts(graph, pool, ref, made, tmp_path):
    dst = tmp_path / "out.pt"
    assert run(graph, pool, "mindspore", made / "crc.ckpt", "torch", dst).notes == []
    assert_same(read_back(graph, pool, "torch", dst), ref)


def test_num_batches_tracked_stays_an_int64_buffer(graph, pool, made, tmp_path):
    dst = tmp_path / "out.pt"
    run(graph, pool, "torch", made / "plain.pt", "torch", dst)
    tree = _read(pool, BACKENDS["torch"], dst)
    assert tree["bn.num_batches_tracked"].array.dtype == np.int64


# -- 5. training scripts' wrappers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "notes"),
    [
        ("w_state_dict.pt", ["unwrapped `state_dict`"]),
        ("w_model.pt", ["unwrapped `model` (ignored `epoch`, `optimizer`)"]),
        (
            "w_model_state_dict.pt",
            [
                "unwrapped `model_state_dict` (ignored `epoch`, `scheduler`)",
                "removed prefix `module.`",
            ],
        ),
        ("w_module.pt", ["removed prefix `module.`"]),
        ("w_compiled.pt", ["removed prefix `_orig_mod.module.`"]),
        ("w_nested.pt", ["unwrapped `model/state_dict`"]),
        ("w_extras.pt", ["ignored what is not the network's weights: `epoch`, `arch`, `best_acc`"]),
        ("w_grad.pt", []),
        ("w_model.pdparams", ["unwrapped `model` (ignored `epoch`)"]),
        ("w_model_p2.pdparams", ["unwrapped `model` (ignored `epoch`)"]),
        (
            "w_train.ckpt",
            [
                "ignored what is not the network's weights: `learning_rate`, `global_step`, "
                "`epoch_num`, `step_num`, `moments.*`"
            ],
        ),
    ],
)
def test_wrappers_and_prefixes_are_removed_and_reported(
    graph, pool, ref, made, tmp_path, name, notes
):
    source = {".pt": "torch", ".pdparams": "paddle", ".ckpt": "mindspore"}[Path(name).suffix]
    dst = tmp_path / "out.pdparams"
    result = run(graph, pool, source, made / name, "paddle", dst)
    assert (result.count, result.notes) == (8, notes)
    assert_same(read_back(graph, pool, "paddle", dst), ref)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("e_list.pt", "expected a state dict (names mapped to tensors), found a list"),
        ("e_tensor.pt", "expected a state dict (names mapped to tensors), found a tensor"),
        (
            "e_int_entry.pt",
            "checkpoint entries that must be tensors are not: `conv.weight` is an integer",
        ),
        ("e_none.pt", "checkpoint entries that must be tensors are not: `fc.bias` is None"),
    ],
)
def test_what_is_not_a_state_dict_is_a_located_error(graph, pool, made, tmp_path, name, problem):
    src = made / name
    message = refused(graph, pool, "torch", src, "paddle", tmp_path / "out.pdparams")
    assert message == f"{src}: error: {problem}"


def test_the_cli_reports_what_it_unwrapped(spec, made, tmp_path):
    shutil.copy(made / "w_model_state_dict.pt", tmp_path / "train.pt")
    proc = cli(
        "convert",
        str(spec),
        "--from",
        "torch",
        "train.pt",
        "--to",
        "paddle",
        "out.pdparams",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "train.pt: note: unwrapped `model_state_dict` (ignored `epoch`, `scheduler`)\n"
        "train.pt: note: removed prefix `module.`\n"
        "wrote out.pdparams: 8 tensors, PyTorch -> PaddlePaddle\n"
    )


# -- 6. user mistakes ----------------------------------------------------------------------------


@pytest.fixture
def place(spec, made, tmp_path) -> Path:
    """A working folder with the spec and a real checkpoint in it."""
    shutil.copy(spec, tmp_path / "tiny.yaml")
    shutil.copy(made / "plain.pt", tmp_path / "in.pt")
    return tmp_path


def user_error(place: Path, *args: str, timeout: float = 60) -> str:
    proc = cli("convert", "tiny.yaml", *args, cwd=place, timeout=timeout)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.stdout == ""
    return proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "torch,paddle", "in.pt", "--to", "paddle", "o.pdparams"],
            "--from: error: a checkpoint belongs to one framework, got `torch,paddle` "
            "(one of torch, paddle, mindspore)",
        ),
        (
            ["--from", "all", "in.pt", "--to", "paddle", "o.pdparams"],
            "--from: error: a checkpoint belongs to one framework, got `all` "
            "(one of torch, paddle, mindspore)",
        ),
        (
            ["--from", "torch", "in.pt", "--to", "all", "o.pdparams"],
            "--to: error: a checkpoint belongs to one framework, got `all` "
            "(one of torch, paddle, mindspore)",
        ),
        (
            ["--from", "torch", "in.pt", "--to", "paddle,mindspore", "o.pdparams"],
            "--to: error: a checkpoint belongs to one framework, got `paddle,mindspore` "
            "(one of torch, paddle, mindspore)",
        ),
        (
            ["--from", "pytorch", "in.pt", "--to", "paddle", "o.pdparams"],
            "--from: error: unknown framework `pytorch` (did you mean `torch`?)",
        ),
        (
            ["--from", "torch", "missing.pt", "--to", "paddle", "o.pdparams"],
            "missing.pt: error: checkpoint not found",
        ),
    ],
)
def test_framework_and_path_mistakes(place, args, message):
    assert user_error(place, *args) == message + "\n"
    assert sorted(p.name for p in place.iterdir()) == ["in.pt", "tiny.yaml"]


def test_the_source_must_be_a_regular_nonempty_file(place):
    (place / "folder.pt").mkdir()
    os.mkfifo(place / "fifo.pt")
    (place / "empty.pt").touch()
    cases = {
        "folder.pt": "folder.pt: error: is a folder, not a checkpoint file",
        "fifo.pt": "fifo.pt: error: is not a regular file (a FIFO), not a checkpoint",
        "empty.pt": "empty.pt: error: the checkpoint is empty",
    }
    for src, message in cases.items():
        assert (
            user_error(place, "--from", "torch", src, "--to", "paddle", "o.pdparams", timeout=30)
            == message + "\n"
        )
    assert not (place / "o.pdparams").exists()


def test_the_source_opened_by_a_worker_never_blocks(tmp_path):
    """Even a FIFO swapped in after archspec's check cannot make the worker hang."""
    from archspec.checkpoint import CheckpointError, open_regular

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(CheckpointError, match=r"^not a regular file \(a FIFO\)$"):
        open_regular(str(tmp_path / "fifo"))
    with pytest.raises(CheckpointError, match=r"^not a regular file \(a folder\)$"):
        open_regular(str(tmp_path))


def test_the_destination_must_be_writable_as_a_file(place):
    (place / "afile").write_text("x")
    (place / "adir").mkdir()
    os.mkfifo(place / "fifo.pdparams")
    cases = {
        "afile/o.pdparams": "afile/o.pdparams: error: cannot write here: `afile` is not a folder",
        "afile/deeper/o.pdparams": (
            "afile/deeper/o.pdparams: error: cannot write here: `afile` is not a folder"
        ),
        "adir": "adir: error: is a folder: name the checkpoint file to write",
        "fifo.pdparams": "fifo.pdparams: error: is not a regular file (a FIFO): not replaced",
    }
    for dst, message in cases.items():
        assert user_error(place, "--from", "torch", "in.pt", "--to", "paddle", dst) == (
            message + "\n"
        )
    assert (place / "afile").read_text() == "x"
    assert list((place / "adir").iterdir()) == []


def test_a_destination_folder_that_cannot_be_written(made):
    """Run as an unprivileged user (root writes anywhere): a located error, nothing written."""
    prefix = ()
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to drop root")
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        probe = subprocess.run(
            [*prefix, sys.executable, "-m", "archspec.cli", "--version"],
            cwd=tempfile.gettempdir(),
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:  # CI's virtual environment lives in a private folder
            pytest.skip("the unprivileged user cannot run this Python")
    place = Path(tempfile.mkdtemp(prefix="archspec-ro-"))
    try:
        place.chmod(0o755)
        (place / "tiny.yaml").write_text(SPEC)
        shutil.copy(made / "plain.pt", place / "in.pt")
        (place / "in.pt").chmod(0o644)
        (place / "ro").mkdir(mode=0o555)
        (place / "ro").chmod(0o555)
        proc = cli(
            "convert",
            "tiny.yaml",
            "--from",
            "torch",
            "in.pt",
            "--to",
            "paddle",
            "ro/o.pdparams",
            cwd=place,
            prefix=prefix,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (
            "ro/o.pdparams: error: cannot write here: folder `ro` is not writable\n"
        )
        assert list((place / "ro").iterdir()) == []
    finally:
        shutil.rmtree(place)


def test_an_unwritable_destination_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """The same refusal without dropping root: the folder reports itself unwritable."""
    from archspec import convert

    (tmp_path / "ro").mkdir()
    real = os.access

    def access(path, mode):
        if Path(path) == tmp_path / "ro" and mode & os.W_OK:
            return False
        return real(path, mode)

    monkeypatch.setattr(convert.os, "access", access)
    with pytest.raises(SpecError) as info:
        convert.check_destination(tmp_path / "ro" / "o.pdparams")
    assert str(info.value) == (
        f"{tmp_path / 'ro' / 'o.pdparams'}: error: cannot write here: folder "
        f"`{tmp_path / 'ro'}` is not writable"
    )


def test_a_folder_refusing_the_private_folder_is_a_located_error(
    graph, pool, made, tmp_path, monkeypatch
):
    """Writability can change after the check (or lie, as for root): still a located error."""

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    dst = tmp_path / "out.pt"
    message = refused(graph, pool, "torch", made / "plain.pt", "torch", dst)
    assert message == f"{dst}: error: cannot write here: Permission denied"
    assert list(tmp_path.iterdir()) == []
