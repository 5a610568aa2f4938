"""A worker process serving one backend's runtime over JSON lines.

    python -m archspec.worker BACKEND_DIR

Each framework runs in its own worker, so no process ever imports two of them (importing
paddle before mindspore breaks MindSpore). Requests and replies are single JSON lines;
arrays travel as .npz files. The worker moves the process's own stdout to stderr first,
so that frameworks printing to stdout cannot corrupt the replies.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """The state of one worker: its runtime and the network it holds."""

    def __init__(self, backend_dir: Path):
        self.runtime = _load(backend_dir / "runtime.py", "archspec_runtime")
        self.net = None
        self.count = 0

    def build(self, file: str, cls: str, kwargs: dict, seed: int) -> dict:
        """Import a generated module from a file and instantiate its network."""
        self.count += 1
        module = _load(Path(file), f"archspec_generated_{self.count}")
        self.runtime.seed(seed)
        self.net = getattr(module, cls)(**kwargs)
        return {"trainable": self.runtime.trainable(self.net)}

    def export(self, path: str) -> dict:
        """Write the network's tensors (native names) to an .npz file."""
        _save(path, self.runtime.tensors(self.net))
        return {}

    def load(self, path: str) -> dict:
        """Load native tensors from an .npz file into the network."""
        self.runtime.load(self.net, _read(path))
        return {}

    def run(self, inputs: str, out: str, precision: str = "float32") -> dict:
        """Forward (eval, train) and backward on the arrays `x` and `probe`."""
        data = _read(inputs)
        if precision == "float32":
            result = self.runtime.run(self.net, data["x"], data["probe"])
        else:  # optional: a runtime without run_float64 cannot measure float32 noise
            result = self.runtime.run_float64(self.net, data["x"], data["probe"])
        _save(out, result)
        return {}

    def read_checkpoint(self, path: str, out: str) -> dict:
        """A framework checkpoint -> native arrays in an .npz file."""
        _save(out, self.runtime.read_checkpoint(path))
        return {}

    def write_checkpoint(self, arrays: str, path: str) -> dict:
        """Native arrays in an .npz file -> a framework checkpoint."""
        self.runtime.write_checkpoint(path, _read(arrays))
        return {}


def _save(path: str, arrays: dict) -> None:
    import numpy as np

    np.savez(path, **arrays)


def _read(path: str) -> dict:
    import numpy as np

    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def main() -> None:
    """Serve requests until stdin closes."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the frameworks print goes to stderr
    sys.stdout = sys.stderr
    try:
        server = Server(Path(sys.argv[1]))
        replies.write(json.dumps({"ok": True}) + "\n")
    except Exception:
        replies.write(json.dumps({"ok": False, "error": traceback.format_exc()}) + "\n")
        return
    finally:
        replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = getattr(server, request.pop("op"))(**request)
            reply = {"ok": True, **result}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
