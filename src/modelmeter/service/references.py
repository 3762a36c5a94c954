"""Reading a registered spec's ``reference.path`` on the collector.

A path in a request is untrusted. The collector reads it only

- from the configured reference directory (``MODELMETER_REFERENCE_DIR``; unset, a path is
  refused and the file must be uploaded as the multipart field ``reference``),
- when it resolves, symlinks followed, inside that directory (:func:`modelmeter.paths.confine`),
- when it is a regular file (never a device such as ``/dev/zero``, a FIFO, a socket or a
  directory): checked before opening and again on the opened descriptor, which is opened
  with ``O_NONBLOCK`` so that a FIFO never blocks,
- and up to ``MODELMETER_MAX_REFERENCE_BYTES``: checked with ``fstat`` and enforced by
  reading at most one byte more, so a file growing meanwhile is still capped.

Every refusal is a :class:`~modelmeter.spec.SpecError` (422) with one message for "does not
exist", "not a regular file", "permission denied" and "outside the directory": it names no
resolved path and no OS error, so a request learns nothing about the file system. Only the
size refusal differs, naming the limit and its setting.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "ref.csv").write_bytes(b"x\\n1\\n")
>>> read_confined(root, "ref.csv", limit=100)
b'x\\n1\\n'
>>> read_confined(root, "/dev/zero", limit=100)
Traceback (most recent call last):
...
modelmeter.spec.SpecError: reference.path: not a readable regular file inside ...
>>> read_confined(root, "ref.csv", limit=2)
Traceback (most recent call last):
...
modelmeter.spec.SpecError: reference.path: larger than the limit of 2 bytes ...
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelmeter.paths import confine
from modelmeter.settings import Settings
from modelmeter.spec import ModelSpec, SpecError

__all__ = ["read_confined", "read_reference"]

_FIELD = "reference.path"
_UNREADABLE = (
    "not a readable regular file inside the collector's reference directory "
    "(MODELMETER_REFERENCE_DIR); upload the file instead (multipart field 'reference')"
)
_NO_DIRECTORY = (
    "this collector reads no reference files (MODELMETER_REFERENCE_DIR is unset); upload "
    "the file as multipart field 'reference', or set MODELMETER_REFERENCE_DIR on the "
    "collector and put the file there"
)
_CHUNK = 1024 * 1024
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


def read_reference(spec: ModelSpec, settings: Settings) -> tuple[bytes, str]:
    """The bytes and file name of ``spec.reference.path``, as the collector may read them.

    Raises :class:`SpecError` (422) when there is no path, no reference directory, or the
    path is not a regular file inside it of at most ``settings.max_reference_bytes``.
    """
    if spec.reference.path is None:
        raise SpecError(
            [
                (
                    _FIELD,
                    "no reference data: upload the file (multipart field 'reference') or give "
                    "reference.path inside the collector's MODELMETER_REFERENCE_DIR",
                )
            ]
        )
    if settings.reference_dir is None:
        raise SpecError([(_FIELD, _NO_DIRECTORY)])
    data = read_confined(
        settings.reference_dir, spec.reference.path, limit=settings.max_reference_bytes
    )
    return data, Path(spec.reference.path).name or "reference"


def read_confined(root: str | os.PathLike[str], path: str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` inside ``root``, at most ``limit`` of them.

    Raises :class:`SpecError` with the same message whatever the reason a file cannot be
    read (missing, outside ``root``, not a regular file, no permission), and a message naming
    ``limit`` and MODELMETER_MAX_REFERENCE_BYTES when it is larger.
    """
    resolved = confine(root, path)
    try:
        # Look before opening: a device or FIFO is refused without being opened at all.
        if resolved is None or not stat.S_ISREG(os.stat(resolved).st_mode):
            raise _unreadable()
        fd = os.open(resolved, _OPEN_FLAGS)
    except OSError:
        raise _unreadable() from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _still_inside(fd, root):
            raise _unreadable()
        if info.st_size > limit:
            raise _too_large(limit)
        data = _read_at_most(fd, limit + 1)
    except OSError:
        raise _unreadable() from None
    finally:
        os.close(fd)
    if len(data) > limit:  # the file grew after fstat
        raise _too_large(limit)
    return data


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, min(_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _still_inside(fd: int, root: str | os.PathLike[str]) -> bool:
    """The opened file is inside ``root`` (Linux: its ``/proc/self/fd`` link), so a directory
    swapped for a symlink between :func:`confine` and ``open`` is caught; elsewhere True."""
    link = f"/proc/self/fd/{fd}"
    try:
        target = os.readlink(link)
    except OSError:
        return True
    return Path(target).is_relative_to(Path(root).resolve())


def _unreadable() -> SpecError:
    return SpecError([(_FIELD, _UNREADABLE)])


def _too_large(limit: int) -> SpecError:
    return SpecError(
        [
            (
                _FIELD,
                f"larger than the limit of {limit} bytes (MODELMETER_MAX_REFERENCE_BYTES); "
                "raise the limit on the collector or send a smaller reference sample",
            )
        ]
    )
