"""Path confinement: the one rule for reading a file named by an untrusted request.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "ref.csv").write_bytes(b"x")
>>> confine(root, "../ref.csv") is None, confine(root, "ref.csv") == (root / "ref.csv").resolve()
(True, True)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["confine"]


def confine(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """``path`` (relative to ``root``, or absolute) resolved with its symlinks, if it exists
    and lies inside ``root`` (also resolved); else ``None``.

    The one confinement rule of reference paths: the collector
    (:func:`modelmeter.service.references.read_reference`) and
    ``load_reference(..., confine=True)`` both use it.
    """
    try:
        base = Path(root).resolve(strict=True)
        resolved = (base / path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte
        return None
    return resolved if resolved.is_relative_to(base) else None
