"""Nightly fuzzing: thousands of random specs through all backends; prints the tally.

    python scripts/fuzz.py --examples 2000 [--seed 1]                # chains of ops
    python scripts/fuzz.py --structures --examples 2000 [--seed 1]   # language structure

Each example is compiled, emitted for every backend and checked numerically
(`archspec check`'s comparison). `--structures` draws specs from every construct of
the language (tests/structure_specs.py) and builds them with random network-parameter
overrides. Failing specs are written to fuzz-failures/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz_specs import specs  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from test_fuzz import run_example  # noqa: E402
from test_structures import run_structure, structures  # noqa: E402


def chains(tally: dict, failures: Path):
    """The op-chain explorer: one YAML text per example."""

    @given(specs())
    def explore(text: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_example(text, Path(tmp))
        record(tally, failures, result, {"fuzz.yaml": text})

    return explore


def structure(tally: dict, failures: Path):
    """The structure explorer: spec files and overrides per example."""

    @given(structures())
    def explore(example) -> None:
        files, overrides = example
        with tempfile.TemporaryDirectory() as tmp:
            result = run_structure(files, overrides, Path(tmp))
        record(tally, failures, result, files, overrides)

    return explore


def record(tally: dict, failures: Path, result: str, files: dict, overrides=None) -> None:
    """Count one result; keep the files of a failure."""
    key = result if result in tally else "failed"
    tally[key] += 1
    if key == "failed":
        folder = failures / f"{sum(tally.values()):05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        (folder / "result.txt").write_text(f"overrides: {overrides}\n{result}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--structures", action="store_true", help="Draw language structure.")
    args = parser.parse_args()
    tally = {"ok": 0, "refused": 0, "failed": 0}
    failures = ROOT / "fuzz-failures"
    start = time.perf_counter()
    explorer = (structure if args.structures else chains)(tally, failures)
    configured = settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    seed(args.seed)(configured(explorer))()
    tried = sum(tally.values())
    print(
        f"tried {tried} specs in {time.perf_counter() - start:.0f} s: {tally['ok']} agree, "
        f"{tally['refused']} refused with a located error, {tally['failed']} failed"
    )
    sys.exit(1 if tally["failed"] else 0)


if __name__ == "__main__":
    main()
