"""`archspec schema`: the JSON Schema of the spec language, for editors.

Generated, never written by hand: the keys, types and descriptions come from the pydantic
models of `spec.py`, and every op's own attributes (with their docs) from the op
registry. A node is one of: an op (discriminated on `op`: one schema per op, each admitting
exactly its own attributes, so an editor completes `op:` and flags a misspelt
attribute), a block call, or a sequence (discriminated by which of the keys it has).
"""

from __future__ import annotations

import ast
import copy
import inspect
from functools import cache
from itertools import pairwise
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from archspec import spec
from archspec.expr import Expr
from archspec.ops import INIT_SCHEMES, OPS, Attr, Op
from archspec.spec import NetworkSpec

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
EXPRESSION = "an expression (a string is parsed: write a literal string as \"'text'\")"
_KINDS: dict[str, list[dict[str, Any]]] = {
    "ints": [{"type": "array", "items": {"type": ["integer", "string"]}, "minItems": 1}],
    "int": [{"type": "integer"}],
    "pair": [
        {"type": "integer"},
        {"type": "array", "items": {"type": ["integer", "string"]}, "minItems": 2, "maxItems": 2},
    ],
    "padding": [
        {"type": "integer"},
        {
            "type": "array",
            "items": {"type": ["integer", "string", "array"]},
            "minItems": 2,
            "maxItems": 2,
        },
    ],
    "float": [{"type": "number"}],
    "prob": [{"type": "number", "minimum": 0, "exclusiveMaximum": 1}],
    "unit": [{"type": "number", "minimum": 0, "maximum": 1}],
    "bool": [{"type": "boolean"}],
}
_NODE_KINDS = ("op", "block", "seq")


class _Generator(GenerateJsonSchema):
    """Expressions (parsed strings, numbers, booleans, lists) are a value of any of those;
    a model's fields are described by their docstrings."""

    def dataclass_schema(self, schema) -> dict[str, Any]:
        if schema["cls"] is Expr:
            return {"type": ["number", "boolean", "string", "array"], "description": EXPRESSION}
        return super().dataclass_schema(schema)

    def model_schema(self, schema) -> dict[str, Any]:
        json_schema = super().model_schema(schema)
        for name, prop in json_schema.get("properties", {}).items():
            doc = field_doc(schema["cls"], name)
            if doc is not None and "description" not in prop:
                # before the title, where pydantic puts a description: the keys of a
                # property named `default` are the ones pydantic leaves unsorted
                title = prop.pop("title", None)
                prop["description"] = doc
                if title is not None:
                    prop["title"] = title
        return json_schema


def field_doc(model: type, name: str) -> str | None:
    """The docstring under a field of a spec model, or under it in the base declaring it."""
    docs = _field_docs()
    for cls in model.__mro__:
        if cls.__module__ == spec.__name__ and name in docs.get(cls.__name__, {}):
            return docs[cls.__name__][name]
    return None


@cache
def _field_docs() -> dict[str, dict[str, str]]:
    """Field docstrings of every class in spec.py, by class and field name.

    A docstring documents the annotated assignment right before it, as pydantic's
    `use_attribute_docstrings` reads them; read here, only when a schema is asked for.
    """
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(spec)).body:
        if isinstance(node, ast.ClassDef):
            docs[node.name] = {
                field.target.id: inspect.cleandoc(doc.value.value)
                for field, doc in pairwise(node.body)
                if isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            }
    return docs


