"""Request bodies as JSON bytes: the standard library's ``json``, or orjson when installed.

Both paths write the same JSON for what the SDK sends: numpy scalars and arrays as numbers
and lists (duck-typed: anything with ``.tolist()`` or ``.item()``; numpy is never imported
here), date-times as ISO 8601 strings, and NaN, inf and -inf as ``null`` (a missing value to
the collector; ``json`` alone would write the non-JSON token ``NaN``). What neither can encode
raises one of ``ENCODE_ERRORS``.

>>> dumps({"x": 1.5, "y": float("nan"), "z": [float("inf"), 2]})
b'{"x":1.5,"y":null,"z":[null,2]}'
>>> try:
...     dumps({"x": object()})
... except ENCODE_ERRORS:
...     print("not encodable")
not encodable
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from typing import Any

# TypeError: an object neither path can encode (orjson.JSONEncodeError is a TypeError);
# ValueError: a string with a lone surrogate (not UTF-8) or a circular reference;
# RecursionError: nesting deeper than the encoder goes
ENCODE_ERRORS = (TypeError, ValueError, RecursionError)

_MAX_DEPTH = 254  # orjson's limit
_CHUNK = 50  # list elements per call of the C encoder (it holds the GIL while it runs)
_backend: Callable[[Any], bytes] | None = None


def _default(value: Any) -> Any:
    """What a numpy array or scalar, a date-time or an enum is in JSON; TypeError otherwise."""
    for method in ("tolist", "item", "isoformat"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default
)


def _finite(value: Any, depth: int = 0) -> Any:
    """``value`` with every non-finite float (inside numpy values too) replaced by None."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, dict):
        return {k: _finite(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, depth + 1) for v in value]
    if value is None or isinstance(value, int):
        return value
    try:
        converted = _default(value)
    except TypeError:
        return value  # the encoder raises for it
    return _finite(converted, depth + 1)


def _encode(value: Any) -> str:
    try:
        return _encoder.encode(value)
    except ValueError:  # NaN or ±inf somewhere (the fast path refuses them): null, as orjson
        return _encoder.encode(_finite(value))


def stdlib_dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON with the standard library.

    The lists in a body (the events of a request) are encoded ``_CHUNK`` elements at a time:
    the C encoder holds the GIL for as long as it runs, and one call for a whole batch of 500
    events would keep the model's threads waiting for several milliseconds.

    >>> stdlib_dumps({"a": [1, 2.5, None, True, float("-inf")], "b": "é"}).decode()
    '{"a":[1,2.5,null,true,null],"b":"é"}'
    """
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return _encode(value).encode()
    parts = []
    for key, item in value.items():
        if isinstance(item, list) and len(item) > _CHUNK:
            chunks = [_encode(item[i : i + _CHUNK])[1:-1] for i in range(0, len(item), _CHUNK)]
            item_text = "[" + ",".join(chunks) + "]"
        else:
            item_text = _encode(item)
        parts.append(_encode(key) + ":" + item_text)
    return ("{" + ",".join(parts) + "}").encode()  # a lone surrogate: UnicodeEncodeError


def orjson_dumps() -> Callable[[Any], bytes] | None:
    """orjson's ``dumps`` with the same conversions, or None when orjson is not installed."""
    try:
        import orjson
    except ImportError:
        return None
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=_default, option=option)

    return dumps


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes, through orjson when it is installed (imported on first use)."""
    global _backend
    if _backend is None:
        _backend = orjson_dumps() or stdlib_dumps
    return _backend(value)
