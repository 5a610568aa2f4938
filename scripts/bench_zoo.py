"""Generated modules against the frameworks' hand-written models: speed and peak memory.

    python scripts/bench_zoo.py                        # every framework, ResNet-50 and ResNeXt-50
    python scripts/bench_zoo.py --frameworks torch --rounds 20
    python scripts/bench_zoo.py --frameworks mindspore:cpu --input 2x112  # `--target cpu` vs mindcv

For each framework, one worker process (frameworks never share a process) builds the
generated network and the framework's own hand-written one (torchvision, paddle.vision,
mindcv), gives them the same input, warms both up, then times them interleaved, round by
round (eval forward, then one training step: forward, backward, SGD update), so machine
noise falls on both alike. It prints the median time of each and their ratio (generated /
hand-written: 1.00 is parity, below is faster); the order of the two alternates every
round. Peak memory is measured apart, one fresh process per model and mode: the peak
resident set over three steps less the resident set once the model is built (activations,
gradients and optimizer state; not the weights). `--memory-only` skips the timing.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = {"resnet50": "ResNet50", "resnext50": "ResNeXt50"}
# the hand-written model of each network in each framework
REFERENCES = {
    "torch": {"resnet50": "resnet50", "resnext50": "resnext50_32x4d"},
    "paddle": {"resnet50": "resnet50", "resnext50": "resnext50_32x4d"},
    "mindspore": {"resnet50": "resnet50", "resnext50": "resnext50_32x4d"},
}
# (batch, size): MindSpore's CPU convolutions are slow (its reference kernel), so small
SETTINGS = {"torch": (8, 224), "paddle": (8, 224), "mindspore": (2, 32)}
WARMUP = {"torch": 3, "paddle": 3, "mindspore": 26}  # MindSpore tunes its CPU kernels first


def generated_class(framework: str, spec: str, target: str = ""):
    """The checked-in generated module's network class (or one built for a target)."""
    folder = ROOT / "generated" / framework
    if target:
        folder = Path(target)
    path = folder / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(f"bench_{framework}_{spec}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, NETWORKS[spec])


# -- one framework, in its own process -------------------------------------------------------
class Torch:
    def __init__(self):
        import torch

        self.torch = torch

    def reference(self, name):
        torch = self.torch
        original = torch.library.register_fake
        torch.library.register_fake = lambda name, fn=None, *a, **k: fn or (lambda f: f)
        try:
            import torchvision
        finally:
            torch.library.register_fake = original
        return getattr(torchvision.models, name)()

    def prepare(self, net, batch, size):
        torch = self.torch
        x = torch.randn(batch, 3, size, size)
        y = torch.randint(0, 1000, (batch,))
        opt = torch.optim.SGD(net.parameters(), lr=1e-4)
        loss_fn = torch.nn.CrossEntropyLoss()

        def infer():
            net.eval()
            with torch.no_grad():
                net(x)

        def train():
            net.train()
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()

        return infer, train


class Paddle:
    def __init__(self):
        import paddle

        self.paddle = paddle

    def reference(self, name):
        import paddle.vision.models as models

        return getattr(models, name)()

    def prepare(self, net, batch, size):
        paddle = self.paddle
        x = paddle.randn([batch, 3, size, size])
        y = paddle.randint(0, 1000, [batch])
        opt = paddle.optimizer.SGD(learning_rate=1e-4, parameters=net.parameters())
        loss_fn = paddle.nn.CrossEntropyLoss()

        def infer():
            net.eval()
            with paddle.no_grad():
                net(x).numpy()

        def train():
            net.train()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            opt.clear_grad()
            loss.numpy()

        return infer, train


class MindSpore:
    def __init__(self):
        import mindspore

        self.ms = mindspore
        mindspore.set_context(mode=mindspore.PYNATIVE_MODE)

    def reference(self, name):
        from mindcv.models import resnet

        return getattr(resnet, name)()

    def prepare(self, net, batch, size):
        import numpy as np

        ms = self.ms
        rng = np.random.default_rng(0)
        x = ms.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
        y = ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32))
        opt = ms.nn.SGD(net.trainable_params(), learning_rate=1e-4)
        loss_fn = ms.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")

        def forward(inputs, labels):
            return loss_fn(net(inputs), labels)

        grad_fn = ms.value_and_grad(forward, None, opt.parameters)

        def infer():
            net.set_train(False)
            net(x).asnumpy()

        def train():
            net.set_train(True)
            loss, grads = grad_fn(x, y)
            opt(grads)
            loss.asnumpy()

        return infer, train


