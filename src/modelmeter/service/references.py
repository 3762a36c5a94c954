"""Reading a registered spec's ``reference.path`` on the collector.

A path in a request is untrusted: it is read only from the configured reference directory,
only when it names a regular file, and only up to ``MODELMETER_MAX_REFERENCE_BYTES``.
"""

from __future__ import annotations

from pathlib import Path

from modelmeter.settings import Settings
from modelmeter.spec import ModelSpec, SpecError

__all__ = ["read_reference"]


def read_reference(spec: ModelSpec, settings: Settings) -> tuple[bytes, str]:
    """The bytes and file name of ``spec.reference.path``, as the collector may read them."""
    return _reference_bytes(spec, settings.reference_dir)


def _reference_bytes(spec: ModelSpec, reference_dir: Path | None) -> tuple[bytes, str]:
    """Read ``reference.path``: inside ``reference_dir`` if that is set, else any readable file."""
    if spec.reference.path is None:
        raise SpecError(
            [
                (
                    "reference.path",
                    "no reference data: give reference.path or upload the file "
                    "(multipart field 'reference')",
                )
            ]
        )
    path = Path(spec.reference.path)
    if reference_dir is not None:
        path = (reference_dir / path).resolve()
        if not path.is_relative_to(reference_dir.resolve()):
            raise SpecError(
                [
                    (
                        "reference.path",
                        f"{spec.reference.path!r} is outside the collector's reference directory "
                        "(MODELMETER_REFERENCE_DIR); put the file there or upload it "
                        "(multipart field 'reference')",
                    )
                ]
            )
    elif spec.base_dir is not None and not path.is_absolute():
        path = spec.base_dir / path
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        raise SpecError(
            [
                (
                    "reference.path",
                    f"the collector cannot read {str(path)!r}: {exc.strerror}; "
                    "give a path readable by the collector or upload the file",
                )
            ]
        ) from None
