"""A serving replica's resource report: the optional ``resources`` of a predictions body.

>>> validate_resources({"resources": {"replica": "pod-1", "cpu_ratio": 0.5}}).cpu_ratio
0.5
>>> validate_resources({"resources": {"replica": "pod 1"}})
Traceback (most recent call last):
...
modelmeter.service.ingest.IngestError: 'resources.replica' must match [A-Za-z0-9_.:-]{1,64}, ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from modelmeter.names import NAME_PATTERNS, is_name
from modelmeter.service.ingest import IngestError, is_number, show

__all__ = ["Resources", "validate_resources"]

_REPLICA = NAME_PATTERNS["replica"].pattern  # in messages
_VERSION = NAME_PATTERNS["version"].pattern


@dataclass(frozen=True)
class Resources:
    """Per-request resource report of the serving replica."""

    replica: str
    cpu_ratio: float | None
    memory_bytes: float | None
    version: str | None
    #: events the SDK of this replica dropped since it started, ``kind -> count`` (cumulative)
    dropped: Mapping[str, int] = dataclasses.field(default_factory=dict)


def validate_resources(doc: Any) -> Resources | None:
    """The optional ``resources`` object of a predictions body (422 if malformed)."""
    if not isinstance(doc, dict) or doc.get("resources") is None:
        return None
    res = doc["resources"]
    if not isinstance(res, dict):
        raise IngestError(422, "'resources' must be an object {replica, cpu_ratio, memory_bytes}")
    replica = res.get("replica")
    if not is_name("replica", replica):
        raise IngestError(422, f"'resources.replica' must match {_REPLICA}, got {show(replica)}")
    cpu = res.get("cpu_ratio")
    if cpu is not None and not (is_number(cpu) and 0.0 <= float(cpu) <= 4096.0):
        raise IngestError(422, f"'resources.cpu_ratio' must be a number >= 0, got {show(cpu)}")
    mem = res.get("memory_bytes")
    if mem is not None and not (is_number(mem) and 0.0 <= float(mem) <= 2.0**60):
        raise IngestError(422, f"'resources.memory_bytes' must be a number >= 0, got {show(mem)}")
    version = res.get("version")
    if version is not None and not is_name("version", version):
        raise IngestError(422, f"'resources.version' must match {_VERSION}")
    dropped_raw = res.get("dropped")
    dropped: dict[str, int] = {}
    if dropped_raw is not None:
        if not isinstance(dropped_raw, dict) or not set(dropped_raw) <= {"predictions", "labels"}:
            raise IngestError(
                422, "'resources.dropped' must be an object {predictions: n, labels: n}"
            )
        for kind, count in dropped_raw.items():
            if type(count) is not int or not 0 <= count < 2**53:
                raise IngestError(
                    422, f"'resources.dropped.{kind}' must be an integer >= 0, got {show(count)}"
                )
            dropped[kind] = count
    return Resources(
        cast(str, replica),  # checked by is_name
        None if cpu is None else float(cpu),
        None if mem is None else float(mem),
        version,
        dropped,
    )
