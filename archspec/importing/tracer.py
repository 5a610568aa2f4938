"""`archspec import`, the tracer: torch.fx's, with a real run beside the trace.

Every node records its value in the run (`node.meta["value"]`), and a traced value's
shape is the run's (`x.shape`, `x.size(1)`, `x.dim()` are numbers, not nodes), so shape
arithmetic and branches on shapes never enter the graph: what a model computes from
sizes is already computed. A branch on a tensor's values still fails, as in torch.fx.
"""

from __future__ import annotations

import operator

import torch
from torch import fx


def value(v):
    """Proxies replaced by their values in the run."""
    return fx.node.map_aggregate(
        v, lambda a: a.node.meta.get("value") if isinstance(a, fx.Proxy) else a
    )


class ConcreteProxy(fx.Proxy):
    """A traced value whose shape is the real run's (sizes are numbers, not nodes)."""

    def real(self, name):
        """The attribute of the value in the run, or a traced one without."""
        value = self.node.meta.get("value")
        if isinstance(value, torch.Tensor):
            return getattr(value, name)
        return fx.Proxy.__getattr__(self, name)  # no value: a node, which lifting reports

    shape = property(lambda self: self.real("shape"))
    ndim = property(lambda self: self.real("ndim"))
    dtype = property(lambda self: self.real("dtype"))
    device = property(lambda self: self.real("device"))

    def size(self, dim=None):
        """The run's sizes."""
        return self.real("size")() if dim is None else self.real("size")(dim)

    def dim(self):
        """The run's number of axes."""
        return self.real("dim")()


class ConcreteTracer(fx.Tracer):
    """torch.fx's tracer, running every call it records on the example input's values."""

    def __init__(self, example):
        super().__init__()
        self.example = example  # the placeholder's value
        self.running = False  # while a call runs for real: attributes are not traced
        self.forward = None  # the leaf module call being recorded

    def proxy(self, node):
        """Proxies that know their value's shape."""
        return ConcreteProxy(node, self)

    def call_module(self, m, forward, args, kwargs):
        """Record a module call; its forward gives a leaf's value."""
        self.forward = forward  # a leaf's real value: its forward, not the patched call
        return super().call_module(m, forward, args, kwargs)

    def create_proxy(self, kind, target, args, kwargs, *rest, **more):
        """A proxy whose node records its value in the run."""
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **more)
        proxy.node.meta["value"] = self.run(kind, target, value(args), value(kwargs))
        return proxy

    def create_node(self, kind, target, args, kwargs, *rest, **more):
        """A node; a weight read records the weight."""
        node = super().create_node(kind, target, args, kwargs, *rest, **more)
        if kind == "get_attr":  # a buffer passed as an argument makes no proxy
            node.meta["value"] = self.run(kind, target, (), {})
        return node

    def run(self, kind, target, args, kwargs):
        """The call's real value: the tracer's patches are off (a module's own weights
        are tensors here, not nodes), and a failure leaves no value."""
        if kind == "placeholder":
            return self.example
        self.running = True
        try:
            if kind == "call_function":
                return target(*args, **kwargs)
            if kind == "call_method":
                return getattr(args[0], target)(*args[1:], **kwargs)
            if kind == "call_module":
                return self.forward(*args, **kwargs)
            return operator.attrgetter(target)(self.root)  # get_attr
        except Exception:  # lifting says what it needed
            return None
        finally:
            self.running = False

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        """A module attribute: traced, except while a call runs for real."""
        if self.running:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def iter(self, obj):
        """The parts of a chunk or split, each a proxy."""
        real = obj.node.meta.get("value")
        if isinstance(real, (tuple, list)):  # `for part in x.chunk(2)`: the parts
            return iter([obj[i] for i in range(len(real))])
        return super().iter(obj)
