"""Validate a model spec and its reference data.

``modelmeter check-spec FILE`` loads the spec (YAML or JSON), reads and checks the
reference file it names, and builds the engine's monitor from them, exactly as the
collector does on ``PUT /v1/models/{model}``. It prints a summary and exits 0 when all is
well; it prints every problem, with its field path, and exits 1 otherwise.

Example::

    $ modelmeter check-spec examples/binary-spec.yaml
    examples/binary-spec.yaml: OK
      task        binary, classes 'benign', 'malignant' (positive 'malignant')
      ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelmeter.spec import (
    DEFAULT_THRESHOLDS,
    ModelSpec,
    SpecError,
    load_reference,
    load_spec,
)
from modelmeter.units import format_duration

if TYPE_CHECKING:
    from modelmeter.engine import ReferenceData

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``check-spec`` arguments."""
    parser.add_argument("file", type=Path, metavar="FILE", help="model spec, YAML or JSON")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="DATA",
        help="reference CSV or Parquet to use instead of the spec's reference.path",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="check the spec only, not its reference data"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the normalized spec as JSON when it is valid"
    )


def run(args: argparse.Namespace) -> int:
    """Check the spec; 0 when valid, 1 when not (problems go to stderr)."""
    file: Path = args.file
    try:
        spec = load_spec(file)
        rows = None
        source = None
        if not args.no_reference:
            data = None
            if args.reference is None and spec.reference.path is None:
                raise SpecError(
                    [
                        (
                            "reference.path",
                            "not set: name the reference file in the spec, pass "
                            "--reference DATA, or check the spec alone with --no-reference",
                        )
                    ]
                )
            if args.reference is not None:
                try:
                    data = args.reference.read_bytes()
                except OSError as exc:
                    print(f"{args.reference}: cannot read: {exc.strerror}", file=sys.stderr)
                    return 1
            reference = load_reference(spec, data=data)
            _build_monitor(spec, reference)
            rows = len(reference.labels)
            source = str(args.reference) if args.reference is not None else spec.reference.path
    except SpecError as error:
        print(f"{file}: {len(error.problems)} problem(s)", file=sys.stderr)
        for path, message in error.problems:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(spec.to_dict(), indent=2))
    else:
        print(f"{file}: OK")
        print(_summary(spec, source, rows))
    return 0


def _build_monitor(spec: ModelSpec, reference: ReferenceData) -> None:
    """Fit the engine on the reference, as the collector will; engine errors become SpecErrors."""
    from modelmeter.engine import ModelMonitor

    try:
        ModelMonitor(spec.monitor_config(), reference)
    except ValueError as exc:
        raise SpecError([("reference", f"the engine cannot fit this reference: {exc}")]) from None


def _summary(spec: ModelSpec, source: str | None, rows: int | None) -> str:
    lines: list[tuple[str, str]] = []
    task: str = spec.task
    if spec.classes:
        task += ", classes " + ", ".join(repr(c) for c in spec.classes)
    if spec.positive_class is not None:
        task += f" (positive {spec.positive_class!r})"
    lines.append(("task", task))
    numeric = sum(f.kind == "numeric" for f in spec.features)
    lines.append(
        (
            "features",
            f"{len(spec.features)} ({numeric} numeric, {len(spec.features) - numeric} categorical)",
        )
    )
    if rows is not None:
        lines.append(("reference", f"{source}: {rows} rows"))
    buckets = int(spec.window_seconds // spec.bucket_seconds)
    lines.append(
        (
            "window",
            f"{format_duration(spec.window_seconds)} in {buckets} buckets of "
            f"{format_duration(spec.bucket_seconds)}; min_samples {spec.min_samples}",
        )
    )
    performance = int(spec.performance_window_seconds // spec.performance_bucket_seconds)
    lines.append(
        (
            "performance",
            f"{format_duration(spec.performance_window_seconds)} in {performance} buckets of "
            f"{format_duration(spec.performance_bucket_seconds)} (realized figures, by label "
            "arrival)",
        )
    )
    changed = {k: v for k, v in spec.thresholds.items() if v != DEFAULT_THRESHOLDS[k]}
    lines.append(
        ("thresholds", ", ".join(f"{k}={v:g}" for k, v in changed.items()) or "the defaults")
    )
    return "\n".join(f"  {key:<11} {value}" for key, value in lines)
