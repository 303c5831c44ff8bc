"""Files that a kill or a full disk cannot corrupt: the atomic write, and text, JSON and CSV written with it.

Every file is written to a temporary name in the same folder, flushed and fsynced, then moved over the
old one with ``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced so the rename itself
survives a crash. Any failure (a kill, ENOSPC) leaves the previous file as it was. A full disk is reported
as ``OSError(ENOSPC)`` whatever the writer raised: torch.save's zip writer reports it as a RuntimeError
("[enforce fail at inline_container.cc] . unexpected pos ..."), safetensors as its own SafetensorError.
The written file gets the mode a plain ``open()`` would give it (0666 less the umask), not the private
mode some writers give their files.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

# Writers that do not raise OSError name a full disk in their message (safetensors: Rust's io::Error).
_FULL_DISK_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
# Below this much free space after a failed write, the write failed because the disk is full.
_FULL_BELOW_BYTES = 1 << 20


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # directories cannot be opened for fsync on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it and set it back
    os.umask(mask)
    return mask


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether ``error``, raised while writing into ``folder`` (its partial file still there), means a full disk.

    True for ENOSPC / EDQUOT, for a writer's message naming them, and for a RuntimeError or OSError while
    the folder's file system has (almost) no space left.
    """
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if any(text in str(error).lower() for text in _FULL_DISK_TEXT):
        return True
    # A RuntimeError is what torch's C++ writers raise for a failed write; a Python error (TypeError, ...)
    # is a bug in the writer, whatever the free space.
    if isinstance(error, RuntimeError | OSError) and hasattr(os, "statvfs"):
        with contextlib.suppress(OSError):
            st = os.statvfs(folder)
            return st.f_bavail * st.f_frsize < _FULL_BELOW_BYTES
    return False


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp_path)`` and moves the result to ``path`` atomically; on failure ``path`` is untouched.

    Raises:
        OSError: the write failed with an OS error, or any error on a full disk (then ``errno.ENOSPC``);
            the message says whether the previous file is intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        full = isinstance(e, Exception) and disk_full(e, path.parent)  # before the partial file goes
        with contextlib.suppress(OSError):
            tmp.unlink()
        if full or isinstance(e, OSError):
            what = "out of disk space" if full else f"{type(e).__name__}: {e}"
            kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
            code = errno.ENOSPC if full else e.errno
            raise OSError(code, f"saving {path} failed ({what}); {kept}") from e
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically (a kill or a full disk leaves the previous file)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, value) -> Path:
    """Writes ``value`` as indented JSON, atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    """Writes ``rows`` as CSV with ``columns`` (lists joined with spaces, missing values empty), atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for row in rows:
                w.writerow([_cell(row.get(c)) for c in columns])

    return atomic_write(path, write)


def _cell(value: object) -> object:
    if isinstance(value, list):
        return " ".join(f"{x:g}" for x in value)
    return "" if value is None else value
