"""A corpus of broken specs, each paired with the exact error lines it must produce.

Every case is checked twice: through `compile_spec` (the SpecError's text) and through the
CLI (`archspec validate`: exit status 2, stderr equal to the same lines, no traceback).
The CLI runs once over the whole corpus, each case in its own folder, so there the file
names read `<case>/spec.yaml`.

Unless a case says `head=False`, its spec is written after the two-line HEAD (`name`,
`input`), so its own first line is line 3 of spec.yaml.

The tests at the end are bugs or unclear messages found while writing the corpus: each
states the behaviour we think is right.
"""

from __future__ import annotations

import os
import textwrap

import pytest
from conftest import HEAD, run_cli

from archspec.compiler import compile_spec
from archspec.errors import SpecError
from archspec.spec import RESERVED


def case(case_id: str, spec: str | bytes, *expected: str, files=None, head: bool = True):
    """One corpus entry: spec.yaml's text, the expected error lines, other files it needs."""
    if isinstance(spec, str):
        spec = (HEAD if head else "") + textwrap.dedent(spec).lstrip("\n")
    return pytest.param(spec, list(expected), files or {}, id=case_id)


BLOCK_AB = HEAD + textwrap.dedent(
    """\
    blocks:
      A:
        nodes:
          - {block: B}
      B:
        nodes:
          - {block: A}
    nodes:
      - {block: A}
    """
)

