"""Where archspec's own data lives: the bundled backends and specs.

In a checkout (and an editable install) they are the repository's `backends/` and
`specs/`; a wheel carries them as package data under `archspec/_data/`. Nothing else in
archspec needs to know which.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`backends` or `specs`: the installed copy if there is one, else the checkout's."""
    installed = PACKAGE / "_data" / name
    return installed if installed.is_dir() else PACKAGE.parent / name


BACKENDS_DIR = data_dir("backends")
SPECS_DIR = data_dir("specs")


def bundled_name(path: Path) -> str | None:
    """`specs/<name>.yaml` for a bundled spec (the same on every machine), else None."""
    try:
        if path.resolve().parent == SPECS_DIR.resolve():
            return f"specs/{path.name}"
    except OSError:
        return None
    return None
