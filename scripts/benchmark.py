"""Time the front end in one process, and `archspec build` as a whole command.

    python scripts/benchmark.py                       # both parts
    python scripts/benchmark.py --runs 20 --spec specs/resnet50.yaml
    python scripts/benchmark.py --runs 0              # the front end only

The front end (load, validate, bind and analyse every bundled spec in one process) has a
target (issue 3) of under 0.5 s for all bundled specs together, first run included.

A cold build is one whole `python -m archspec build SPEC --backend B` process, interpreter
start and imports included, as a user runs it; its target is under 0.3 s per backend
(the median of --runs runs, each into a fresh folder).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
from archspec.analysis import summarize  # noqa: E402
from archspec.compiler import compile_spec  # noqa: E402

IMPORTED = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent


def front_end() -> None:
    specs = sorted((ROOT / "specs").glob("*.yaml"))
    total = 0.0
    for path in specs:
        t0 = time.perf_counter()
        s = summarize(compile_spec(path))
        dt = time.perf_counter() - t0
        total += dt
        print(
            f"{path.name:24} {len(s.layers):4d} ops {s.trainable:>12,} params  {dt * 1000:7.1f} ms"
        )
    print(f"{'all specs':24} {total * 1000:.1f} ms (compile + analyse, one process)")
    print(f"{'imports':24} {(IMPORTED - START) * 1000:.1f} ms")
    loaded = sorted(m for m in ("torch", "paddle", "mindspore") if m in sys.modules)
    print(f"frameworks imported: {loaded}")


def cold_build(spec: Path, backend: str, out: Path) -> float:
    """Wall time of one whole `archspec build` process."""
    command = [sys.executable, "-m", "archspec", "build", str(spec), "--backend", backend]
    t0 = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def cold_builds(spec: Path, runs: int) -> None:
    from archspec.backend import folders

    print(f"\ncold `archspec build {spec.name}`, {runs} runs per backend:")
    if sys.flags.dont_write_bytecode:  # inherited by the runs from PYTHONDONTWRITEBYTECODE
        print("(no bytecode cache: every run compiles archspec's modules from source)")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in folders():
            times = [cold_build(spec, backend, Path(tmp, f"{backend}{i}")) for i in range(runs)]
            print(
                f"{backend:24} median {statistics.median(times) * 1000:6.0f} ms"
                f"  (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "resnet50.yaml")
    parser.add_argument("--runs", type=int, default=10, help="cold builds per backend (0: none)")
    args = parser.parse_args()
    front_end()
    if args.runs > 0:
        cold_builds(args.spec, args.runs)


if __name__ == "__main__":
    main()