CORPUS = [
    # -- YAML and the file itself ------------------------------------------------------------
    case(
        "yaml_syntax",
        """
        nodes:
          - {op: relu
        """,
        "spec.yaml:5:1: error: YAML syntax error: did not find expected ',' or '}'",
    ),
    case(
        "yaml_bad_indent",
        """
        nodes:
          - op: relu
           bad: 1
        """,
        "spec.yaml:5:4: error: YAML syntax error: did not find expected '-' indicator",
    ),
    case(
        "yaml_tab",
        "nodes:\n\t- {op: relu}\n",
        "spec.yaml:4:1: error: YAML syntax error: found character that cannot start any token",
    ),
    case("empty_file", "", "spec.yaml:1:1: error: file is empty", head=False),
    case("only_comments", "# nothing\n", "spec.yaml:1:1: error: file is empty", head=False),
    case(
        "not_utf8",
        b"name: Net\ndoc: caf\xe9\n",
        "spec.yaml:2:9: error: file is not valid UTF-8",
    ),
    case(
        "not_a_mapping",
        "- {op: relu}\n",
        "spec.yaml:1:1: error: a spec must be a mapping of keys to values",
        head=False,
    ),
    case(
        "python_object_tag",
        """
        doc: !!python/object/apply:os.system [echo hi]
        nodes:
          - {op: relu}
        """,
        "spec.yaml:3:6: error: YAML tag `tag:yaml.org,2002:python/object/apply:os.system` is "
        "not allowed: specs hold plain data only",
    ),
    case(
        "custom_tag",
        """
        nodes:
          - !node {op: relu}
        """,
        "spec.yaml:4:5: error: YAML tag `!node` is not allowed: specs hold plain data only",
    ),
    case(
        "merge_key",
        """
        defaults:
          conv2d: &d {bias: false}
          linear:
            <<: *d
        nodes:
          - {op: relu}
        """,
        "spec.yaml:6:5: error: mapping keys must be plain names",
    ),
    case(
        "duplicate_key",
        """
        nodes:
          - {op: relu, op: sigmoid}
        """,
        "spec.yaml:4:16: error: duplicate key `op`",
    ),
    # -- keys and types ------------------------------------------------------------------------
    case(
        "missing_keys",
        "name: Net\n",
        "spec.yaml:1:1: error: missing key `input`",
        "spec.yaml:1:1: error: missing key `nodes`",
        head=False,
    ),
    case(
        "unknown_top_level_key",
        """
        nodez: []
        nodes:
          - {op: relu}
        """,
        "spec.yaml:3:1: error: unknown key `nodez`",
    ),
    case(
        "unknown_input_key",
        """
        name: Net
        input: {channels: 3, height: 8, width: 8, depth: 1}
        nodes:
          - {op: relu}
        """,
        "spec.yaml:2:43: error: unknown key `depth`",
        head=False,
    ),
    case(
        "unknown_block_key",
        """
        blocks:
          A:
            node:
              - {op: relu}
        nodes:
          - {block: A}
        """,
        "spec.yaml:5:5: error: missing key `nodes`",
        "spec.yaml:5:5: error: unknown key `node`",
    ),
    case(
        "unknown_key_on_block_call",
        """
        blocks:
          A:
            nodes:
              - {op: relu}
        nodes:
          - {block: A, foo: 1}
        """,
        "spec.yaml:8:5: error: unknown key `foo`",
    ),
    case(
        "wrong_types",
        """
        name: 3
        input: {channels: x, height: 0, width: 2.5}
        nodes: {}
        """,
        "spec.yaml:1:7: error: expected a string, got 3",
        "spec.yaml:2:19: error: expected an integer, got 'x'",
        "spec.yaml:2:30: error: expected a number greater than 0, got 0",
        "spec.yaml:2:40: error: expected an integer, got 2.5",
        "spec.yaml:3:8: error: expected a list, got a mapping",
        head=False,
    ),
    case(
        "node_is_not_a_mapping",
        """
        nodes:
          - relu
        """,
        "spec.yaml:4:5: error: expected a mapping, got 'relu'",
    ),
    case(
        "network_name_not_identifier",
        """
        name: my-net
        input: {channels: 3, height: 8, width: 8}
        nodes:
          - {op: relu}
        """,
        "spec.yaml:1:7: error: network name `my-net` is not a valid identifier",
        head=False,
    ),
    case(
        "node_kinds",
        """
        nodes:
          - {op: relu, block: A}
          - {name: q}
          - {op: relu, args: {a: 1}}
          - {op: relu, repeat: 2, for_each: t}
        """,
        "spec.yaml:4:5: error: a node needs exactly one of `op`, `block` or `seq` (has op, block)",
        "spec.yaml:5:5: error: a node needs exactly one of `op`, `block` or `seq`",
        "spec.yaml:6:5: error: `args` belongs to block calls; op attributes are written inline",
        "spec.yaml:7:5: error: use `repeat` or `for_each`, not both",
    ),
    case(
        "param_declarations",
        """
        params:
          n: {type: int, default: 1.5}
          m: {type: integer}
          k: {doc: hi}
          z: null
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: expected int, got 1.5",
        "spec.yaml:5:13: error: expected 'int', 'float', 'bool', 'str' or 'list', got 'integer'",
        "spec.yaml:6:6: error: missing key `type`",
        "spec.yaml:7:6: error: cannot infer a parameter type from None",
    ),
    case(
        "ragged_table",
        """
        tables:
          cfg: {columns: [a, b], rows: [[1, 2], [1]]}
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:8: error: row 1 has 1 values but the table has 2 columns",
    ),
    # -- node names ----------------------------------------------------------------------------
    case(
        "reserved_node_names",
        """
        nodes:
          - {name: forward, op: relu}
          - {name: x, op: relu}
          - {name: class, op: relu}
          - {name: my-node, op: relu}
        """,
        "spec.yaml:4:12: error: node name `forward` is reserved",
        "spec.yaml:5:12: error: node name `x` is reserved",
        "spec.yaml:6:12: error: node name `class` is a reserved word",
        "spec.yaml:7:12: error: node name `my-node` is not a valid identifier",
    ),
    case(
        "duplicate_node_names",
        """
        nodes:
          - {name: c1, op: relu}
          - {name: c1, op: relu}
        """,
        "spec.yaml:5:5: error: duplicate node name `c1`",
    ),
    case(
        "node_name_is_a_param",
        """
        params: {n: 1}
        nodes:
          - {name: n, op: relu}
        """,
        "spec.yaml:5:5: error: node name `n` is also a parameter, let or block",
    ),
    case(
        "unknown_node_with_hint",
        """
        nodes:
          - {name: conv1, op: relu}
          - {op: add, inputs: [conv1, conv_1]}
        """,
        "spec.yaml:5:23: error: unknown node `conv_1` (did you mean `conv1`?)",
    ),
    case(
        "reference_to_later_node",
        """
        nodes:
          - {name: a, op: add, inputs: [x, b]}
          - {name: b, op: relu}
        """,
        "spec.yaml:4:32: error: input `b` is defined later: a node can only use earlier nodes "
        "(no cycles)",
    ),
    case(
        "inputs_not_nodes",
        """
        params: {n: 1}
        nodes:
          - {op: relu, inputs: n}
          - {op: concat, inputs: []}
        """,
        "spec.yaml:5:24: error: `inputs` must name nodes",
        "spec.yaml:6:26: error: `inputs` must name nodes",
    ),
    # -- ops and attributes --------------------------------------------------------------------
    case(
        "unknown_op_with_hint",
        """
        nodes:
          - {op: conv2D, out: 4, kernel: 1}
        """,
        "spec.yaml:4:5: error: unknown op `conv2D` (did you mean `conv2d`?)",
    ),
    case(
        "unknown_attribute_with_hint",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 1, strides: 2}
        """,
        "spec.yaml:4:46: error: conv2d has no attribute `strides` (did you mean `stride`?)",
    ),
    case(
        "missing_required_attribute",
        """
        nodes:
          - {op: conv2d, out: 4}
        """,
        "spec.yaml:4:5: error: conv2d needs attribute `kernel`",
    ),
    case(
        "zero_and_negative_stride",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 1, stride: 0}
          - {op: max_pool2d, kernel: 2, stride: -1}
        """,
        "spec.yaml:4:45: error: conv2d attribute `stride`: expected an integer >= 1, got 0",
        "spec.yaml:5:41: error: max_pool2d attribute `stride`: expected an integer >= 1, got -1",
    ),
    case(
        "float_channel_count",
        """
        params: {width: 8}
        nodes:
          - {op: conv2d, out: width / 2, kernel: 1}
        """,
        "spec.yaml:5:23: error: conv2d attribute `out`: expected an integer, got the float 4.0 "
        "(use // or int())",
    ),
    case(
        "fractional_channel_count",
        """
        nodes:
          - {op: conv2d, out: 2.5, kernel: 1}
        """,
        "spec.yaml:4:23: error: conv2d attribute `out`: expected an integer, got 2.5",
    ),
    case(
        "attribute_values_out_of_range",
        """
        nodes:
          - {op: dropout, p: 1.0}
          - {op: batchnorm2d, momentum: -0.1}
          - {op: conv2d, out: 3, kernel: 1, bias: 1}
          - {op: conv2d, out: 3, kernel: [1, 2, 3]}
        """,
        "spec.yaml:4:22: error: dropout attribute `p`: expected a probability in [0, 1), got 1.0",
        "spec.yaml:5:33: error: batchnorm2d attribute `momentum`: expected a probability in "
        "[0, 1), got -0.1",
        "spec.yaml:6:43: error: conv2d attribute `bias`: expected true or false, got 1",
        "spec.yaml:7:34: error: conv2d attribute `kernel`: expected one integer or a pair [h, w], "
        "got [1, 2, 3]",
    ),
    case(
        "unknown_activation",
        """
        nodes:
          - {op: activation, fn: "'swish'"}
          - {op: activation, fn: relu}
        """,
        "spec.yaml:4:26: error: activation attribute `fn`: expected one of relu, relu6, "
        "hardswish, hardsigmoid, sigmoid, identity, silu, tanh, gelu, leaky_relu; got 'swish'",
        "spec.yaml:5:26: error: undefined name `relu` "
        "(a string needs quotes inside the YAML value: \"'relu'\")",
    ),
    case(
        "wrong_number_of_inputs",
        """
        nodes:
          - {op: add}
          - {op: multiply, inputs: [x, x, x]}
        """,
        "spec.yaml:4:5: error: add takes 2 or more input(s), got 1",
        "spec.yaml:5:5: error: multiply takes 2 input(s), got 3",
    ),
    # -- shapes --------------------------------------------------------------------------------
    case(
        "channel_mismatch_at_add",
        """
        nodes:
          - {name: c, op: conv2d, out: 4, kernel: 1}
          - {op: add, inputs: [x, c]}
        """,
        "spec.yaml:5:5: error: add: add needs inputs of one shape, got 3 x 8 x 8, 4 x 8 x 8",
    ),
    case(
        "concat_spatial_mismatch",
        """
        nodes:
          - {name: c, op: conv2d, out: 4, kernel: 3}
          - {name: cat, op: concat, inputs: [x, c]}
        """,
        "spec.yaml:5:5: error: cat: concat needs one spatial size, got 3 x 8 x 8, 4 x 6 x 6",
    ),
    case(
        "multiply_cannot_broadcast",
        """
        nodes:
          - {name: c, op: conv2d, out: 2, kernel: 1}
          - {op: multiply, inputs: [x, c]}
        """,
        "spec.yaml:5:5: error: multiply: multiply cannot broadcast 3 x 8 x 8 with 2 x 8 x 8",
    ),
    case(
        # linear has no input-size attribute (it maps the last dimension, as PyTorch's
        # does), so the mismatch that can happen is an image op after it
        "image_op_after_linear",
        """
        nodes:
          - {op: flatten}
          - {op: linear, out: 10}
          - {name: head, op: conv2d, out: 2, kernel: 1}
          - {op: global_avg_pool}
        """,
        "spec.yaml:6:5: error: head: conv2d expects a C x H x W input, got 10",
    ),
    case(
        "groups_do_not_divide_channels",
        """
        nodes:
          - {name: dw, op: conv2d, out: 4, kernel: 1, groups: 2}
        """,
        "spec.yaml:4:5: error: dw: groups=2 must divide the input channels (3) and out (4)",
    ),
    case(
        "kernel_larger_than_padded_input",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: [3, 11], padding: 1}
          - {op: max_pool2d, kernel: 9, inputs: x}
        """,
        "spec.yaml:4:5: error: conv2d: kernel width 11 is larger than the padded input (8 + 2 x 1)",
        "spec.yaml:5:5: error: max_pool2d: pool window height 9 is larger than the padded input "
        "(8 + 2 x 0)",
    ),
    case(
        "dilated_kernel_larger_than_input",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, dilation: 4}
        """,
        "spec.yaml:4:5: error: conv2d: kernel height 9 is larger than the padded input (8 + 2 x 0)",
    ),
    case(
        "pool_padding_over_half_kernel",
        """
        nodes:
          - {op: max_pool2d, kernel: 2, padding: 2}
        """,
        "spec.yaml:4:5: error: max_pool2d: padding (2, 2) must be at most half the kernel (2, 2)",
    ),
    case(
        "padding_unknown_string",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: "'valid'"}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected 'same', p, [ph, pw] or "
        "[[top, bottom], [left, right]], got 'valid'",
    ),
    case(
        "padding_same_without_inner_quotes",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: same}
        """,
        "spec.yaml:4:46: error: undefined name `same` "
        "(a string needs quotes inside the YAML value: \"'same'\")",
    ),
    case(
        "padding_same_is_lower_case",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: "'SAME'"}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected 'same', p, [ph, pw] or "
        "[[top, bottom], [left, right]], got 'SAME'",
    ),
    case(
        "padding_one_nested_pair",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: [[0, 1]]}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected "
        "[[top, bottom], [left, right]], got [[0, 1]]",
    ),
    case(
        "padding_short_nested_pair",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: [[0, 1], [1]]}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected "
        "[[top, bottom], [left, right]], got [[0, 1], [1]]",
    ),
    case(
        "padding_mixed_nesting",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: [1, [0, 1]]}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected "
        "[[top, bottom], [left, right]], got [1, [0, 1]]",
    ),
    case(
        "padding_nested_negative",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: [[0, -1], [0, 0]]}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected an integer >= 0, got -1",
    ),
    case(
        "padding_nested_float",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: [[0.5, 1], [0, 0]]}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected an integer, got 0.5",
    ),
    case(
        "padding_bool",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 3, padding: true}
        """,
        "spec.yaml:4:46: error: conv2d attribute `padding`: expected an integer, got True",
    ),
    case(
        "pool_uneven_padding_over_half_kernel",
        """
        nodes:
          - {op: max_pool2d, kernel: 2, padding: [[0, 2], [0, 0]]}
        """,
        "spec.yaml:4:5: error: max_pool2d: padding ((0, 2), (0, 0)) must be at most half the "
        "kernel (2, 2)",
    ),
    case(
        "pool_same_with_ceil_mode",
        """
        nodes:
          - {op: max_pool2d, kernel: 3, stride: 2, ceil_mode: true, padding: "'same'"}
        """,
        "spec.yaml:4:5: error: max_pool2d: ceil_mode does not apply to padding 'same' (its output "
        "is ceil(in / stride))",
    ),
    case(
        "pool_uneven_padding_with_ceil_mode",
        """
        nodes:
          - {op: avg_pool2d, kernel: 3, stride: 2, ceil_mode: true, padding: [[0, 1], [1, 1]]}
        """,
        "spec.yaml:4:5: error: avg_pool2d: ceil_mode needs symmetric padding (PyTorch's rule is "
        "defined for it)",
    ),
    case(
        "conv_uneven_padding_kernel_too_large",
        """
        nodes:
          - {op: conv2d, out: 4, kernel: 5, dilation: 3, padding: [[0, 1], [0, 1]]}
        """,
        "spec.yaml:4:5: error: conv2d: kernel height 13 is larger than the padded input "
        "(8 + 0 + 1)",
    ),
    case(
        "global_pool_after_flatten",
        """
        nodes:
          - {op: flatten}
          - {name: gap, op: global_avg_pool}
        """,
        "spec.yaml:5:5: error: gap: global_avg_pool expects a C x H x W input, got 192",
    ),
    # -- expressions ---------------------------------------------------------------------------
    case(
        "undefined_name_with_hint",
        """
        let: {width: 4}
        nodes:
          - {op: conv2d, out: widht, kernel: 1}
        """,
        "spec.yaml:5:23: error: undefined name `widht` (did you mean `width`?)",
    ),
    case(
        "let_before_definition",
        """
        let:
          b: a + 1
          a: 1
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: undefined name `a`",
    ),
    case(
        "division_by_zero",
        """
        params: {groups: 0}
        nodes:
          - {op: conv2d, out: 64 // groups, kernel: 1}
          - {op: conv2d, out: 4, kernel: 1, stride: 3 % groups}
        """,
        "spec.yaml:5:23: error: division by zero",
        "spec.yaml:6:45: error: division by zero",
    ),
    case(
        "expression_syntax",
        """
        let:
          a: 1 +
          b: (2
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: invalid expression `1 +`: invalid syntax",
        "spec.yaml:5:6: error: invalid expression `(2`: '(' was never closed",
    ),
    case(
        "attribute_access_refused",
        """
        let:
          a: x.__class__
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: attribute access is not part of the expression language: "
        "`x.__class__`",
    ),
    case(
        "method_call_refused",
        """
        let:
          a: "'a'.upper()"
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: only named functions can be called: `'a'.upper()`",
    ),
    case(
        "lambda_refused",
        """
        let:
          a: "(lambda: 1)"
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: a lambda is not part of the expression language: `(lambda: 1)`",
    ),
    case(
        "comprehension_refused",
        """
        let:
          a: "[i for i in [1, 2]]"
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: a comprehension is not part of the expression language: "
        "`[i for i in [1, 2]]`",
    ),
    case(
        "dunder_name_refused",
        """
        let:
          a: __import__('os')
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: names starting with an underscore are not allowed: `__import__`",
    ),
    case(
        "unknown_function_with_hint",
        """
        let:
          a: cell(2.5)
          b: open('x')
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: unknown function `cell` (did you mean `ceil`?)",
        "spec.yaml:5:6: error: unknown function `open`",
    ),
    case(
        "other_refused_syntax",
        """
        let:
          a: "{1: 2}"
          b: "[1, 2][0:1]"
          c: max(1, key=2)
          d: f'{1}'
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: a dictionary is not part of the expression language: `{1: 2}`",
        "spec.yaml:5:6: error: a slice is not part of the expression language: `[1, 2][0:1]`",
        "spec.yaml:6:6: error: keyword arguments are not supported: `max(1, key=2)`",
        "spec.yaml:7:6: error: an f-string is not part of the expression language: `f'{1}'`",
    ),
    case(
        "expression_value_errors",
        """
        let:
          a: "'a' + 1"
          b: "[1, 2][5]"
          c: 10 ** 20
          d: "[1] < 2"
          e: "[0] * 20000"
        nodes:
          - {op: relu}
        """,
        "spec.yaml:4:6: error: arithmetic needs a number, got a string",
        "spec.yaml:5:6: error: index 5 is out of range for a list of 2",
        "spec.yaml:6:6: error: value 100000000000000000000 is out of range (more than 1e+15)",
        "spec.yaml:7:6: error: cannot compare a list with an integer",
        "spec.yaml:8:6: error: list longer than 10000 items",
    ),
    case(
        "spec_function_calls",
        """
        functions:
          f: {args: [a], expr: a * 2}
          g: {args: [a], expr: g(a)}
        let:
          v: f(1, 2)
          w: g(1)
        nodes:
          - {op: relu}
        """,
        "spec.yaml:7:6: error: f() takes 1 argument(s), got 2",
        "spec.yaml:8:6: error: in function `g`: expression nested too deeply (recursive function?)",
    ),
    # -- blocks, repeat, tables, init ----------------------------------------------------------
    case(
        "unknown_block_with_hint",
        """
        blocks:
          Basic:
            nodes:
              - {op: relu}
        nodes:
          - {block: Basix}
        """,
        "spec.yaml:8:13: error: unknown block `Basix` (did you mean `Basic`?)",
    ),
    case(
        "block_uses_itself",
        BLOCK_AB,
        "spec.yaml:9:9: error: block `A` uses itself (A -> B -> A)",
        head=False,
    ),
    case(
        "block_is_not_a_block",
        """
        let: {unit: 3}
        nodes:
          - {block: unit}
        """,
        "spec.yaml:5:13: error: `block` must name a block, got 3",
    ),
    case(
        "block_arguments",
        """
        blocks:
          A:
            params: {n: int, k: 1}
            nodes:
              - {op: relu}
        nodes:
          - {block: A}
          - {block: A, inputs: x, args: {n: 2.0}}
          - {block: A, inputs: x, args: {n: 1, m: 2}}
        """,
        "spec.yaml:9:5: error: missing argument `n`",
        "spec.yaml:10:37: error: argument `n`: expected int, got 2.0",
        "spec.yaml:11:43: error: block `A` has no parameter `m`",
    ),
    case(
        "let_shadows_param",
        """
        blocks:
          A:
            params: {n: 1}
            let: {n: 2}
            nodes:
              - {op: relu}
        nodes:
          - {block: A}
        """,
        "spec.yaml:6:14: error: `n` is both a parameter and a let",
    ),
    case(
        "block_check_failure",
        """
        blocks:
          A:
            params: {n: int}
            checks:
              - {expr: n > 2, message: n must exceed 2}
            nodes:
              - {op: relu}
        nodes:
          - {name: a, block: A, args: {n: 1}}
        """,
        "spec.yaml:11:5: error: check failed: n must exceed 2",
    ),
    case(
        "block_with_two_inputs",
        """
        blocks:
          A:
            nodes:
              - {op: relu}
        nodes:
          - {name: r, op: relu}
          - {block: A, inputs: [x, r]}
        """,
        "spec.yaml:9:5: error: a block takes one input, got 2",
    ),
    case(
        "bad_repeat_counts",
        """
        nodes:
          - {op: relu, repeat: -1}
          - {op: relu, repeat: 1.5}
          - {op: relu, repeat: true}
        """,
        "spec.yaml:4:24: error: `repeat` needs a count in 0..10000, got -1",
        "spec.yaml:5:24: error: `repeat` needs a count in 0..10000, got 1.5",
        "spec.yaml:6:24: error: `repeat` needs a count in 0..10000, got True",
    ),
    case(
        "unknown_table",
        """
        tables:
          cfg: {columns: [a], rows: [[1]]}
        nodes:
          - {op: relu, for_each: cfgg}
        """,
        "spec.yaml:6:5: error: unknown table `cfgg` (did you mean `cfg`?)",
    ),
    case(
        "bad_init",
        """
        nodes:
          - op: conv2d
            out: 4
            kernel: 1
            init:
              weight: kaiming
              gamma: zeros
        """,
        "spec.yaml:8:15: error: unknown initialisation `kaiming` (did you mean `kaiming_normal`?)",
        "spec.yaml:9:14: error: conv2d has no tensor `gamma` to initialise",
    ),
    # -- extends -------------------------------------------------------------------------------
    case(
        "extends_cycle",
        "extends: a.yaml\nname: Top\n",
        "b.yaml:1:10: error: `extends` cycle through a.yaml",
        files={"a.yaml": "extends: b.yaml\nname: A\n", "b.yaml": "extends: a.yaml\nname: B\n"},
        head=False,
    ),
    case(
        "extends_itself",
        "extends: spec.yaml\nname: Top\n",
        "spec.yaml:1:10: error: `extends` cycle through spec.yaml",
        head=False,
    ),
    case(
        "extends_missing_base",
        "extends: nope.yaml\nname: Top\n",
        "spec.yaml:1:10: error: base spec not found: nope.yaml",
        head=False,
    ),
    case(
        "error_located_in_base",
        "extends: base.yaml\nname: Top\nlet: {k: 0}\n",
        "base.yaml:5:34: error: conv2d attribute `kernel`: expected an integer >= 1, got 0",
        files={"base.yaml": HEAD + "let: {k: 1}\nnodes:\n  - {op: conv2d, out: 4, kernel: k}\n"},
        head=False,
    ),
    # -- several errors in one file ------------------------------------------------------------
    case(
        "multiple_errors_all_reported",
        """
        params: {n: 4}
        nodes:
          - {name: a, op: conv2d, out: 4}
          - {name: b, op: relux}
          - {name: c, op: linear, out: y, inputs: x}
          - {name: d, op: add, inputs: [c, n2]}
          - {name: e, op: add, inputs: [x, c]}
          - {name: f, op: conv2d, out: 3, kernel: 1, inputs: a}
        """,
        "spec.yaml:5:5: error: conv2d needs attribute `kernel`",
        "spec.yaml:6:5: error: unknown op `relux` (did you mean `relu`?)",
        "spec.yaml:7:32: error: undefined name `y`",
        "spec.yaml:8:32: error: unknown node `n2`",
    ),
    # -- what no generated module could express: refused by validate, never by build ------
    case(
        "join_in_a_sequence",
        """
        nodes:
          - seq:
              - {op: conv2d, out: 4, kernel: 1}
              - {op: concat}
        """,
        "spec.yaml:6:9: error: `concat` joins several inputs: it cannot be a sequence item",
    ),
    case(
        "repeated_join",
        """
        nodes:
          - {name: a, op: identity}
          - {name: b, op: add, inputs: [a, a], repeat: 2}
        """,
        "spec.yaml:5:5: error: `add` joins several inputs: it cannot repeat",
    ),
    # -- tensor ops and nodes with several outputs (`parts[k]`) --------------------------------
    case(
        "part_index_out_of_range",
        """
        nodes:
          - {name: halves, op: chunk, chunks: 2, axis: 1}
          - {op: relu, inputs: "halves[2]"}
        """,
        "spec.yaml:5:24: error: `halves[2]`: `halves` has 2 outputs, `halves[0]` to `halves[1]`",
    ),
    case(
        "part_negative_index_out_of_range",
        """
        nodes:
          - {name: halves, op: chunk, chunks: 2, axis: 1}
          - {op: relu, inputs: "halves[-3]"}
        """,
        "spec.yaml:5:24: error: `halves[-3]`: `halves` has 2 outputs, `halves[0]` to `halves[1]`",
    ),
    case(
        "part_index_not_literal",
        """
        params: {k: 0}
        nodes:
          - {name: halves, op: chunk, chunks: 2, axis: 1}
          - {op: concat, inputs: "[halves[k]]"}
        """,
        "spec.yaml:6:26: error: `halves` has 2 outputs: name one with a literal index, `halves[0]`",
    ),
    case(
        "several_outputs_named_whole",
        """
        nodes:
          - {name: halves, op: chunk, chunks: 2, axis: 1}
          - {op: concat, inputs: [halves, x]}
        """,
        "spec.yaml:5:26: error: `halves` has 2 outputs: name one of them, `halves[0]` to "
        "`halves[1]`, where one tensor is expected",
    ),
    case(
        "several_outputs_as_the_previous_node",
        """
        nodes:
          - {name: halves, op: split, sizes: [1, 2]}
          - {op: relu}
        """,
        "spec.yaml:5:5: error: `halves` has 2 outputs: name one of them, `halves[0]` to "
        "`halves[1]`, where one tensor is expected",
    ),
    case(
        "several_outputs_as_the_network_output",
        """
        nodes:
          - {op: relu}
          - {name: halves, op: chunk, chunks: 2, axis: 1}
        """,
        "spec.yaml:5:5: error: `halves` has 2 outputs: name one of them, `halves[0]` to "
        "`halves[1]`, where one tensor is expected",
    ),
    case(
        "several_outputs_leave_a_block",
        """
        blocks:
          Halves:
            nodes:
              - {op: chunk, chunks: 2, axis: 1}
        nodes:
          - {block: Halves, repeat: 2}
        """,
        "spec.yaml:8:5: error: `chunk` has 2 outputs: name one of them, `chunk[0]` to "
        "`chunk[1]`, where one tensor is expected",
    ),
    case(
        "index_of_a_single_output",
        """
        nodes:
          - {name: r, op: relu}
          - {op: relu, inputs: "r[0]"}
        """,
        "spec.yaml:5:24: error: `r` has one output: write `r`, not an index",
    ),
    case(
        "chunk_does_not_divide",
        """
        nodes:
          - {name: halves, op: chunk, chunks: 2}
          - {op: relu, inputs: "halves[0]"}
        """,
        "spec.yaml:4:5: error: halves: chunk: 2 chunks do not divide axis 0 of 3 x 8 x 8 (size 3)",
    ),
    case(
        "split_sizes_do_not_sum",
        """
        nodes:
          - {name: p, op: split, sizes: [1, 1], axis: -1}
        """,
        "spec.yaml:4:5: error: p: split: sizes [1, 1] must be two or more sizes >= 1 summing to "
        "axis -1 of 3 x 8 x 8 (size 8)",
    ),
    case(
        "chunk_axis_out_of_range",
        """
        nodes:
          - {name: p, op: chunk, chunks: 2, axis: 3}
        """,
        "spec.yaml:4:5: error: p: chunk: axis 3 is out of range for a 3-d input (3 x 8 x 8); "
        "valid axes: -3 to 2",
    ),
    case(
        "chunk_in_a_sequence",
        """
        nodes:
          - seq:
              - {op: chunk, chunks: 2, axis: 1}
        """,
        "spec.yaml:5:9: error: `chunk` has several outputs: it cannot be a sequence item",
    ),
    case(
        "repeated_split",
        """
        nodes:
          - {op: split, sizes: [1, 2], repeat: 2}
        """,
        "spec.yaml:4:5: error: `split` has several outputs: it cannot repeat",
    ),
    case(
        "permute_not_a_permutation",
        """
        nodes:
          - {name: p, op: permute, dims: [0, 2, 2]}
        """,
        "spec.yaml:4:5: error: p: permute: dims [0, 2, 2] is not a permutation of the 3 axes of "
        "3 x 8 x 8 (0 to 2)",
    ),
    case(
        "permute_dims_not_a_list",
        """
        nodes:
          - {op: permute, dims: 1}
        """,
        "spec.yaml:4:25: error: permute attribute `dims`: expected a list of integers, got 1",
    ),
    case(
        "reshape_size_mismatch",
        """
        nodes:
          - {name: r, op: reshape, shape: [5, -1]}
        """,
        "spec.yaml:4:5: error: r: reshape: cannot view 3 x 8 x 8 (192 values) as [5, -1]",
    ),
    case(
        "reshape_two_inferred_sizes",
        """
        nodes:
          - {name: r, op: reshape, shape: [-1, -1]}
        """,
        "spec.yaml:4:5: error: r: reshape: shape [-1, -1] needs sizes >= 1 and at most one -1, "
        "and one axis or more",
    ),
    case(
        "flatten_start_after_end",
        """
        nodes:
          - {name: f, op: flatten, start: 2, end: 1}
        """,
        "spec.yaml:4:5: error: f: flatten: start 2 comes after end 1 in 3 x 8 x 8",
    ),
    case(
        "concat_other_axes_differ",
        """
        nodes:
          - {name: c, op: conv2d, out: 3, kernel: 3}
          - {name: cat, op: concat, inputs: [x, c], axis: 1}
        """,
        "spec.yaml:5:5: error: cat: concat needs equal other axes, got 3 x 8 x 8, 3 x 6 x 6",
    ),
    case(
        "channel_shuffle_groups_do_not_divide",
        """
        nodes:
          - {name: s, op: channel_shuffle, groups: 2}
        """,
        "spec.yaml:4:5: error: s: channel_shuffle: 2 groups do not divide 3 channels",
    ),
    case(
        "inputs_expression_off_concat",
        """
        nodes:
          - {name: a, op: identity}
          - {name: b, op: add, inputs: "[a] * 2"}
          - {name: c, op: relu, inputs: "a if true else b"}
        """,
        "spec.yaml:5:32: error: an `inputs` expression is only supported on concat; "
        "elsewhere name the inputs (`inputs: [a, b]`)",
        "spec.yaml:6:33: error: an `inputs` expression is only supported on concat; "
        "elsewhere name the inputs (`inputs: [a, b]`)",
    ),
    case(
        "node_init_in_a_loop_or_conditional_item",
        """
        nodes:
          - op: conv2d
            out: 4
            kernel: 1
            repeat: 2
            init: {weight: zeros}
          - seq:
              - {op: relu}
              - {op: conv2d, out: 4, kernel: 1, when: false, init: {weight: ones}}
        """,
        "spec.yaml:8:20: error: node-level `init` is not supported inside a repeated node; "
        "use the spec's `init:` section, or put the node in a block",
        "spec.yaml:11:69: error: node-level `init` is not supported inside a conditional "
        "sequence item; use the spec's `init:` section, or put the node in a block",
    ),
    case(
        "input_height_in_a_block",
        """
        blocks:
          B:
            nodes:
              - {op: avg_pool2d, kernel: in_height // 2}
        nodes:
          - {block: B}
        """,
        "spec.yaml:6:34: error: `in_height` is not available: generated modules take any input "
        "size (only `in_channels` is known when a block is built)",
    ),
    case(
        "network_named_as_a_block",
        """
        blocks:
          Net:
            nodes:
              - {op: relu}
        nodes:
          - {block: Net}
        """,
        "spec.yaml:1:7: error: network name `Net` is also a block name",
    ),
    case(
        "table_column_shadows_a_parameter",
        """
        params: {out: 4}
        tables:
          t: {columns: [out], rows: [[1]]}
        nodes:
          - {op: conv2d, out: out, kernel: 1, for_each: t}
        """,
        "spec.yaml:7:5: error: table column `out` shadows a parameter, let or index",
    ),
    case(
        "flatten_of_two_sizes",
        """
        blocks:
          Head:
            nodes:
              - {op: flatten}
        nodes:
          - {name: a, block: Head, inputs: x}
          - {name: p, op: max_pool2d, kernel: 2, inputs: x}
          - {name: b, block: Head, inputs: p}
        """,
        "spec.yaml:6:9: error: flatten of maps of several sizes (8x8 at a.flatten, 4x4 here): "
        "generated modules size the next layer for one; pool to 1x1 first",
    ),
    case(
        "multiply_grows_the_first_input",
        """
        nodes:
          - {name: a, op: conv2d, out: 1, kernel: 1}
          - {name: g, op: conv2d, out: 4, kernel: 1, inputs: x}
          - {name: m, op: multiply, inputs: [a, g]}
        """,
        "spec.yaml:6:5: error: m: multiply: the second input 4 x 8 x 8 has more channels than "
        "the first, 1 x 8 x 8 (put the feature map first)",
    ),
    case(
        "unquoted_string_argument_reported_once",
        """
        blocks:
          B:
            params: {act: str}
            nodes:
              - {op: conv2d, out: 4, kernel: 1}
              - {op: activation, fn: act}
        nodes:
          - {block: B, args: {act: relu}}
        """,
        "spec.yaml:10:28: error: undefined name `relu` "
        "(a string needs quotes inside the YAML value: \"'relu'\")",
    ),
    # -- activations, softmax and max pools over a whole map ---------------------------------
    case(
        "softmax_axis_out_of_range",
        """
        nodes:
          - {name: probs, op: softmax, axis: 3}
        """,
        "spec.yaml:4:5: error: probs: softmax: axis 3 is out of range for a 3-d input "
        "(C x H x W); valid axes: -3 to 2",
    ),
    case(
        "log_softmax_axis_out_of_range_on_a_vector",
        """
        nodes:
          - {op: global_max_pool}
          - {op: flatten}
          - {name: scores, op: log_softmax, axis: 1}
          - {name: again, op: log_softmax, axis: -2, inputs: flatten}
        """,
        "spec.yaml:6:5: error: scores: log_softmax: axis 1 is out of range for a 1-d input (F); "
        "valid axes: -1 to 0",
        "spec.yaml:7:5: error: again: log_softmax: axis -2 is out of range for a 1-d input (F); "
        "valid axes: -1 to 0",
    ),
    case(
        "softmax_axis_not_an_integer",
        """
        nodes:
          - {op: softmax, axis: 1.0}
          - {op: softmax, axis: "'0'", inputs: x}
        """,
        "spec.yaml:4:25: error: softmax attribute `axis`: expected an integer, got the float 1.0 "
        "(use // or int())",
        "spec.yaml:5:25: error: softmax attribute `axis`: expected an integer, got '0'",
    ),
    case(
        "gelu_unknown_approximation",
        """
        nodes:
          - {op: gelu, approximate: "'erf'"}
          - {op: gelu, approximate: true, inputs: x}
          - {op: gelu, approximate: tanh, inputs: x}
        """,
        "spec.yaml:4:29: error: gelu attribute `approximate`: expected 'none' (exact) or 'tanh', "
        "got 'erf'",
        "spec.yaml:5:29: error: gelu attribute `approximate`: expected 'none' (exact) or 'tanh', "
        "got True",
        "spec.yaml:6:29: error: undefined name `tanh`",
    ),
    case(
        "stochastic_depth_bad_attributes",
        """
        nodes:
          - {op: stochastic_depth, p: 1.5}
          - {op: stochastic_depth, p: -0.1, inputs: x}
          - {op: stochastic_depth, p: 0.2, mode: "'col'", inputs: x}
          - {op: stochastic_depth, p: 0.2, mode: batch, inputs: x}
          - {op: stochastic_depth, inputs: x}
        """,
        "spec.yaml:4:31: error: stochastic_depth attribute `p`: expected a probability in "
        "[0, 1], got 1.5",
        "spec.yaml:5:31: error: stochastic_depth attribute `p`: expected a probability in "
        "[0, 1], got -0.1",
        "spec.yaml:6:42: error: stochastic_depth attribute `mode`: expected 'row' (one draw per "
        "sample) or 'batch', got 'col'",
        "spec.yaml:7:42: error: undefined name `batch` (a string needs quotes inside the YAML "
        "value: \"'batch'\")",
        "spec.yaml:8:5: error: stochastic_depth needs attribute `p`",
    ),
    case(
        "packed_outside_a_sequence",
        """
        nodes:
          - {op: relu, packed: true}
        """,
        "spec.yaml:4:5: error: `packed` belongs to sequences (`seq`)",
    ),
    case(
        "node_init_inside_a_packed_sequence",
        """
        nodes:
          - name: s
            packed: true
            seq:
              - {op: relu, when: false}
              - {op: conv2d, out: 4, kernel: 1, init: {weight: zeros}}
        """,
        "spec.yaml:8:56: error: node-level `init` is not supported inside a packed sequence; "
        "use the spec's `init:` section, or put the node in a block",
    ),
    case(
        "leaky_relu_slope_not_a_number",
        """
        nodes:
          - {op: leaky_relu, slope: "'steep'"}
          - {op: leaky_relu, slope: false, inputs: x}
          - {op: leaky_relu, negative_slope: 0.1, inputs: x}
        """,
        "spec.yaml:4:29: error: leaky_relu attribute `slope`: expected a number, got 'steep'",
        "spec.yaml:5:29: error: leaky_relu attribute `slope`: expected a number, got False",
        "spec.yaml:6:38: error: leaky_relu has no attribute `negative_slope`",
    ),
    case(
        "max_pools_need_a_map",
        """
        nodes:
          - {op: flatten}
          - {op: global_max_pool}
          - {op: adaptive_max_pool2d, output: 2, inputs: flatten}
          - {op: adaptive_max_pool2d, output: 0, inputs: x}
          - {op: adaptive_max_pool2d, inputs: x}
        """,
        "spec.yaml:5:5: error: global_max_pool: global_max_pool expects a C x H x W input, got 192",
        "spec.yaml:6:5: error: adaptive_max_pool2d: adaptive_max_pool2d expects a C x H x W "
        "input, got 192",
        "spec.yaml:7:39: error: adaptive_max_pool2d attribute `output`: expected an integer >= 1, "
        "got 0",
        "spec.yaml:8:5: error: adaptive_max_pool2d needs attribute `output`",
    ),
    case(
        "norms_bad_shapes",
        """
        nodes:
          - {op: layer_norm, shape: [4]}
          - {op: layer_norm, shape: [8, 4], inputs: x}
          - {op: layer_norm, shape: 8, inputs: x}
          - {op: layer_norm, inputs: x}
          - {op: group_norm, groups: 2, inputs: x}
          - {op: group_norm, groups: 0, inputs: x}
          - {op: flatten, inputs: x}
          - {op: layer_norm2d}
          - {op: group_norm, groups: 1, inputs: flatten}
          - {op: layer_norm2d, eps: "'small'", inputs: x}
        """,
        "spec.yaml:4:5: error: layer_norm: layer_norm: shape [4] must equal the last axes of the "
        "input, got 3 x 8 x 8",
        "spec.yaml:5:5: error: layer_norm_1: layer_norm: shape [8, 4] must equal the last axes of "
        "the input, got 3 x 8 x 8",
        "spec.yaml:6:29: error: layer_norm attribute `shape`: expected a list of integers, got 8",
        "spec.yaml:7:5: error: layer_norm needs attribute `shape`",
        "spec.yaml:8:5: error: group_norm: group_norm: 2 groups do not divide 3 channels",
        "spec.yaml:9:30: error: group_norm attribute `groups`: expected an integer >= 1, got 0",
        "spec.yaml:11:5: error: layer_norm2d: layer_norm2d expects a C x H x W input, got 192",
        "spec.yaml:12:5: error: group_norm_2: group_norm expects a C x H x W input, got 192",
        "spec.yaml:13:29: error: layer_norm2d attribute `eps`: expected a number, got 'small'",
    ),
    case(
        "parameter_misuse",
        """
        nodes:
          - {name: p, op: parameter, shape: [3, 0, 1]}
          - {name: q, op: parameter, shape: 3}
          - {name: r, op: parameter, shape: [3, 1, 1], inputs: x}
          - {name: s, op: parameter, shape: [3, 1, 1], when: true}
          - {name: t, op: parameter, shape: [3, 1, 1], repeat: 2}
          - seq: [{op: relu}, {op: parameter, shape: [3]}]
          - {name: u, op: parameter, shape: [3, 1, 1], init: {weight: ones}}
          - {name: v, op: parameter, shape: [3], init: {value: {constant: {value: 0.5, std: 1}}}}
          - {op: relu, inputs: x}
        """,
        "spec.yaml:4:5: error: p: parameter: shape [3, 0, 1] needs sizes >= 1",
        "spec.yaml:5:37: error: parameter attribute `shape`: expected a list of integers, got 3",
        "spec.yaml:6:56: error: `parameter` is a learnable tensor, not a layer: it takes no "
        "`inputs` (name it in the inputs of others)",
        "spec.yaml:7:54: error: `parameter` is a learnable tensor, not a layer: it cannot be "
        "conditional (`when`)",
        "spec.yaml:8:5: error: `parameter` is a learnable tensor, not a layer: it cannot repeat",
        "spec.yaml:9:23: error: `parameter` is a learnable tensor, not a layer: it cannot be a "
        "sequence item",
        "spec.yaml:10:63: error: parameter has no tensor `weight` to initialise",
        "spec.yaml:11:85: error: `constant` has no argument `std`",
    ),
    case(
        "parameter_init_section",
        """
        init:
          parameter: {value: ones}
        nodes:
          - {name: p, op: parameter, shape: [3, 1, 1]}
          - {op: multiply, inputs: [x, p]}
        """,
        "spec.yaml:4:22: error: `init`: set a parameter's initialisation on its node",
    ),
    case(
        "parameter_without_batch",
        """
        blocks:
          B:
            nodes:
              - {name: t, op: parameter, shape: [3, 8, 8]}
        nodes:
          - {name: s, op: parameter, shape: [3, 8, 8]}
          - {name: r, op: relu, inputs: s}
          - {name: c, op: concat, inputs: [s, x]}
          - {name: a, op: add, inputs: [s, s]}
          - {name: m, op: multiply, inputs: [s, x]}
          - {name: b, block: B}
          - {name: ok, op: add, inputs: [x, s]}
          - {name: last, op: parameter, shape: [3, 8, 8]}
        """,
        "spec.yaml:6:9: error: the output is the parameter `b.t`, which has no batch axis: use it "
        "in add or multiply with an input that has one",
        "spec.yaml:9:5: error: r: relu cannot take the parameter `s`, which has no batch axis: use "
        "it in add or multiply with an input that has one",
        "spec.yaml:10:5: error: c: concat cannot take the parameter `s`, which has no batch axis: "
        "use it in add or multiply with an input that has one",
        "spec.yaml:11:5: error: a: add cannot take the parameter `s`, which has no batch axis: use "
        "it in add or multiply with an input that has one",
        "spec.yaml:15:5: error: the output is the parameter `last`, which has no batch axis: use "
        "it in add or multiply with an input that has one",
    ),
    case(
        "parameter_batch_axis",
        """
        nodes:
          - {name: t, op: flatten, start: 1}
          - {name: cls, op: parameter, shape: [1, 64], batch_axis: true}
          - {name: pos, op: parameter, shape: [4, 64], batch_axis: 1}
          - {name: c, op: concat, inputs: [cls, t], axis: 0}
          - {name: r, op: relu, inputs: cls}
          - {name: cc, op: concat, inputs: [cls, cls]}
        """,
        "spec.yaml:6:60: error: parameter attribute `batch_axis`: expected true or false, got 1",
        "spec.yaml:8:5: error: r: relu cannot take the parameter `cls`, whose batch axis is 1: use "
        "it in add, multiply or concat with an input that has one",
        "spec.yaml:9:5: error: cc: concat cannot take the parameter `cls`, whose batch axis is 1: "
        "use it in add, multiply or concat with an input that has one",
    ),
    case(
        "attention_and_select",
        """
        nodes:
          - {name: t, op: flatten, start: 1}
          - {name: tokens, op: permute, dims: [1, 0]}
          - {name: a1, op: multihead_attention, heads: 2}
          - {name: a2, op: multihead_attention, heads: 3, inputs: x}
          - {name: a3, op: multihead_attention, heads: 0, inputs: tokens}
          - {name: a4, op: multihead_attention, heads: 3, dropout: 1.0, inputs: tokens}
          - {name: s1, op: select, index: 64, inputs: tokens}
          - {name: s2, op: select, index: 0, axis: 2, inputs: tokens}
          - {name: s3, op: select, inputs: tokens}
          - {name: s4, op: select, index: -64, inputs: tokens}
        """,
        "spec.yaml:6:5: error: a1: multihead_attention: 2 heads do not divide the width 3",
        "spec.yaml:7:5: error: a2: multihead_attention expects L x D tokens (a 2-d input per "
        "sample), got 3 x 8 x 8",
        "spec.yaml:8:48: error: multihead_attention attribute `heads`: expected an integer >= 1, "
        "got 0",
        "spec.yaml:9:60: error: multihead_attention attribute `dropout`: expected a probability in "
        "[0, 1), got 1.0",
        "spec.yaml:10:5: error: s1: select: index 64 is out of range for axis 0 of 64 x 3 "
        "(size 64)",
        "spec.yaml:11:5: error: s2: select: axis 2 is out of range for a 2-d input (64 x 3); valid "
        "axes: -2 to 1",
        "spec.yaml:12:5: error: select needs attribute `index`",
    ),
    # -- module path keys (`key:`) ----------------------------------------------------------------
    case(
        "key_values",
        """
        nodes:
          - {name: a, key: "''", op: relu}
          - {name: b, key: "'b.0'", op: relu}
          - {name: c, key: 3, op: relu}
          - {name: d, key: "'forward'", op: relu}
          - {name: e, key: "'out_channels'", op: relu}
          - {name: f, key: block1, op: relu}
          - {name: g, key: "str([1])", op: relu}
          - {name: h, key: "'h-' + 1", op: relu}
        """,
        "spec.yaml:4:20: error: `key` must not be empty",
        "spec.yaml:5:20: error: `key` 'b.0' contains `.`, which separates module path segments",
        "spec.yaml:6:20: error: `key` must be a string, got 3",
        "spec.yaml:7:20: error: `key` 'forward' is reserved: generated modules have that attribute",
        "spec.yaml:8:20: error: `key` 'out_channels' is reserved: generated modules have that "
        "attribute",
        "spec.yaml:9:20: error: undefined name `block1` (a string needs quotes inside the YAML "
        "value: \"'block1'\")",
        "spec.yaml:10:20: error: str(): expects a number or a string, got a list",
        "spec.yaml:11:20: error: arithmetic needs a number, got a string",
    ),
    case(
        "key_duplicates",
        """
        nodes:
          - {name: a, key: "'a-0'", op: relu}
          - {name: b, key: "'a-0'", op: relu}
          - {name: c, key: "'d'", op: relu}
          - {name: d, op: relu}
          - seq: [{op: relu, key: "'1'"}, {op: relu}]
          - {name: r, key: "'r' + str(i % 2)", op: relu, repeat: 3}
        """,
        "spec.yaml:5:20: error: duplicate key 'a-0': a sibling module already has this path "
        "segment",
        "spec.yaml:6:20: error: duplicate key 'd': a sibling module already has this path segment",
        "spec.yaml:8:27: error: duplicate key '1': a sibling module already has this path segment",
        "spec.yaml:9:20: error: duplicate key 'r0': a sibling module already has this path segment",
    ),
    case(
        "key_shadows_a_parameter",
        """
        params: {width: 4}
        nodes:
          - {name: c, key: "'width'", op: conv2d, out: width, kernel: 1}
        """,
        "spec.yaml:5:20: error: `key` 'width' is also a parameter, let or block",
    ),
    case(
        "key_misuse",
        """
        nodes:
          - {name: p, key: "'p-0'", op: parameter, shape: [3, 1, 1]}
          - {name: s, key: "'s-0'", op: multiply, inputs: [x, p]}
          - {name: h, key: "'h-0'", op: chunk, chunks: 3}
          - {name: c, key: "'c-0'", op: relu, when: true, inputs: s}
          - {name: n, key: "'n-0'", op: conv2d, out: 3, kernel: 1, init: {weight: zeros}}
          - {name: q, key: "'q-0'", seq: [{op: conv2d, out: 3, kernel: 1, init: {bias: zeros}}]}
        """,
        "spec.yaml:4:20: error: `key` names a module, and `parameter` is a learnable tensor",
        "spec.yaml:5:20: error: `key` names a module, and `multiply` joins several inputs",
        "spec.yaml:6:20: error: `key` names a module, and `chunk` has several outputs",
        "spec.yaml:7:20: error: `key` on a conditional node is not supported: make it a sequence "
        "item (an absent item is an identity) or give it an identifier `name` instead",
        "spec.yaml:8:75: error: node-level `init` is not supported on a node with `key` or inside "
        "one (outside sequences); use the spec's `init:` section, or put the node in a block",
        "spec.yaml:9:80: error: node-level `init` is not supported on a node with `key` or inside "
        "one (outside sequences); use the spec's `init:` section, or put the node in a block",
    ),
    case(
        "window_and_tensor_ops",
        """
        nodes:
          - {name: m, op: permute, dims: [1, 2, 0]}
          - {name: s1, op: slice, axes: [0], start: [8]}
          - {name: s2, op: slice, axes: [0, 1], stop: [9, 4], inputs: m}
          - {name: s3, op: slice, axes: [0, -1], step: [2, 2], inputs: m}
          - {name: s4, op: slice, axes: [0], step: [0], inputs: m}
          - {name: s5, op: slice, axes: [3], inputs: m}
          - {name: s6, op: slice, axes: [0, 1], start: [0], inputs: m}
          - {name: r1, op: roll, shifts: [1, 1], axes: [0], inputs: m}
          - {name: p1, op: pad, axes: [0, 0], after: [1, 1], inputs: m}
          - {name: p2, op: pad, axes: [0], before: [-1], inputs: m}
          - {name: a, op: matmul, inputs: [m, m]}
          - {name: v, op: reshape, shape: [2, 8, 12], inputs: m}
          - {name: b, op: matmul, inputs: [x, v]}
          - {name: f, op: flatten, inputs: x}
          - {name: c, op: matmul, inputs: [f, x]}
          - {name: w1, op: window_mask, grid: 8, window: 16, shift: 0, inputs: m}
          - {name: w2, op: window_mask, grid: 8, window: 3, shift: 1, inputs: m}
          - {name: w3, op: window_mask, grid: 8, window: 4, shift: 4, inputs: m}
          - {name: w4, op: window_mask, grid: 8, window: 4, shift: 2, inputs: m}
          - {name: idx, op: relative_position_index, window: 2}
          - {name: tab, op: parameter, shape: [9, 2]}
          - {name: b1, op: relative_position_bias, inputs: [m, tab, idx]}
          - {name: b2, op: relative_position_bias, inputs: [x, tab, idx]}
          - {name: sc, op: scale, inputs: m}
        """,
        "spec.yaml:5:5: error: s1: slice: 8:8 is out of range for axis 0 of 8 x 8 x 3 (size 8; "
        "need 0 <= start < stop <= size)",
        "spec.yaml:6:5: error: s2: slice: 0:9 is out of range for axis 0 of 8 x 8 x 3 (size 8; "
        "need 0 <= start < stop <= size)",
        "spec.yaml:7:5: error: s3: slice: axes [0, -1] must all count from the front (>= 0) or "
        "all from the back (< 0)",
        "spec.yaml:8:5: error: s4: slice: step 0 must be 1 or more",
        "spec.yaml:9:5: error: s5: slice: axis 3 is out of range for a 3-d input (8 x 8 x 3); "
        "valid axes: -3 to 2",
        "spec.yaml:10:5: error: s6: slice: start [0] needs one value per axis of [0, 1]",
        "spec.yaml:11:5: error: r1: roll: shifts [1, 1] needs one value per axis of [0]",
        "spec.yaml:12:5: error: p1: pad: axes [0, 0] name one axis twice",
        "spec.yaml:13:5: error: p2: pad: padding -1, 0 of axis 0 must be >= 0",
        "spec.yaml:14:5: error: a: matmul: cannot multiply 8 x 8 x 3 by 8 x 8 x 3: inner sizes 3 "
        "and 8 differ",
        "spec.yaml:16:5: error: b: matmul cannot broadcast the leading axes of 3 x 8 x 8 and 2 x "
        "8 x 12",
        "spec.yaml:18:5: error: c: matmul needs inputs of 2 axes or more, got 192 and 3 x 8 x 8",
        "spec.yaml:19:5: error: w1: window_mask: the window 16 x 16 is larger than the grid 8 x 8",
        "spec.yaml:20:5: error: w2: window_mask: the window 3 x 3 does not tile the grid 8 x 8 "
        "(pad the grid to a multiple of the window)",
        "spec.yaml:21:5: error: w3: window_mask: the shift 4 x 4 must be smaller than the window "
        "4 x 4",
        "spec.yaml:22:5: error: w4: window_mask: logits must be ... x 4 windows x heads x 16 x 16 "
        "for a 8 x 8 grid in 4 x 4 windows, got 8 x 8 x 3",
        "spec.yaml:25:5: error: b1: relative_position_bias: logits must be ... x heads x N x N, "
        "got 8 x 8 x 3",
        "spec.yaml:26:5: error: b2: relative_position_bias: the table 9 x 2 must be rows x heads, "
        "with the 3 heads of the logits 3 x 8 x 8",
        "spec.yaml:27:5: error: scale needs attribute `factor`",
    ),
    case(
        "module_order",
        """
        blocks:
          Merge:
            nodes:
              - {name: norm, op: layer_norm2d}
              - {name: reduce, op: conv2d, out: 8, kernel: 1}
            order: [reduce, norms]
          Twice:
            nodes:
              - {name: norm, op: layer_norm2d}
            order: [norm, norm]
        nodes:
          - {block: Merge}
          - {block: Twice}
        """,
        "spec.yaml:8:12: error: `order` names `norms`, which is not a node of this block "
        "(did you mean `norm`?)",
        "spec.yaml:12:12: error: `order` names a node twice",
    ),
]


@pytest.mark.parametrize(("spec", "expected", "files"), CORPUS)
def test_compile_spec_reports(write_spec, spec, expected, files):
    for name, text in files.items():
        write_spec(text, name)
    with pytest.raises(SpecError) as info:
        compile_spec(write_spec(spec))
    assert str(info.value).splitlines() == expected
    assert [str(d) for d in info.value.diagnostics] == expected


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """`archspec validate` over every corpus case at once, each in its own folder."""
    root = tmp_path_factory.mktemp("corpus")
    paths = []
    for param in CORPUS:
        spec, _, files = param.values
        folder = root / param.id
        folder.mkdir()
        for name, text in {**files, "spec.yaml": spec}.items():
            if isinstance(text, bytes):
                (folder / name).write_bytes(text)
            else:
                (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
        paths.append(f"{param.id}/spec.yaml")
    return run_cli("validate", *paths, cwd=root)


def test_cli_exits_2_without_traceback(corpus_run):
    assert corpus_run.returncode == 2
    assert corpus_run.stdout == ""
    assert "Traceback" not in corpus_run.stderr
    assert corpus_run.stderr.endswith("\n")


@pytest.mark.parametrize(("spec", "expected", "files"), CORPUS)
def test_cli_reports(corpus_run, request, spec, expected, files):
    case_id = request.node.callspec.id
    lines = [line for line in corpus_run.stderr.splitlines() if line.startswith(case_id + "/")]
    assert lines == [f"{case_id}/{line}" for line in expected]


def test_cli_single_file(write_spec, tmp_path):
    """The same messages for one file on its own, with the bare file name."""
    write_spec(BLOCK_AB)
    proc = run_cli("validate", "spec.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "spec.yaml:9:9: error: block `A` uses itself (A -> B -> A)\n"


def test_cli_missing_file(tmp_path):
    proc = run_cli("validate", "missing.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "missing.yaml: error: cannot read file: No such file or directory\n"


# -- the CLI's own arguments -------------------------------------------------------------------

SET_SPEC = (
    HEAD
    + """\
params:
  classes: 10
  act: {type: str, default: relu, choices: [relu, sigmoid]}
nodes:
  - {op: conv2d, out: 4, kernel: 3}
  - {op: activation, fn: act}
  - {op: global_avg_pool}
  - {op: flatten}
  - {op: linear, out: classes}
"""
)

CLI_CASES = [
    pytest.param(
        ["--set", "clases=4"],
        ["--set: error: `clases` is not a parameter of Net (did you mean `classes`?)"],
        id="set_unknown_param",
    ),
    pytest.param(
        ["--set", "classes=ten", "--set", "act=gelu"],
        [
            "--set: error: argument `act` must be one of ['relu', 'sigmoid'], got 'gelu'",
            "--set: error: argument `classes`: expected int, got 'ten'",
        ],
        id="set_wrong_type_and_choice",
    ),
    pytest.param(
        ["--set", "classes=2.5"],
        ["--set: error: argument `classes`: expected int, got 2.5"],
        id="set_float_for_int",
    ),
    pytest.param(
        ["--set", "classes"],
        ["--set: error: expected NAME=VALUE, got `classes`"],
        id="set_without_value",
    ),
    pytest.param(
        ["--set", "classes="],
        ["--set: error: `classes=`: expected a number, boolean, name or list"],
        id="set_empty_value",
    ),
    pytest.param(
        ["--input", "3x224"],
        ["--input: error: expected CxHxW with positive integers, got `3x224`"],
        id="input_two_dims",
    ),
    pytest.param(
        ["--input", "0x8x8"],
        ["--input: error: expected CxHxW with positive integers, got `0x8x8`"],
        id="input_zero",
    ),
    pytest.param(
        ["--input", "3x8x8x"],
        ["--input: error: expected CxHxW with positive integers, got `3x8x8x`"],
        id="input_trailing_x",
    ),
    pytest.param(
        ["--input", "3x2x2"],
        [
            "spec.yaml:7:5: error: conv2d: kernel height 3 is larger than the padded input "
            "(2 + 2 x 0)"
        ],
        id="input_too_small_for_kernel",
    ),
]


@pytest.mark.parametrize(("args", "expected"), CLI_CASES)
def test_cli_argument_errors(write_spec, tmp_path, args, expected):
    write_spec(SET_SPEC)
    proc = run_cli("summary", "spec.yaml", *args, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == expected


# -- bugs and unclear messages found while writing the corpus, now fixed ---------------------
#
# Each test states the behaviour we think is right. Where the exact wording of a future
# message cannot be known, the test pins what must hold: a SpecError (never a crash), in
# the right file, on the right line.


def compile_failure(write_spec, spec: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        compile_spec(write_spec(spec))
    return info.value


def lines_of(error: SpecError) -> list[tuple[str, int]]:
    return [(d.pos.file, d.pos.line) for d in error.diagnostics]


def test_null_attribute_value_is_a_located_error(write_spec):
    error = compile_failure(write_spec, HEAD + "nodes:\n  - {op: conv2d, out: null, kernel: 1}\n")
    assert str(error) == (
        "spec.yaml:4:23: error: conv2d attribute `out`: expected an integer, got None"
    )


def test_null_attribute_value_cli_exit_status(write_spec, tmp_path):
    write_spec(HEAD + "nodes:\n  - {op: linear, out: null}\n")
    proc = run_cli("validate", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("spec.yaml:4:")


def test_recursive_alias_is_a_located_error(write_spec):
    error = compile_failure(write_spec, HEAD + "doc: &a [*a]\nnodes:\n  - {op: relu}\n")
    assert lines_of(error) == [("spec.yaml", 3)]


def test_scientific_notation_is_a_float(write_spec):
    spec = HEAD + "params:\n  eps: {type: float, default: 1e-5}\n  lr: 1e-3\n"
    spec += "nodes:\n  - {op: relu}\n"
    graph = compile_spec(write_spec(spec))
    assert graph.params == {"eps": 1e-5, "lr": 0.001}


def test_set_scientific_notation_is_a_float(write_spec, tmp_path):
    write_spec(HEAD + "params:\n  lr: 0.1\nnodes:\n  - {op: relu}\n")
    proc = run_cli("summary", "spec.yaml", "--set", "lr=1e-4", "--json", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_set_reads_scalars_as_spec_files_do(write_spec, tmp_path):
    write_spec(
        HEAD + "params:\n  mode: {type: str, default: on, choices: [on, off]}\n"
        "nodes:\n  - {op: relu}\n"
    )
    assert compile_spec(tmp_path / "spec.yaml").params == {"mode": "on"}  # a string in the file
    proc = run_cli("summary", "spec.yaml", "--set", "mode=off", "--json", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_input_with_superscript_digit(write_spec, tmp_path):
    write_spec(SET_SPEC)
    proc = run_cli("summary", "spec.yaml", "--input", "\u00b2x8x8", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "--input: error: expected CxHxW with positive integers, got `\u00b2x8x8`\n"
    )


def test_network_check_failure_is_located_in_the_file(write_spec):
    spec = HEAD + "checks:\n  - {expr: 1 == 2, message: never true}\nnodes:\n  - {op: relu}\n"
    error = compile_failure(write_spec, spec)
    assert [d.message for d in error.diagnostics] == ["check failed: never true"]
    assert lines_of(error) == [("spec.yaml", 4)]


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (HEAD + "nodes:\n  - {op: relu}\n  - {op: relu}\noutput: relu_2\n", 6),
        (
            HEAD + "blocks:\n  A:\n    nodes:\n      - {op: relu}\n      - {op: relu}\n"
            "    output: relu_2\nnodes:\n  - {block: A}\n",
            8,
        ),
    ],
    ids=["network", "block"],
)
def test_bad_output_is_reported_at_output(write_spec, spec, line):
    error = compile_failure(write_spec, spec)
    assert [d.message for d in error.diagnostics] == ["output `relu_2` is not a node"]
    assert lines_of(error) == [("spec.yaml", line)]


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ("defaults:\n  conv2d: {bias: false}\n  conv3d: {bias: false}\n", 5),
        ("defaults:\n  conv2d:\n    biass: false\n", 5),
        ("init:\n  conv2d:\n    wieght: zeros\n", 5),
        ("init:\n  batchnorm: {weight: ones}\n", 4),
    ],
    ids=[
        "defaults_unknown_op",
        "defaults_unknown_attribute",
        "init_unknown_tensor",
        "init_unknown_op",
    ],
)
def test_unknown_names_in_defaults_and_init_are_errors(write_spec, section, line):
    spec = HEAD + section + "nodes:\n  - {op: conv2d, out: 4, kernel: 1}\n  - {op: batchnorm2d}\n"
    error = compile_failure(write_spec, spec)
    assert lines_of(error) == [("spec.yaml", line)]


@pytest.mark.parametrize("child", ["{name: foo, op: relu}", "{op: relu, inputs: x}"])
def test_sequence_children_take_no_names_or_inputs(write_spec, child):
    spec = HEAD + f"nodes:\n  - name: s\n    seq:\n      - {{op: relu}}\n      - {child}\n"
    error = compile_failure(write_spec, spec)
    assert lines_of(error) == [("spec.yaml", 7)]


def test_auto_name_does_not_shadow_the_input(write_spec):
    spec = HEAD + (
        "blocks:\n  X:\n    nodes:\n      - {op: conv2d, out: 5, kernel: 1}\n"
        "nodes:\n  - {block: X}\n  - {name: cat, op: concat, inputs: [x, x]}\n"
    )
    graph = compile_spec(write_spec(spec))
    cat = {n.path: n for n in graph.nodes}["cat"]
    assert (cat.inputs, cat.shape) == (["input", "input"], (6, 8, 8))


def test_auto_name_is_never_reserved(write_spec):
    spec = HEAD + "blocks:\n  Train:\n    nodes:\n      - {op: relu}\nnodes:\n  - {block: Train}\n"
    paths = [n.path for n in compile_spec(write_spec(spec)).nodes]
    assert all(path.split(".")[0] not in RESERVED for path in paths), paths


def test_default_outside_choices_is_an_error(write_spec):
    spec = HEAD + "params:\n  act: {type: str, default: gelu, choices: [relu, sigmoid]}\n"
    error = compile_failure(write_spec, spec + "nodes:\n  - {op: relu}\n")
    assert lines_of(error) == [("spec.yaml", 4)]


def test_unused_block_using_itself_is_an_error(write_spec):
    spec = HEAD + "blocks:\n  A:\n    nodes:\n      - {block: A}\nnodes:\n  - {op: relu}\n"
    error = compile_failure(write_spec, spec)
    assert [d.message for d in error.diagnostics] == ["block `A` uses itself (A -> A)"]


def test_boolean_input_size_is_an_error(write_spec):
    error = compile_failure(
        write_spec,
        "name: Net\ninput: {channels: true, height: 8, width: 8}\nnodes:\n  - {op: relu}\n",
    )
    assert lines_of(error) == [("spec.yaml", 2)]


def test_init_argument_error_is_located_at_the_argument(write_spec):
    spec = HEAD + (
        "nodes:\n  - op: conv2d\n    out: 4\n    kernel: 1\n    init:\n      weight:\n"
        "        kaiming_normal:\n          mode: fan_out\n          a: undefined_thing\n"
    )
    error = compile_failure(write_spec, spec)
    assert str(error) == "spec.yaml:11:14: error: undefined name `undefined_thing`"


def test_error_inside_a_function_names_the_function(write_spec):
    spec = HEAD + "functions:\n  f: {args: [a], expr: a * n}\n"
    spec += "let:\n  u: f(1)\nnodes:\n  - {op: relu}\n"
    error = compile_failure(write_spec, spec)
    (diagnostic,) = error.diagnostics
    assert diagnostic.pos.line == 4 or "`f`" in diagnostic.message


def test_complex_results_are_refused(write_spec):
    error = compile_failure(write_spec, HEAD + "let:\n  v: (-1) ** 0.5\nnodes:\n  - {op: relu}\n")
    assert lines_of(error) == [("spec.yaml", 4)]


def test_date_like_doc_is_a_string(write_spec):
    spec = HEAD + "doc: 2024-01-31\nnodes:\n  - {op: relu}\n"
    assert compile_spec(write_spec(spec)).spec.doc == "2024-01-31"


def test_rewritten_file_is_reloaded(write_spec):
    path = write_spec(HEAD + "nodes:\n  - {op: conv2d, out: 4, kernel: 1}\n")
    assert compile_spec(path).nodes[0].shape == (4, 8, 8)
    mtime = path.stat().st_mtime_ns
    path.write_text(HEAD + "nodes:\n  - {op: conv2d, out: 5, kernel: 1}\n")
    os.utime(path, ns=(mtime, mtime))  # what a coarse-timestamp file system records
    assert compile_spec(path).nodes[0].shape == (5, 8, 8)


def test_names_that_would_shadow_builtins_or_generated_code_are_refused(write_spec):
    spec = HEAD + (
        "params:\n  max: 3\n  training: true\nlet:\n  nn: 2\n"
        "blocks:\n  print:\n    nodes: [{op: relu}]\nnodes:\n  - {op: relu}\n"
    )
    error = compile_failure(write_spec, spec)
    reason = "is a reserved name (a builtin, or a name generated code uses)"
    assert str(error).splitlines() == [
        f"spec.yaml:4:8: error: parameter `max` {reason}",
        f"spec.yaml:5:13: error: parameter `training` {reason}",
        f"spec.yaml:7:7: error: let `nn` {reason}",
        f"spec.yaml:10:5: error: block `print` {reason}",
    ]
