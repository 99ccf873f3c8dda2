"""JSON from outside the process, parsed with a depth bound and one readable error sentence.

The standard library's ``json.loads`` recurses once per nested array or object, so a document
of a few thousand ``[`` (a TF_CONFIG, a request body) ends in ``RecursionError`` and a
traceback instead of an error the user can read. ``loads`` first measures the nesting with one
regular-expression scan that skips string literals (C speed, no recursion, linear in the
input), refuses anything deeper than ``max_depth``, and only then hands the text to
``json.loads``. Pure Python and the standard library only, so ``serve/`` can import it too.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A string literal (escapes included; an unterminated one runs to the end of the text and is
# left for json.loads to report), or one bracket. Strings are matched only to be skipped.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_OPEN = frozenset("[{")


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar), brackets inside
    strings ignored. Unbalanced text gives a number too; validity is json.loads's job."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif token[0] != '"':
            depth -= 1
    return deepest


def _decode(text: str | bytes, what: str) -> str:
    if isinstance(text, str):
        return text
    try:
        # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8; a BOM is tolerated.
        return bytes(text).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON: it is not UTF-8 text (byte {exc.start})."
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str | bytes, *, what: str, max_depth: int = 32, allow_nan: bool = False) -> Any:
    """Parse ``text`` as JSON, refusing documents nested deeper than ``max_depth``.

    ``what`` names the document in the error ("TF_CONFIG", "the request body"). Every failure
    is a ``ValueError`` whose message is one sentence starting with ``what``. ``NaN`` and
    ``Infinity`` are not JSON and are refused unless ``allow_nan`` (Python's json.dumps writes
    them by default, so files this process wrote itself may hold them).
    """
    decoded = _decode(text, what)
    depth = nesting_depth(decoded)
    if depth > max_depth:
        raise ValueError(
            f"{what} nests arrays and objects {depth} levels deep; at most {max_depth} "
            "are accepted."
        )
    try:
        if allow_nan:
            return json.loads(decoded)
        return json.loads(decoded, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (ValueError, RecursionError) as exc:
        # int() past sys.get_int_max_str_digits, a refused NaN; RecursionError only if the
        # caller's stack was already nearly full when the bounded document arrived.
        reason = str(exc).split("; ")[0].rstrip(".") or type(exc).__name__
        raise ValueError(f"{what} is not valid JSON: {reason}.") from None