def spec_schema() -> dict[str, Any]:
    """The whole JSON Schema of a spec file."""
    schema = NetworkSpec.model_json_schema(schema_generator=_Generator)
    defs = schema["$defs"]
    common = _node_properties(defs.pop("NodeSpec"))
    defs.update({f"op_{name}": _op_node(name, op, common) for name, op in sorted(OPS.items())})
    defs["BlockCall"] = _block_node(common)
    defs["Sequence"] = _seq_node(common)
    defs["OpNode"] = {
        "description": "An op with its attributes inline; `op` chooses which attributes.",
        "type": "object",
        "properties": {"op": {"enum": sorted(OPS), "description": "The primitive op."}},
        "required": ["op"],
        "allOf": [
            {
                "if": {"properties": {"op": {"const": name}}},
                "then": {"$ref": f"#/$defs/op_{name}"},
            }
            for name in sorted(OPS)
        ],
    }
    # discriminated by key: `op` (then by its value), `block` or `seq`, so a validator (and
    # an editor) reports the errors of the one kind the node is, not of all three
    defs["NodeSpec"] = {
        "description": "A node: an op (attributes inline), a block call, or a sequence.",
        "if": {"required": ["op"]},
        "then": {"$ref": "#/$defs/OpNode"},
        "else": {
            "if": {"required": ["block"]},
            "then": {"$ref": "#/$defs/BlockCall"},
            "else": {
                "if": {"required": ["seq"]},
                "then": {"$ref": "#/$defs/Sequence"},
                "else": {"required": ["op"], "description": "A node needs `op`, `block` or `seq`."},
            },
        },
    }
    defs["ParamSpec"] = _param(defs["ParamSpec"])
    defs["InitSpec"] = _init_scheme()
    props = schema["properties"]
    props["defaults"] = _per_op("Attribute defaults per op.", _attr_map)
    props["init"] = _per_op("Initialisation per op and tensor.", _init_map(defs))
    # a spec that extends another may leave out what the base gives
    required = schema.pop("required", [])
    schema["if"] = {"not": {"required": ["extends"]}}
    schema["then"] = {"required": required}
    props["extends"] = {
        **props.get("extends", {}),
        "description": "A base spec (path relative to this file) merged under this one.",
    }
    return {"$schema": SCHEMA_URL, "title": "archspec spec", **schema}


def _node_properties(node: dict[str, Any]) -> dict[str, Any]:
    props = copy.deepcopy(node["properties"])
    for value in props.values():
        value.pop("default", None)
    return props


def _attr_schema(attr: Attr) -> dict[str, Any]:
    kind = next((k for k in _KINDS if attr.kind.startswith(k)), None)
    options = [*(copy.deepcopy(_KINDS[kind]) if kind else []), {"type": "string"}]
    doc = attr.doc + ("" if attr.required else f" Default: {attr.default!r}.")
    return {"anyOf": options, "description": f"{doc} A literal or {EXPRESSION}."}


def _op_node(name: str, op: Op, common: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in common.items() if k not in (*_NODE_KINDS, "args", "packed")}
    props["op"] = {"const": name, "description": (type(op).__doc__ or name).strip()}
    props.update({key: _attr_schema(attr) for key, attr in op.attrs.items()})
    required = ["op", *(key for key, attr in op.attrs.items() if attr.required)]
    return {
        "title": f"op: {name}",
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _block_node(common: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in common.items() if k not in ("op", "seq", "packed")}
    return {
        "title": "block call",
        "type": "object",
        "properties": props,
        "required": ["block"],
        "additionalProperties": False,
    }


def _seq_node(common: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in common.items() if k not in ("op", "block", "args")}
    return {
        "title": "sequence",
        "type": "object",
        "properties": props,
        "required": ["seq"],
        "additionalProperties": False,
    }


def _attr_map(op: Op) -> dict[str, Any]:
    return {key: _attr_schema(attr) for key, attr in op.attrs.items()}


def _init_map(defs: dict[str, Any]):
    scheme = {"$ref": "#/$defs/InitSpec"} if "InitSpec" in defs else {}

    def tensors(op: Op) -> dict[str, Any]:
        return {tensor: scheme for tensor in op.tensors}

    return tensors


def _per_op(description: str, entries) -> dict[str, Any]:
    props = {}
    for name, op in sorted(OPS.items()):
        inner = entries(op)
        if inner:
            props[name] = {"type": "object", "properties": inner, "additionalProperties": False}
    return {
        "description": description,
        "type": "object",
        "properties": props,
        "additionalProperties": False,
    }


def _param(full: dict[str, Any]) -> dict[str, Any]:
    """A parameter: `{type, default, doc, ...}`, or the shorthands `int` and `3`."""
    types = full["properties"]["type"]
    return {
        "description": full.get("description", ""),
        "anyOf": [
            full,
            {**types, "description": "Shorthand: a required parameter of this type."},
            {
                "type": ["number", "boolean", "string", "array"],
                "description": "Shorthand: the default value (its type is inferred).",
            },
        ],
    }


def _init_scheme() -> dict[str, Any]:
    """An initialisation: a scheme's name, or `{scheme: {argument: value}}`."""
    value = {"type": ["number", "string"]}
    with_args = {
        scheme: {
            "type": ["object", "number", "string"],
            "properties": {arg: value for arg in args},
            "additionalProperties": False,
        }
        for scheme, args in INIT_SCHEMES.items()
    }
    return {
        "description": "An initialisation scheme: `zeros`, or `{kaiming_normal: {mode: ...}}`.",
        "anyOf": [
            {"enum": sorted(INIT_SCHEMES)},
            {
                "type": "object",
                "properties": with_args,
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
            },
        ],
    }
