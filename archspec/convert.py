"""`archspec convert`: move a checkpoint between frameworks through the spec's tensor map.

The source framework reads the file in its own worker process, without running anything
the file carries (PyTorch's weights-only unpickler; archspec's restricted unpickler for
Paddle's pickles; MindSpore's protobuf read field by field). archspec finds the state dict
in it (a training script's wrapper and DataParallel's prefix are removed, and said so),
maps names and layouts through the spec, converts other floating-point precisions to
float32 (said so) and refuses what does not fit: missing, unexpected, wrongly shaped or
non-floating-point tensors. The target framework writes the result into a private folder
of unpredictable name, created next to the destination; the file is renamed onto the
destination, so a failure or an interrupt leaves nothing behind and no planted link is
ever followed.

A `.safetensors` file (any framework's names and layouts, chosen by `--from`/`--to`) is
read and written here, in archspec's own process, without a framework and without pickle.
Its metadata records `format` (the framework whose names it holds: a runtime's
`SAFETENSORS_FORMAT`, else the backend's name) and `archspec_spec`; a file recorded for
another framework than `--from` is refused (its names and layouts would be mis-mapped).
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from archspec.backend import Backend, available
from archspec.checkpoint import (
    CheckpointError,
    file_kind,
    is_safetensors,
    open_regular,
    read_safetensors,
    select_state,
    unpack,
    write_safetensors,
)
from archspec.errors import Pos, SpecError, did_you_mean
from archspec.ir import Graph
from archspec.runner import WorkerError, Workers
from archspec.tensors import extras, from_native, tensor_maps, to_native

_ERROR = "archspec.checkpoint.CheckpointError: "


@dataclass
class Converted:
    """What `convert` did: how many tensors it wrote, and what it changed on the way."""

    count: int
    notes: list[str] = field(default_factory=list)


def pick_framework(name: str, option: str) -> Backend:
    """The one framework named by `--from` or `--to`."""
    backends = available()
    name = name.strip()
    if name == "all" or "," in name:
        raise SpecError.at(
            Pos(option),
            f"a checkpoint belongs to one framework, got `{name}`",
            f"one of {', '.join(backends)}",
        )
    if name not in backends:
        raise SpecError.at(Pos(option), f"unknown framework `{name}`", did_you_mean(name, backends))
    return backends[name]


def check_source(src: Path) -> None:
    """The source must be a readable, non-empty regular file (a FIFO is never opened here)."""
    try:
        info = os.stat(src)
    except FileNotFoundError:
        raise SpecError.at(Pos(str(src)), "checkpoint not found") from None
    except OSError as exc:
        raise SpecError.at(Pos(str(src)), f"cannot read the checkpoint: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError.at(Pos(str(src)), "is a folder, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        kind = file_kind(info.st_mode)
        raise SpecError.at(Pos(str(src)), f"is not a regular file ({kind}), not a checkpoint")
    if info.st_size == 0:
        raise SpecError.at(Pos(str(src)), "the checkpoint is empty")
    if not os.access(src, os.R_OK):
        raise SpecError.at(Pos(str(src)), "cannot read the checkpoint: permission denied")


def check_destination(dst: Path) -> None:
    """The destination must be a new or regular file in a folder that can be written."""
    where = Pos(str(dst))
    for folder in (dst.parent, *dst.parent.parents):  # the nearest existing one
        if folder.is_dir():
            if not os.access(folder, os.W_OK | os.X_OK):
                raise SpecError.at(where, f"cannot write here: folder `{folder}` is not writable")
            break
        if folder.exists() or folder.is_symlink():
            raise SpecError.at(where, f"cannot write here: `{folder}` is not a folder")
    if dst.is_dir():
        raise SpecError.at(where, "is a folder: name the checkpoint file to write")
    try:
        mode = os.lstat(dst).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):  # a link is replaced, never followed
        raise SpecError.at(where, f"is not a regular file ({file_kind(mode)}): not replaced")


def convert(
    graph: Graph,
    source: Backend,
    src: Path,
    target: Backend,
    dst: Path,
    workers: Workers | None = None,
) -> Converted:
    """Convert `src` (a `source` checkpoint) into `dst` for `target`.

    `workers` may be a pool to reuse (reading and writing keep no state in a worker).
    """
    check_source(src)
    check_destination(dst)
    with contextlib.ExitStack() as stack:
        if workers is None:
            workers = stack.enter_context(Workers())
        tree, notes = _load(workers, source, src, graph)
        maps = tensor_maps(graph, source)
        known = {m.native for m in maps} | set(extras(graph, source))
        state = select_state(tree, known, str(src))
        canonical = from_native(
            state.arrays, graph, source, str(src), dtypes=state.dtypes, notes=state.notes
        )
        metadata = {"format": safetensors_format(target), "archspec_spec": graph.name}
        _write(workers, target, to_native(canonical, graph, target), dst, metadata)
    return Converted(len(canonical), notes + state.notes)


FORMAT_NAME = "SAFETENSORS_FORMAT"


def safetensors_format(backend: Backend) -> str:
    """The `format` a backend's .safetensors files record in their metadata.

    A runtime may declare it (`SAFETENSORS_FORMAT = "pt"`, the name Hugging Face's files
    use); the runtime's source is parsed for it, never imported. Otherwise the backend's name.
    """
    return _declared_format(backend.folder / "runtime.py") or backend.name


@cache
def _declared_format(runtime: Path) -> str | None:
    try:
        module = ast.parse(runtime.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in module.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == [FORMAT_NAME]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def _reason(exc: WorkerError) -> str:
    lines = str(exc).strip().splitlines() or ["unknown failure"]
    return lines[-1].removeprefix(_ERROR)


def _failed(workers: Workers, backend: Backend) -> None:
    """A worker that died (a framework crashing on a malformed file) is started anew."""
    worker = workers.workers.get(backend.name)
    if worker is not None and worker.proc.poll() is not None:
        workers.restart(backend)


def _load(workers: Workers, source: Backend, src: Path, graph: Graph) -> tuple[dict, list[str]]:
    """A checkpoint's tree, and what its safetensors metadata says that the user should know."""
    if not is_safetensors(src):
        return _read(workers, source, src), []
    tree, metadata = _read_safetensors(source, src)
    return tree, _metadata_notes(metadata, source, graph)


