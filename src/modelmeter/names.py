"""The names modelmeter accepts, in one place: models, versions, replicas, features.

Every check is a *full* match (``"m\\n"`` is no model name) and every name is short ASCII, so a
name is always safe as a URL segment, a file name and a Prometheus label value. Stdlib only.

>>> is_name("model", "churn-v2"), is_name("model", "churn\\n"), is_name("version", "1.2:rc1")
(True, False, True)
>>> is_name("feature", "2x"), is_name("feature", "age"), is_name("replica", "pod-7:1234")
(False, True, True)
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["NAME_PATTERNS", "NameKind", "is_name", "name_rule"]

NameKind = Literal["model", "version", "replica", "feature"]

#: The pattern of each kind of name (always used with ``fullmatch``).
NAME_PATTERNS: dict[NameKind, re.Pattern[str]] = {
    "model": re.compile(r"[A-Za-z0-9_.-]{1,64}"),
    "version": re.compile(r"[A-Za-z0-9_.:-]{1,64}"),
    "replica": re.compile(r"[A-Za-z0-9_.:-]{1,64}"),
    "feature": re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"),
}

_RULES: dict[NameKind, str] = {
    "model": "1 to 64 characters from A-Z a-z 0-9 _ . -",
    "version": "1 to 64 characters from A-Z a-z 0-9 _ . : -",
    "replica": "1 to 64 characters from A-Z a-z 0-9 _ . : -",
    "feature": "a letter or _ then up to 63 characters from A-Z a-z 0-9 _ . -",
}


def is_name(kind: NameKind, value: object) -> bool:
    """Whether ``value`` is a valid name of this kind (a ``str`` that fully matches)."""
    return isinstance(value, str) and NAME_PATTERNS[kind].fullmatch(value) is not None


def name_rule(kind: NameKind) -> str:
    """What a name of this kind may be, for error messages.

    >>> name_rule("model")
    '1 to 64 characters from A-Z a-z 0-9 _ . -'
    """
    return _RULES[kind]
