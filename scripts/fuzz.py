"""Nightly fuzzing: thousands of random specs through all backends; prints the tally.

    python scripts/fuzz.py --examples 2000 [--seed 1]

Each example is compiled, emitted for every backend and checked numerically
(`archspec check`'s comparison). Failing specs are written to fuzz-failures/.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tally = {"ok": 0, "refused": 0, "failed": 0}
    failures = ROOT / "fuzz-failures"
    start = time.perf_counter()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(specs())
    def explore(text: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_example(text, Path(tmp))
        key = result if result in tally else "failed"
        tally[key] += 1
        if key == "failed":
            failures.mkdir(exist_ok=True)
            (failures / f"{sum(tally.values()):05d}.yaml").write_text(text + "\n# " + result)

    explore()
    tried = sum(tally.values())
    print(
        f"tried {tried} specs in {time.perf_counter() - start:.0f} s: {tally['ok']} agree, "
        f"{tally['refused']} refused with a located error, {tally['failed']} failed"
    )
    sys.exit(1 if tally["failed"] else 0)


if __name__ == "__main__":
    main()