FRAMEWORKS = {"torch": Torch, "paddle": Paddle, "mindspore": MindSpore}


def build(framework: str, spec: str, which: str, target: str):
    fw = FRAMEWORKS[framework]()
    if which == "reference":
        net = fw.reference(REFERENCES[framework][spec])
    else:
        net = generated_class(framework, spec, target)()
    return fw, net


def time_worker(framework: str, spec: str, rounds: int, target: str, batch: int, size: int):
    """Interleaved medians for both models, eval forward and training step."""
    steps = {}
    for which in ("generated", "reference"):
        fw, net = build(framework, spec, which, target)
        steps[which] = fw.prepare(net, batch, size)
    for which in steps:
        for step in steps[which]:
            for _ in range(WARMUP[framework]):
                step()
    times = {(w, m): [] for w in steps for m in ("eval", "train")}
    order = list(steps)
    for _ in range(rounds):
        order.reverse()  # neither model always runs first (caches, clocks)
        for mode, index in (("eval", 0), ("train", 1)):
            for which in order:
                t0 = time.perf_counter()
                steps[which][index]()
                times[which, mode].append(time.perf_counter() - t0)
    return {f"{w}:{m}": statistics.median(t) for (w, m), t in times.items()}


def memory_worker(
    framework: str, spec: str, which: str, mode: str, target: str, batch: int, size: int
) -> dict:
    """Peak memory of three steps in a fresh process: the process's peak resident set
    (ru_maxrss, which no allocator's caching hides) less its resident set once the model
    is built, so it counts activations, gradients and optimizer state, not the weights."""
    import resource

    fw, net = build(framework, spec, which, target)
    infer, train = fw.prepare(net, batch, size)
    step = infer if mode == "eval" else train
    before = _resident()
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"peak_mb": (peak - before) / 2**20, "rss_mb": before / 2**20}


def _resident() -> int:
    """This process's resident set in bytes (Linux: /proc/self/statm, in pages)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- the driver --------------------------------------------------------------------------------
def run_worker(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def built_for(framework: str, emit_target: str, specs: str) -> str:
    """The specs built with an emission option (`archspec build --target`), in a temporary
    folder kept until the process ends: the folder of the framework's modules."""
    out = tempfile.mkdtemp(prefix="bench_zoo_")
    atexit.register(shutil.rmtree, out, True)
    paths = [str(ROOT / "specs" / f"{spec}.yaml") for spec in specs.split(",")]
    options = ["--backend", framework, "--target", emit_target, "--out", out]
    subprocess.run(
        [sys.executable, "-m", "archspec.cli", "build", *paths, *options],
        check=True,
        capture_output=True,
    )
    return str(Path(out) / framework)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="torch,paddle,mindspore")
    parser.add_argument("--specs", default="resnet50,resnext50")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--target", default="", help="a folder of generated modules to use")
    parser.add_argument("--input", help="BATCHxSIZE for every framework (default: per framework)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        worker = time_worker if kind == "time" else memory_worker
        values = [int(v) if v.isdigit() else v for v in rest]
        values[-3] = rest[-3]  # the target folder stays text
        print(json.dumps(worker(*values)))
        return
    header = (
        "framework     network     batch x size   eval gen/ref (ms)    ratio"
        "   train gen/ref (ms)   ratio"
    )
    print(header + ("   peak MB eval gen/ref  train gen/ref" if not args.no_memory else ""))
    for label in args.frameworks.split(","):
        framework, _, emit_target = label.partition(":")
        target = built_for(framework, emit_target, args.specs) if emit_target else args.target
        for spec in args.specs.split(","):
            batch, size = map(int, args.input.split("x")) if args.input else SETTINGS[framework]
            shape = (str(batch), str(size))
            line = f"{label:13} {spec:11} {batch:>5} x {size:<5}"
            if args.memory_only:
                line += " " * 66
            else:
                t = run_worker("time", framework, spec, str(args.rounds), target, *shape)
                for mode in ("eval", "train"):
                    gen, ref = t[f"generated:{mode}"], t[f"reference:{mode}"]
                    line += f"  {gen * 1e3:8.1f} / {ref * 1e3:8.1f}  {gen / ref:6.3f}"
            if not args.no_memory:
                for mode in ("eval", "train"):
                    gen, ref = (
                        run_worker("memory", framework, spec, which, mode, target, *shape)[
                            "peak_mb"
                        ]
                        for which in ("generated", "reference")
                    )
                    line += f"  {gen:7.0f} / {ref:<7.0f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
