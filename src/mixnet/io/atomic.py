"""Files that a kill or a full disk cannot corrupt.

Every file is written to a temporary name in the same folder, flushed and fsynced, then moved over the
old one with ``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced so the rename itself
survives a crash. Any failure (a kill, ENOSPC) leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # directories cannot be opened for fsync on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp_path)`` and moves the result to ``path`` atomically; on failure ``path`` is untouched.

    Raises:
        OSError: the write failed (the message says the previous file is intact; ENOSPC is named).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            what = "out of disk space" if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}"
            kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
            raise OSError(e.errno, f"saving {path} failed ({what}); {kept}") from e
        raise
    _fsync_dir(path.parent)
    return path
