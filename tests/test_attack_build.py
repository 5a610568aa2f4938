"""Attacks on what archspec writes and what its workers import.

- Workers never import from the user's folder: modules planted there (`numpy.py`,
  `torch.py`, `yaml.py`, `sitecustomize.py`, ...) never run, however archspec is started.
- `build` writes nothing outside `--out`, follows no link, replaces nothing it did not
  write, refuses module-name collisions and unusable stems, and is a transaction: an
  error or an interrupt (SIGINT, SIGTERM) leaves `--out` exactly as it was, with no
  temporary file; a killed build's temporaries are removed by the next build.
- User text printed through rich is never read as markup.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HEAD, clean

ROOT = Path(__file__).resolve().parent.parent
ARCHSPEC = str(Path(sys.executable).parent / "archspec")  # the command users run

SMALL = HEAD + clean(
    """
    nodes:
      - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1}
      - {name: bn, op: batchnorm2d}
      - {name: relu, op: relu}
    """
)


def archspec(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600):
    """Run the installed `archspec` command in `cwd`."""
    return subprocess.run(
        [ARCHSPEC, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (links as their target text), by relative path."""
    files = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            files[key] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            files[key] = path.read_bytes()
    return files


# -- workers never import the user's files ---------------------------------------------------

PLANTED = ["numpy", "torch", "paddle", "mindspore", "yaml", "json", "sitecustomize", "archspec"]


def plant(folder: Path, marker: Path) -> None:
    """Modules that leave a marker when imported, under names a worker would import."""
    payload = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for name in PLANTED:
        if name == "archspec":
            (folder / name).mkdir(exist_ok=True)
            (folder / name / "__init__.py").write_text(payload)
            (folder / name / "worker.py").write_text(payload)
        else:
            (folder / f"{name}.py").write_text(payload)


@pytest.mark.parametrize("where", ["cwd", "spec-folder", "both"])
def test_check_workers_never_import_planted_modules(tmp_path, where):
    """The `archspec` command in a folder full of traps: the workers import none of them.

    (A PYTHONPATH that names the folder is the user's own setting and reaches every Python
    process they start, archspec's included: out of scope.)
    """
    marker = tmp_path / "ran.txt"
    cwd, spec_dir = tmp_path / "cwd", tmp_path / "specs"
    cwd.mkdir()
    spec_dir.mkdir()
    for folder in {"cwd": [cwd], "spec-folder": [spec_dir], "both": [cwd, spec_dir]}[where]:
        plant(folder, marker)
    (spec_dir / "net.yaml").write_text(SMALL)
    result = archspec("check", str(spec_dir / "net.yaml"), "--backends", "torch,paddle", cwd=cwd)
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stderr
    assert "agree" in result.stdout


def test_convert_workers_never_import_planted_modules(tmp_path):
    import torch

    marker = tmp_path / "ran.txt"
    (tmp_path / "net.yaml").write_text(SMALL)
    state = {
        "conv.weight": torch.ones(4, 3, 3, 3),
        "conv.bias": torch.zeros(4),
        "bn.weight": torch.ones(4),
        "bn.bias": torch.zeros(4),
        "bn.running_mean": torch.zeros(4),
        "bn.running_var": torch.ones(4),
        "bn.num_batches_tracked": torch.tensor(0),
    }
    torch.save(state, tmp_path / "in.pt")
    plant(tmp_path, marker)
    result = archspec(
        "convert", "net.yaml", "--from", "torch", "in.pt", "--to", "paddle", "out.pdparams",
        cwd=tmp_path,
    )  # fmt: skip
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.pdparams").is_file()


# -- build writes only inside --out ------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    (tmp_path / "net.yaml").write_text(SMALL)
    return tmp_path


