"""Strict JSON: what r13 accepts from a client is something it can write back out.

Python's ``json`` reads more than r13 can store and serve again:

- ``"\\ud800"`` (a lone UTF-16 surrogate) becomes a ``str`` that cannot be
  encoded as UTF-8, so a later render of the packument fails;
- ``1e400`` becomes ``inf`` and ``NaN``/``Infinity`` are read as numbers; they
  render as ``Infinity``, which no JSON parser (npm's included) reads;
- bytes are decoded with ``surrogatepass`` and UTF-16/32 are guessed, where
  every other reader of the same bytes expects strict UTF-8;
- deep nesting costs one C stack frame per level.

:func:`loads` parses with those holes closed; :func:`check_document` checks a
document that did not come through :func:`loads` (a caller of r13core that is
not the HTTP app) before it is stored. Neither recurses.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Final

from r13core.errors import BadRequest, InvalidValue

MAX_DEPTH: Final = 64
# Python refuses to print ints of more than 4300 digits; keep well inside.
_MAX_INT_BITS: Final = 10_000
# A \u escape of a surrogate: only then can a parsed string hold one.
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_BOM: Final = b"\xef\xbb\xbf"


class _NotFinite(ValueError):
    pass


class _DuplicateKey(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> Any:
    raise _NotFinite(text)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def loads(
    data: bytes,
    *,
    what: str = "body",
    error: type[InvalidValue] = BadRequest,
    max_depth: int = MAX_DEPTH,
    allow_bom: bool = False,
    unique_keys: bool = False,
) -> Any:
    """Parse UTF-8 JSON ``data``; ``error`` (a 400) naming ``what`` and the reason otherwise.

    Refused: bytes that are not strict UTF-8, NaN/Infinity and numbers that
    overflow a double, lone surrogates, nesting deeper than ``max_depth``, and —
    with ``unique_keys`` — an object that repeats a key. ``allow_bom`` skips a
    leading UTF-8 byte order mark (npm reads package.json files that have one).
    """
    if allow_bom and data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(
            text,
            parse_float=_finite,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_pairs if unique_keys else None,
        )
    except RecursionError:
        raise error(f"{what} is JSON nested deeper than {max_depth} levels") from None
    except _NotFinite as exc:
        raise error(f"{what} holds a number JSON cannot carry ({str(exc)[:40]})") from None
    except _DuplicateKey as exc:
        raise error(f"{what} repeats the key {str(exc)[:100]!r} in one object") from None
    except ValueError as exc:
        raise error(f"{what} is not valid JSON ({str(exc)[:120]})") from None
    # The walk below is only needed when the text could hold what it looks for.
    deep = data.count(b"[") + data.count(b"{") > max_depth
    if deep or _SURROGATE_ESCAPE.search(data):
        check_document(doc, what=what, error=error, max_depth=max_depth)
    return doc


def refuse_surrogates(data: bytes, doc: Any, *, what: str) -> None:
    """BadRequest if ``doc``, parsed from ``data``, holds a lone surrogate (cheap when not).

    For parsers that keep their own hooks (the audit body counts its objects):
    the same refusal as :func:`loads`, without its depth rule.
    """
    if _SURROGATE_ESCAPE.search(data):
        check_document(doc, what=what, max_depth=sys.getrecursionlimit())


def _where(path: tuple[Any, ...]) -> str:
    """``versions["1.0.0"].bin`` from the keys that lead there."""
    out = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$-]*", part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part[:60])}]")
    return "".join(out) or "the document"


def _bad_string(value: str) -> bool:
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_document(
    doc: Any,
    *,
    what: str = "document",
    error: type[InvalidValue] = BadRequest,
    max_depth: int = MAX_DEPTH,
) -> None:
    """Raise ``error`` unless ``doc`` is JSON r13 can store and render again.

    JSON here means dicts with ``str`` keys, lists (tuples too), ``str`` that
    encode as UTF-8, finite floats, ints Python can print, booleans and None,
    nested at most ``max_depth`` deep. The walk is iterative.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(doc, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if _bad_string(value):
                raise error(
                    f"{what}: {_where(path)} holds a lone UTF-16 surrogate "
                    "(\\ud800-\\udfff), which is not text and cannot be stored"
                )
        elif isinstance(value, dict | list | tuple):
            if depth + 1 > max_depth:
                raise error(f"{what} is JSON nested deeper than {max_depth} levels")
            if isinstance(value, dict):
                for key, child in value.items():
                    if not isinstance(key, str):
                        raise error(f"{what}: {_where(path)} has a key that is not a string")
                    if _bad_string(key):
                        raise error(
                            f"{what}: {_where(path)} has a key holding a lone UTF-16 surrogate"
                        )
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(value))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if value.bit_length() > _MAX_INT_BITS:
                raise error(f"{what}: {_where(path)} is an integer too long to store")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise error(f"{what}: {_where(path)} is a number JSON cannot carry ({value})")
        else:
            raise error(f"{what}: {_where(path)} is a {type(value).__name__}, not JSON")


__all__ = ["MAX_DEPTH", "check_document", "loads"]
