"""Time the front end: load, validate, bind and analyse every bundled spec in one process.

    python scripts/benchmark.py            # prints per-spec and total wall time

The target (issue 3) is under 0.5 s for all bundled specs together, first run included.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

START = time.perf_counter()
from archspec.analysis import summarize  # noqa: E402
from archspec.compiler import compile_spec  # noqa: E402

IMPORTED = time.perf_counter()


def main() -> None:
    specs = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
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


if __name__ == "__main__":
    main()
