"""Random specs: static analysis, PyTorch, PaddlePaddle and MindSpore agree.

CI runs a bounded number of examples; `python scripts/fuzz.py --examples 2000` runs
thousands for a nightly job.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from conftest import check_workers
from fuzz_specs import specs
from hypothesis import HealthCheck, given, settings

from archspec.backend import available
from archspec.check import check_spec
from archspec.errors import SpecError


def workers():
    return check_workers()


def run_example(text: str, folder: Path) -> str:
    """`ok`, `refused` (a located error) or a description of the disagreement."""
    path = folder / "fuzz.yaml"
    path.write_text(text)
    try:
        report = check_spec(path, list(available().values()), workers(), {}, None, 2)
    except SpecError as exc:
        assert all(d.pos.file.endswith("fuzz.yaml") and d.pos.line > 0 for d in exc.diagnostics), (
            str(exc)
        )
        return "refused"
    if report.ok:
        return "ok"
    return repr(report.to_json())


# derandomized: CI sees the same examples every run; scripts/fuzz.py explores
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(specs())
def test_backends_agree_on_random_specs(text):
    with tempfile.TemporaryDirectory() as tmp:
        assert run_example(text, Path(tmp)) in ("ok", "refused"), text
