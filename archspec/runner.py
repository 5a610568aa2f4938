"""The parent side of workers: one process per backend, spoken to in JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from archspec.backend import Backend


class WorkerError(RuntimeError):
    """A worker failed: its traceback is the message."""


# The worker never imports from the user's folder: it starts in archspec's own private
# temporary folder (so neither `''` nor `.` on the path is the user's folder), in safe-path
# mode where Python has it, and finds archspec itself at the end of its path, after the
# installed packages, so a planted `numpy.py` next to archspec's source cannot win either.
BOOT = "import sys; sys.path.append(sys.argv.pop(2)); from archspec.worker import main; main()"


class Worker:
    """A running archspec worker (`archspec.worker`) for one backend."""

    def __init__(self, backend: Backend, cwd: str, log: Path | None = None):
        self.backend = backend
        self.log = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        safe = ["-P"] if sys.version_info >= (3, 11) else []
        package_root = str(Path(__file__).resolve().parent.parent)
        self.proc = subprocess.Popen(
            [sys.executable, *safe, "-c", BOOT, str(Path(backend.folder).resolve()), package_root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=cwd,
        )
        self._reply()

    def call(self, op: str, **kwargs) -> dict:
        """Send one request and wait for its reply."""
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"{self.backend.name} worker exited (status {self.proc.wait()})")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise WorkerError(reply["error"])
        return reply

    def close(self) -> None:
        """Stop the worker."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


class Workers:
    """Workers started on demand, one per backend, all stopped together."""

    def __init__(self):
        self.workers: dict[str, Worker] = {}
        self.tmp = tempfile.TemporaryDirectory(prefix="archspec-")

    def __getitem__(self, backend: Backend) -> Worker:
        if backend.name not in self.workers:
            self.workers[backend.name] = Worker(backend, self.tmp.name)
        return self.workers[backend.name]

    def restart(self, backend: Backend) -> None:
        """Drop a worker whose state is unknown after a failure; the next use starts anew."""
        worker = self.workers.pop(backend.name, None)
        if worker is not None:
            worker.proc.kill()
            worker.close()

    def path(self, name: str) -> str:
        """A fresh file name in this run's temporary folder."""
        return str(Path(self.tmp.name) / name)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers.values():
            worker.close()
        self.tmp.cleanup()
