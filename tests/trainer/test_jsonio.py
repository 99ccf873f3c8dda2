"""trainer.jsonio: JSON from outside is parsed with a depth bound, and every failure is one
readable sentence naming the document, never a RecursionError or a traceback."""

from __future__ import annotations

import json
import sys

import pytest

from trainer.jsonio import loads, nesting_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[{{{"', 0),  # brackets inside a string do not count
        ('"a\\"[["', 0),  # nor after an escaped quote
        ("[]", 1),
        ('{"a": [1, {"b": [2]}]}', 4),
        ('[["]"], [[]]]', 3),
    ],
)
def test_nesting_depth_skips_strings(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    "text",
    ['{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', "[[[1]]]", "3"],
)
def test_valid_documents_parse_as_json_loads_does(text: str) -> None:
    assert loads(text, what="x") == json.loads(text)
    assert loads(text.encode(), what="x") == json.loads(text)


def test_a_utf8_bom_is_tolerated_in_bytes() -> None:
    assert loads(b"\xef\xbb\xbf[1]", what="x") == [1]


def test_exactly_max_depth_is_accepted_one_more_is_not() -> None:
    assert loads("[" * 32 + "]" * 32, what="x", max_depth=32) is not None
    with pytest.raises(ValueError, match=r"^TF_CONFIG nests arrays and objects 33 levels deep"):
        loads("[" * 33 + "]" * 33, what="TF_CONFIG", max_depth=32)


def test_far_deeper_than_the_interpreter_recursion_limit_is_one_sentence() -> None:
    deep = "[" * (sys.getrecursionlimit() * 100)
    with pytest.raises(ValueError, match=r"^TF_CONFIG nests arrays and objects") as caught:
        loads(deep, what="TF_CONFIG")
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith(".")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a":', r"^the body is not valid JSON: Expecting value \(line 1, column 6\)\.$"),
        ("not json", r"^the body is not valid JSON: Expecting value \(line 1, column 1\)\.$"),
        (b"\xff[]", r"^the body is not valid JSON: it is not UTF-8 text \(byte 0\)\.$"),
        ('{"a": NaN}', r"^the body is not valid JSON: NaN is not a JSON number\.$"),
        ("[Infinity]", r"^the body is not valid JSON: Infinity is not a JSON number\.$"),
        ("1" * 5000, r"^the body is not valid JSON: Exceeds the limit"),
    ],
)
def test_invalid_input_is_one_sentence_naming_what(text: str | bytes, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as caught:
        loads(text, what="the body")
    assert "\n" not in str(caught.value)


def test_nan_is_allowed_on_request() -> None:
    # Python's json.dumps writes NaN by default, so a file this process wrote may hold one.
    assert loads(json.dumps({"loss": float("nan")}), what="x", allow_nan=True)["loss"] != 0