def test_hand_written_package_init_is_kept(project):
    out = project / "out"
    (out / "torch").mkdir(parents=True)
    (out / "__init__.py").write_text("VERSION = 3  # mine\n")
    (out / "torch" / "__init__.py").write_text("from .helpers import *  # mine\n")
    result = archspec("build", "net.yaml", "--backend", "torch", "--out", "out", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (out / "__init__.py").read_text() == "VERSION = 3  # mine\n"
    assert (out / "torch" / "__init__.py").read_text() == "from .helpers import *  # mine\n"
    assert (out / "torch" / "net.py").read_text().startswith("# Generated by archspec")


@pytest.mark.parametrize("link", ["backend-folder", "module-file", "out-parent-file"])
def test_links_and_files_in_the_way_are_refused(project, link):
    victim = project / "victim"
    victim.mkdir()
    (victim / "__init__.py").write_text("precious = True\n")
    (victim / "net.py").write_text("precious = True\n")
    before = snapshot(victim)
    out = project / "out"
    if link == "backend-folder":
        out.mkdir()
        (out / "torch").symlink_to(victim, target_is_directory=True)
        expected = "out/torch: error: is a link or not a folder; archspec writes only inside --out"
    elif link == "module-file":
        (out / "torch").mkdir(parents=True)
        (out / "torch" / "net.py").symlink_to(victim / "net.py")
        expected = "out/torch/net.py: error: not a regular file; archspec does not write through it"
    else:
        (project / "afile").write_text("x")
        out = project / "afile" / "out"
        expected = "afile: error: is not a folder (--out)"
    result = archspec(
        "build",
        "net.yaml",
        "--backend",
        "torch",
        "--out",
        str(out.relative_to(project)),
        cwd=project,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr
    assert snapshot(victim) == before


def test_module_not_written_by_archspec_is_not_replaced(project):
    out = project / "out"
    (out / "torch").mkdir(parents=True)
    (out / "torch" / "net.py").write_text("import torch  # my own model\n")
    result = archspec("build", "net.yaml", "--backend", "all", "--out", "out", cwd=project)
    assert result.returncode == 2
    assert "out/torch/net.py: error: file was not written by archspec" in result.stderr
    assert (out / "torch" / "net.py").read_text() == "import torch  # my own model\n"
    assert not (out / "paddle").exists()  # nothing of the refused build was written
    forced = archspec(
        "build", "net.yaml", "--backend", "torch", "--out", "out", "--force", cwd=project
    )
    assert forced.returncode == 0, forced.stderr
    assert (out / "torch" / "net.py").read_text().startswith("# Generated by archspec")


def test_generated_files_are_readable_by_everyone(project):
    result = archspec("build", "net.yaml", "--backend", "all", "--out", "out", cwd=project)
    assert result.returncode == 0, result.stderr
    modes = {
        str(p.relative_to(project)): p.stat().st_mode & 0o777
        for p in (project / "out").rglob("*.py")
    }
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes
    assert len(modes) == 7


def test_same_stem_twice_is_refused(project):
    (project / "a").mkdir()
    (project / "b").mkdir()
    (project / "a" / "x.yaml").write_text(SMALL)
    (project / "b" / "x.yaml").write_text(SMALL.replace("out: 4", "out: 5"))
    result = archspec(
        "build", "a/x.yaml", "b/x.yaml", "--backend", "torch", "--out", "out", cwd=project
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "b/x.yaml: error: `a/x.yaml` is built into the same module `x.py`; rename one of them"
    )
    assert not (project / "out").exists()


@pytest.mark.parametrize(
    ("stem", "message"),
    [
        ("__init__", "spec file name `__init__` would make a special module (`__init__.py`); "
                     "rename it"),
        ("__main__", "spec file name `__main__` would make a special module (`__main__.py`); "
                     "rename it"),
        ("class", "spec file name `class` is not a valid Python module name"),
        ("import", "spec file name `import` is not a valid Python module name"),
        ("my-net", "spec file name `my-net` is not a valid Python module name"),
    ],
)  # fmt: skip
def test_unusable_stems_are_refused(project, stem, message):
    (project / f"{stem}.yaml").write_text(SMALL)
    result = archspec("build", f"{stem}.yaml", "--backend", "torch", "--out", "out", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip() == f"{stem}.yaml: error: {message}"
    assert not (project / "out").exists()


# -- build is a transaction --------------------------------------------------------------------


def test_failure_leaves_out_exactly_as_it_was(project):
    out = project / "out"
    assert (
        archspec("build", "net.yaml", "--backend", "all", "--out", "out", cwd=project).returncode
        == 0
    )
    (project / "second.yaml").write_text(SMALL)
    (out / "mindspore" / "second.py").write_text("# hand-written\n")
    before = snapshot(out)
    (project / "net.yaml").write_text(SMALL.replace("out: 4", "out: 6"))
    result = archspec(
        "build", "net.yaml", "second.yaml", "--backend", "all", "--out", "out", cwd=project
    )
    assert result.returncode == 2
    assert snapshot(out) == before  # net.py was not updated, though it could have been


def test_commit_failure_restores_every_replaced_file(tmp_path, monkeypatch):
    from archspec import build

    out = tmp_path / "out"
    outputs = [build.Output(out / "t" / f"m{k}.py", f"# new {k}\n") for k in range(4)]
    (out / "t").mkdir(parents=True)
    (out / "t" / "m0.py").write_text("# old 0\n")
    (out / "t" / "m2.py").write_text("# old 2\n")
    monkeypatch.setattr(build, "is_hand_edited", lambda text: False)  # replaceable files
    before = snapshot(out)
    real = os.replace
    calls = []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(build.os, "replace", failing)
    with pytest.raises(OSError):
        build.write_all(outputs, force=False, out=out)
    assert snapshot(out) == before


def test_stale_temporaries_of_a_killed_build_are_removed(project):
    out = project / "out"
    assert (
        archspec("build", "net.yaml", "--backend", "torch", "--out", "out", cwd=project).returncode
        == 0
    )
    stale = [out / "torch" / ".archspec-staged-abc123.tmp", out / ".archspec-staged-x.tmp.old"]
    for path in stale:
        path.write_text("half a module")
    result = archspec("build", "net.yaml", "--backend", "torch", "--out", "out", cwd=project)
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in stale)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_build_all_is_all_or_nothing(tmp_path, signum):
    """Interrupt `build --all` at several moments: the folder is the old one or the new one."""
    out = tmp_path / "out"
    old = archspec("build", "--all", "--out", str(out), "--set", "num_classes=7", cwd=ROOT)
    assert old.returncode == 0, old.stderr
    before = snapshot(out)
    new_dir = tmp_path / "new"
    assert archspec("build", "--all", "--out", str(new_dir), cwd=ROOT).returncode == 0
    after = snapshot(new_dir)
    seen = set()
    for delay in (0.3, 0.8, 1.2, 1.6, 2.0, 2.5):
        proc = subprocess.Popen(
            [ARCHSPEC, "build", "--all", "--out", str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        proc.send_signal(signum)
        proc.communicate(timeout=120)
        state = snapshot(out)
        assert state in (before, after), f"partial build after {delay} s"
        seen.add("old" if state == before else "new")
        if state == after:  # restore the old state for the next moment
            restore = ["build", "--all", "--out", str(out), "--set", "num_classes=7"]
            assert archspec(*restore, cwd=ROOT).returncode == 0
    assert "old" in seen  # at least one interrupt landed before the commit


# -- text that reaches the terminal ------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["[/x]", "[link=https://example.com]click[/link]", "[bold red]x", "[[/]]"]
)
def test_markup_in_a_spec_prints_as_written(tmp_path, value):
    spec = HEAD + clean(
        f"""
        params: {{tag: {{type: str, default: {value!r}}}}}
        nodes:
          - {{name: conv, op: conv2d, out: 4, kernel: 1}}
        """
    )
    (tmp_path / "net.yaml").write_text(spec)
    result = archspec("summary", "net.yaml", cwd=tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert f"tag={value!r}" in result.stdout
