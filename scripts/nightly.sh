#!/usr/bin/env bash
# The nightly job: what CI's time budget leaves out. The tests marked `nightly` (the large
# networks at full size against their references, every variant across the three
# frameworks) and long fuzzing runs. Run from the repository, in the README's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest --nightly -m nightly
python scripts/fuzz.py --examples 2000
python scripts/fuzz.py --structures --examples 2000 --seed 1
