"""Bearer-token scopes: ``write`` (ingestion, registration) and ``read`` (JSON API, /metrics).

Tokens are compared with :func:`hmac.compare_digest` (constant time). With no write tokens
configured, writes are open; with no read tokens configured, reads are open. A write token is
also accepted where a read token is required.

>>> check_token("Bearer s3cret", ("s3cret",), "write") is None
True
>>> check_token(None, ("s3cret",), "write").status
401
>>> check_token("Bearer nope", ("s3cret",), "write").status
403
>>> check_token("Bearer caf\xc3\xa9", ("café",), "write") is None  # UTF-8 bytes, as sent
True
>>> check_token("Bearer ünïcödé", ("s3cret",), "write").status
403
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from modelmeter.service.ingest import IngestError

__all__ = ["check_token"]


def _wire_bytes(value: str) -> bytes:
    """The bytes a header value arrived as: ASGI servers decode headers as latin-1, so a
    token sent in UTF-8 (non-ASCII) is compared byte for byte with the UTF-8 of a configured
    one; never a TypeError, whatever the characters."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from a header: a str built in Python
        return value.encode("utf-8", "surrogatepass")


def _matches(token: str, allowed: Sequence[str]) -> bool:
    given = _wire_bytes(token)
    found = False
    for candidate in allowed:  # no early exit: the time does not tell which token matched
        found |= hmac.compare_digest(given, candidate.encode("utf-8", "surrogatepass"))
    return found


def check_token(header: str | None, allowed: Sequence[str], scope: str) -> IngestError | None:
    """``None`` when ``header`` (the Authorization value) grants ``scope``, else the 401/403.

    ``allowed`` empty means the scope is open.
    """
    if not allowed:
        return None
    if not header:
        return IngestError(
            401,
            f"this endpoint needs a {scope} token: send 'Authorization: Bearer <token>' "
            f"(tokens are set with MODELMETER_{scope.upper()}_TOKENS)",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return IngestError(401, "the Authorization header must be 'Bearer <token>'")
    if not _matches(token.strip(), allowed):
        return IngestError(403, f"the token does not grant {scope} access")
    return None
