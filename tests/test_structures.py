"""Random spec structures: whatever `validate` accepts builds and runs in every backend.

For every drawn spec (`structure_specs.py`: blocks calling blocks, `seq` at every depth,
`repeat` and `for_each` at every level, `when` anywhere, `inputs` expressions, tables,
functions, `extends`) that `validate` accepts, `archspec check` must succeed in all three
frameworks: the module builds, imports and instantiates (with the defaults, and with the
network parameters overridden), its trainable parameters, BN statistics and state-dict
keys are the IR's, its forward pass has the IR's output shape, and all three compute the
same function. A spec `validate` refuses must be refused with a located error.

CI runs a bounded, derandomized set; `python scripts/fuzz.py --structures --examples N`
explores more.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from conftest import check_workers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structure_specs import structured_specs

from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.emit import module_view
from archspec.errors import SpecError


def workers():
    return check_workers()


def run_structure(files: dict[str, str], overrides: dict, folder: Path) -> str:
    """`ok`, `refused` (a located error) or a description of what went wrong."""
    for name, text in files.items():
        (folder / name).write_text(text)
    path = folder / "net.yaml"
    try:
        graph = compile_spec(path)
    except SpecError as exc:
        located = all(d.pos.line > 0 and d.pos.file.endswith(".yaml") for d in exc.diagnostics)
        return "refused" if located else f"unlocated error: {exc}"
    for backend in available().values():  # validate accepted it: every backend emits it
        try:
            module_view(graph, backend, [])
        except SpecError as exc:
            return f"validate accepted, {backend.name} refused: {exc}"
    try:
        report = check_spec(path, list(available().values()), workers(), overrides, None, 2)
    except SpecError:  # valid with its defaults, not with these overrides
        return "refused"
    return "ok" if report.ok else repr(report.to_json())


@st.composite
def structures(draw) -> tuple[dict[str, str], dict]:
    """A drawn spec and network-parameter overrides to build it with."""
    files = draw(structured_specs())
    overrides = draw(
        st.sampled_from([{}, {"deep": True}, {"deep": False}, {"width": 2}, {"width": 5}])
    )
    return files, overrides


# derandomized: CI sees the same examples every run; scripts/fuzz.py explores
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(structures())
def test_every_accepted_structure_builds_and_agrees(example):
    files, overrides = example
    with tempfile.TemporaryDirectory() as tmp:
        result = run_structure(files, overrides, Path(tmp))
        assert result in ("ok", "refused"), f"{result}\n" + "\n".join(
            f"--- {name}\n{text}" for name, text in files.items()
        )
