"""archspec: a framework-agnostic architecture spec compiler.

The public API, documented in `archspec.api` and the README, is loaded on first use, so
`import archspec` stays cheap: `archspec.compile_spec`, `archspec.summary`,
`archspec.emit_module`, `archspec.build_modules`, `archspec.planned_outputs`,
`archspec.check_spec`, `archspec.convert_checkpoint`, `archspec.backends`, and the types
`Graph`, `Summary`, `Built`, `SpecError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "Built",
    "Graph",
    "SpecError",
    "Summary",
    "backends",
    "build_modules",
    "check_spec",
    "compile_spec",
    "convert_checkpoint",
    "emit_module",
    "planned_outputs",
    "summary",
]

if TYPE_CHECKING:  # what type checkers and editors see
    from archspec.api import (
        Built,
        Graph,
        SpecError,
        Summary,
        backends,
        build_modules,
        check_spec,
        compile_spec,
        convert_checkpoint,
        emit_module,
        planned_outputs,
        summary,
    )


def __getattr__(name: str):
    if name in __all__:
        from archspec import api

        return getattr(api, name)
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")
