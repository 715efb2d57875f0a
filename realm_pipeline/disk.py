"""Free space before a write, and a full disk named as such after one (pure: no Dagster, no torch).

A step that writes much (a segment's checkpoint and resume save, the mirror) checks the free space of
its file system against what it will write and refuses with the numbers (`require_free`). A write that
fails anyway (another process filled the disk meanwhile) raises DiskFull, one line naming ENOSPC and the
path; `disk_full_line` recognises a full disk behind any library's error (OSError errno, DuckDB's "No
space left on device", SQLite's SQLITE_FULL, or SQLite's bare "disk I/O error" on a file system with no
space left), so a person reads "disk full" rather than a storage engine's wording.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# What realm's own messages and the storage engines say about a full disk: a run that failed with one
# of these is waited on until space is free, then retried by itself (decision.decide_next).
DISK_FULL_TEXT = re.compile(
    r"\bENOSPC\b|\bEDQUOT\b|no space left on device|database or disk is full|disk quota exceeded"
    r"|not enough free space",
    re.IGNORECASE,
)
# SQLite says only "disk I/O error" when a journal or WAL write hits a full disk: named disk full when
# the file system it writes to has less than this left.
NEARLY_FULL_BYTES = 1 << 20


class DiskFull(OSError):
    """Not enough free space for a write (refused before it), or a write that failed with ENOSPC."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def existing_ancestor(path: Path | str) -> Path:
    """`path`, or its nearest ancestor that exists (where a directory about to be made will live)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: Path | str) -> int:
    """Bytes free to an unprivileged writer on the file system that holds (or will hold) `path`."""
    return shutil.disk_usage(existing_ancestor(path)).free


def tree_bytes(path: Path | str) -> int:
    """Bytes in the files under `path` (0 if it does not exist)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


def human(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable


def require_free(path: Path | str, needed: int, what: str, *, remedy: str = "") -> int:
    """Raise DiskFull, with the numbers, when `path`'s file system has fewer than `needed` bytes free;
    returns the bytes free."""
    free = free_bytes(path)
    if free < needed:
        raise DiskFull(
            f"{what}: not enough free space to write {Path(path).absolute()}: needs {needed} bytes "
            f"({human(needed)}), {free} bytes free ({human(free)})" + (f"; {remedy}" if remedy else "")
        )
    return free


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def disk_full_line(exc: BaseException, paths: tuple[Path | str, ...] = ()) -> str | None:
    """One line saying the disk is full, when `exc` (or what caused it) is a full disk; else None.

    `paths` are the files the failed operation wrote to: a bare SQLite "disk I/O error" counts as a full
    disk when one of their file systems has (nearly) no space left, which is what SQLite's errno said.
    """
    for e in _chain(exc):
        if isinstance(e, DiskFull):
            return str(e)
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            where = f" writing {e.filename}" if e.filename else ""
            return f"disk full ({errno.errorcode[e.errno]}){where}: {e.strerror or e}"
        text = str(e)
        name = f"{type(e).__module__.split('.')[0]}.{type(e).__name__}".lstrip("_")
        if DISK_FULL_TEXT.search(text) or getattr(e, "sqlite_errorname", None) == "SQLITE_FULL":
            return f"disk full (ENOSPC): {name}: {text.splitlines()[0] if text else ''}"
        if "disk i/o error" in text.lower():
            for p in paths:
                with contextlib.suppress(OSError):  # a path that cannot be inspected names no full disk
                    free = free_bytes(p)
                    if free < NEARLY_FULL_BYTES:
                        return (
                            f"disk full (ENOSPC) on {existing_ancestor(p)} ({free} bytes free): "
                            f"{name}: {text.splitlines()[0]}"
                        )
    return None


def failed_write_line(exc: BaseException, path: Path | str) -> str | None:
    """`disk_full_line`, or, for a write to `path` that failed in a way its library does not name (torch's
    "file write failed"), a full-disk line when `path`'s file system has (nearly) nothing left."""
    line = disk_full_line(exc, (path,))
    if line is not None or not isinstance(exc, Exception):
        return line
    with contextlib.suppress(OSError):
        free = free_bytes(path)
        if free < NEARLY_FULL_BYTES:
            first = (str(exc).splitlines() or [""])[0]
            return f"disk full (ENOSPC) writing {path} ({free} bytes free): {type(exc).__name__}: {first}"
    return None
