"""Run every case of backend_cases.py on one framework and print a JSON report.

    python tests/backend_worker.py torch|paddle|mindspore [--compile] [--nightly]

Each framework runs alone in its own process: importing paddle before mindspore in one
process breaks MindSpore, and none of the three needs the others. For every case the
report holds the output shapes (eval and train mode), the trainable and BN-statistic
counts and the state-dict keys; with --compile, each default module also goes through
the framework's compiler (torch.export, paddle.jit.to_static + save, MindSpore
GRAPH_MODE).
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backend_cases import CASES, COMPILED, NIGHTLY, case_id  # noqa: E402


def network_class(backend: str, spec: str):
    module = importlib.import_module(f"generated.{backend}.{spec}")
    names = [
        n
        for n, v in vars(module).items()
        if isinstance(v, type) and v.__module__ == module.__name__
    ]
    return getattr(module, names[-1])  # the network class is emitted last


class Torch:
    def __init__(self):
        import torch

        self.torch = torch
        torch.manual_seed(0)

    def run(self, net, x: np.ndarray) -> dict:
        torch = self.torch
        report = {
            "trainable": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "bn_stats": sum(
                b.numel()
                for n, b in net.named_buffers()
                if n.endswith(("running_mean", "running_var"))
            ),
            "keys": sorted(k for k in net.state_dict() if not k.endswith("num_batches_tracked")),
        }
        net.eval()
        with torch.no_grad():
            report["eval_shape"] = list(net(torch.from_numpy(x)).shape)
        net.train()
        out = net(torch.from_numpy(x))
        out.sum().backward()
        report["train_shape"] = list(out.shape)
        return report

    def compile(self, net, x: np.ndarray) -> str:
        net.eval()
        program = self.torch.export.export(net, (self.torch.from_numpy(x),))
        got = program.module()(self.torch.from_numpy(x))
        want = net(self.torch.from_numpy(x))
        return f"torch.export ok, max diff {float((got - want).abs().max()):.1e}"


class Paddle:
    def __init__(self):
        import paddle

        self.paddle = paddle
        paddle.seed(0)

    def run(self, net, x: np.ndarray) -> dict:
        paddle = self.paddle
        state = net.state_dict()
        report = {
            "trainable": sum(
                int(np.prod(p.shape)) for p in net.parameters() if not p.stop_gradient
            ),
            "bn_stats": sum(
                int(np.prod(v.shape))
                for k, v in state.items()
                if k.endswith(("._mean", "._variance"))
            ),
            "keys": sorted(state),
        }
        net.eval()
        with paddle.no_grad():
            report["eval_shape"] = list(net(paddle.to_tensor(x)).shape)
        net.train()
        out = net(paddle.to_tensor(x))
        out.sum().backward()
        report["train_shape"] = list(out.shape)
        return report

    def compile(self, net, x: np.ndarray) -> str:
        paddle = self.paddle
        net.eval()
        spec = [paddle.static.InputSpec([None, *x.shape[1:]], "float32")]
        static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
        with tempfile.TemporaryDirectory() as tmp:
            paddle.jit.save(static, f"{tmp}/model")
            loaded = paddle.jit.load(f"{tmp}/model")
            got = loaded(paddle.to_tensor(x)).numpy()
        want = net(paddle.to_tensor(x)).numpy()
        return f"paddle.jit.to_static + save ok, max diff {np.abs(got - want).max():.1e}"


class MindSpore:
    def __init__(self):
        import mindspore

        self.ms = mindspore
        mindspore.set_seed(0)
        mindspore.set_context(mode=mindspore.PYNATIVE_MODE)

    def run(self, net, x: np.ndarray) -> dict:
        ms = self.ms
        params = net.parameters_dict()
        report = {
            "trainable": sum(int(np.prod(p.shape)) for p in net.trainable_params()),
            "bn_stats": sum(
                int(np.prod(p.shape))
                for k, p in params.items()
                if k.endswith((".moving_mean", ".moving_variance"))
            ),
            "keys": sorted(params),
        }
        net.set_train(False)
        report["eval_shape"] = list(net(ms.Tensor(x)).shape)
        net.set_train(True)  # backward is covered by `archspec check` (test_check.py)
        report["train_shape"] = list(net(ms.Tensor(x)).shape)
        net.set_train(False)
        return report

    def compile(self, net, x: np.ndarray) -> str:
        ms = self.ms
        net.set_train(False)
        want = net(ms.Tensor(x)).asnumpy()
        ms.set_context(mode=ms.GRAPH_MODE)
        try:
            got = net(ms.Tensor(x)).asnumpy()
            net.set_train(True)
            train = net(ms.Tensor(x)).shape
            net.set_train(False)
        finally:
            ms.set_context(mode=ms.PYNATIVE_MODE)
        return (
            f"GRAPH_MODE ok (train output {tuple(train)}), "
            f"max diff to PyNative {np.abs(got - want).max():.1e}"
        )


FRAMEWORKS = {"torch": Torch, "paddle": Paddle, "mindspore": MindSpore}


def main() -> None:
    backend = sys.argv[1]
    compile_ = "--compile" in sys.argv
    framework = FRAMEWORKS[backend]()
    results = {}
    rng = np.random.default_rng(0)
    nightly = "--nightly" in sys.argv  # the variants instead, each compiled too
    for case in NIGHTLY if nightly else CASES:
        spec, kwargs, shape = case
        x = rng.standard_normal((2, *shape)).astype(np.float32)
        try:
            net = network_class(backend, spec)(**kwargs)
            report = framework.run(net, x)
            if compile_ and (nightly or COMPILED.get(spec) == case):
                report["compiled"] = framework.compile(net, x)
        except Exception:
            report = {"error": traceback.format_exc()}
        results[case_id(case)] = report
        print(f"{backend} {case_id(case)} done", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