def _read(workers: Workers, source: Backend, src: Path):
    """A checkpoint's tree: a .safetensors read here, any other file by `source`'s worker."""
    if is_safetensors(src):
        return _read_safetensors(source, src)[0]
    native = workers.path("source.npz")
    try:
        workers[source].call("read_checkpoint", path=os.path.abspath(src), out=native)
    except WorkerError as exc:
        _failed(workers, source)
        raise SpecError.at(
            Pos(str(src)),
            f"cannot read a {source.spec.title} checkpoint: {_reason(exc)}",
            _safetensors_hint(src),
        ) from None
    with np.load(native) as data:
        return unpack({k: data[k] for k in data.files})


def _read_safetensors(source: Backend, src: Path) -> tuple[dict, dict[str, str]]:
    """Tensors and metadata of a .safetensors file; refused if written for another framework."""
    where = Pos(str(src))
    try:
        tree, metadata = read_safetensors(os.path.abspath(src))
    except CheckpointError as exc:
        raise SpecError.at(where, str(exc)) from None  # "not a safetensors file: ..."
    recorded = metadata.get("format")
    owner = _format_owners().get(recorded)
    if owner is not None and owner.name != source.name:
        raise SpecError.at(
            where,
            f"holds {owner.spec.title}'s tensor names and layouts (its metadata records "
            f"format `{recorded}`), not {source.spec.title}'s",
            f"read it with --from {owner.name}",
        )
    return tree, metadata


def _format_owners() -> dict[str, Backend]:
    return {safetensors_format(b): b for b in available().values()}


def _metadata_notes(metadata: dict[str, str], source: Backend, graph: Graph) -> list[str]:
    notes = []
    recorded = metadata.get("format")
    if recorded is not None and recorded not in _format_owners():
        notes.append(
            f"its metadata records format `{recorded}`, no framework's here: "
            f"read as {source.spec.title}'s names and layouts"
        )
    spec = metadata.get("archspec_spec")
    if spec is not None and spec != graph.name:
        notes.append(f"written for spec `{spec}`, read with spec `{graph.name}`")
    return notes


def _safetensors_hint(src: Path) -> str | None:
    """A framework could not read the file: is it a .safetensors under another name?"""
    try:
        with open_regular(str(src)) as file:  # never a FIFO swapped in
            head = file.read(9)
            size = os.fstat(file.fileno()).st_size
    except (CheckpointError, OSError):
        return None
    length = int.from_bytes(head[:8], "little")
    if len(head) == 9 and head[8:] == b"{" and 8 + length <= size:
        return "it looks like a safetensors file: name it .safetensors"
    return None


def _write(
    workers: Workers, target: Backend, arrays: dict, dst: Path, metadata: dict[str, str]
) -> None:
    """Write through a private folder next to `dst`, then rename: all or nothing."""
    where = Pos(str(dst))
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        # unpredictable, created exclusively, mode 0700: nothing can be planted inside
        private = tempfile.mkdtemp(
            prefix=f".{dst.name[:80]}.", suffix=".archspec-tmp", dir=dst.parent
        )
    except OSError as exc:
        raise SpecError.at(where, f"cannot write here: {exc.strerror}") from None
    try:
        # the framework sees the destination's suffix (some append their own otherwise)
        staged = Path(private).absolute() / f"checkpoint{dst.suffix}"
        if is_safetensors(dst):
            _write_safetensors(staged, arrays, metadata, where)
        else:
            _write_native(workers, target, arrays, staged, where)
        _finish(staged)
        try:
            os.replace(staged, dst)
        except OSError as exc:
            raise SpecError.at(where, f"cannot write here: {exc.strerror}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _write_native(
    workers: Workers, target: Backend, arrays: dict, staged: Path, where: Pos
) -> None:
    out = workers.path("target.npz")
    np.savez(out, **arrays)
    try:
        workers[target].call("write_checkpoint", arrays=out, path=str(staged))
    except WorkerError as exc:
        _failed(workers, target)
        raise SpecError.at(
            where, f"cannot write a {target.spec.title} checkpoint: {_reason(exc)}"
        ) from None


def _write_safetensors(staged: Path, arrays: dict, metadata: dict[str, str], where: Pos) -> None:
    from safetensors import SafetensorError

    try:
        write_safetensors(str(staged), arrays, metadata)
    except OSError as exc:
        raise SpecError.at(where, f"cannot write here: {exc.strerror}") from None
    except SafetensorError as exc:
        raise SpecError.at(where, f"cannot write a .safetensors checkpoint: {exc}") from None


def _finish(staged: Path) -> None:
    """Give the written file an ordinary file's mode (0666 less the umask) and flush it."""
    umask = os.umask(0)
    os.umask(umask)
    fd = os.open(staged, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fchmod(fd, 0o666 & ~umask)
        os.fsync(fd)
    finally:
        os.close(fd)
