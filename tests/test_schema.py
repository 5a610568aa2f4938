"""`archspec schema`: the JSON Schema editors use, generated from the models and the op registry."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import run_cli

from archspec.ops import OPS
from archspec.schema import spec_schema

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../docs/spec.schema.json"
UNEXPECTED = "Additional properties are not allowed ('{}' was unexpected)"


@pytest.fixture(scope="module")
def validator():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, data) -> list[str]:
    """The best message of each error, with the context that explains a failed union."""
    found = []
    for error in validator.iter_errors(data):
        best = jsonschema.exceptions.best_match([error, *error.context])
        found.append(best.message)
    return found


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_bundled_spec_is_valid_and_names_the_schema(validator, spec):
    text = spec.read_text()
    assert text.splitlines()[0] == MODELINE
    assert errors(validator, yaml.safe_load(text)) == []


def test_checked_in_schema_is_the_generated_one(tmp_path):
    result = run_cli("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == spec_schema()
    assert (ROOT / "docs" / "spec.schema.json").read_text() == result.stdout


def test_a_misspelt_attribute_is_flagged(validator):
    data = yaml.safe_load((ROOT / "specs" / "resnet18.yaml").read_text())
    data["nodes"][0]["kernal"] = 7
    assert errors(validator, data) == [
        "Additional properties are not allowed ('kernal' was unexpected)"
    ]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"op": "conv2d", "out": 4}, "'kernel' is a required property"),
        ({"op": "batchnorm2d", "out": 4}, UNEXPECTED.format("out")),
        ({"op": "relu", "stride": 2}, UNEXPECTED.format("stride")),
        ({"op": "conv2d", "out": 4, "kernel": True}, "True is not of type 'integer'"),
        ({"block": "B", "seq": []}, UNEXPECTED.format("seq")),
        ({"name": "x1"}, "'op' is a required property"),
    ],
)  # fmt: skip
def test_each_op_admits_exactly_its_own_attributes(validator, node, message):
    data = {"name": "N", "input": {"channels": 3, "height": 8, "width": 8}, "nodes": [node]}
    assert errors(validator, data) == [message]


def test_an_unknown_op_lists_the_known_ones(validator):
    data = {"name": "N", "input": {"channels": 3, "height": 8, "width": 8}}
    data["nodes"] = [{"op": "conv3d"}]
    assert errors(validator, data) == [f"'conv3d' is not one of {sorted(OPS)}"]


def test_op_names_complete_from_the_registry():
    schema = spec_schema()
    chooser = schema["$defs"]["OpNode"]
    assert chooser["properties"]["op"]["enum"] == sorted(OPS)
    consts = [case["if"]["properties"]["op"]["const"] for case in chooser["allOf"]]
    assert consts == sorted(OPS)
    conv = schema["$defs"]["op_conv2d"]["properties"]
    assert conv["kernel"]["description"].startswith("Kernel size: k or [kh, kw].")
    assert "Default: 1." in conv["stride"]["description"]
    assert conv["op"]["description"].startswith("2-D convolution")


def test_every_key_has_a_description():
    schema = spec_schema()
    missing = [
        f"{name}.{key}"
        for name, definition in schema["$defs"].items()
        for key, prop in definition.get("properties", {}).items()
        if not prop.get("description") and "$ref" not in prop
    ]
    missing += [k for k, v in schema["properties"].items() if not v.get("description")]
    assert missing == []


def test_a_spec_that_extends_may_leave_out_the_base_keys(validator):
    assert errors(validator, {"extends": "resnet18.yaml", "let": {"layers": [3, 4, 6, 3]}}) == []
    assert sorted(errors(validator, {"let": {"layers": [3, 4, 6, 3]}})) == [
        "'input' is a required property",
        "'name' is a required property",
        "'nodes' is a required property",
    ]
