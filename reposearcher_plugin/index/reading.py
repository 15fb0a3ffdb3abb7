"""Read a repository file with bounded cost: the index and the tools both read through ``read_source``.

The checks come before the bytes: the open never blocks (a FIFO would wait for a writer forever), only a
regular file is read, its size is checked before reading, and the binary probe reads the first bytes
only, so a 2 GiB file costs a stat and an 8 KiB read to refuse, never its size in memory.
"""

from __future__ import annotations

import os
import stat

BINARY_PROBE_BYTES = 8192  # a NUL in the first this many bytes makes a file binary (as git decides)
_CHUNK = 1 << 16
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


BINARY = "binary"
TOO_LARGE = "too large"
SPECIAL = "not a regular file"
UNREADABLE = "unreadable"


class NotReadable(Exception):
    """A file that is not read. ``kind`` is one of the constants above; ``reason`` is the skip reason the
    index records (``binary``, ``too large (...)``, ``not a regular file (FIFO)``, ``unreadable: ...``);
    ``detail`` is what the reason's parentheses or colon hold; ``size`` the stat's size when too large."""

    def __init__(self, kind: str, detail: str = "", size: int | None = None) -> None:
        reason = kind if not detail else f"{kind}: {detail}" if kind == UNREADABLE else f"{kind} ({detail})"
        super().__init__(reason)
        self.kind = kind
        self.detail = detail
        self.reason = reason
        self.size = size


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is, in the words a skip reason uses."""
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISCHR(mode):
        return "character device"
    return "unknown file type"


def read_source(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` of them.

    Raises ``NotReadable`` for anything else, before reading more than the binary probe where it can:
    a special file is never read, an over-``limit`` size is refused from the stat, and a file that grows
    past ``limit`` while being read is refused once ``limit`` bytes have been read.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        raise NotReadable(UNREADABLE, str(error.strerror)) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise NotReadable(SPECIAL, special_kind(info.st_mode))
        if info.st_size > limit:
            raise NotReadable(TOO_LARGE, f"{info.st_size} bytes > {limit}", info.st_size)
        head = os.read(descriptor, min(BINARY_PROBE_BYTES, limit + 1))
        if b"\0" in head:
            raise NotReadable(BINARY)
        chunks = [head]
        total = len(head)
        while head:
            # the stat's size is read in one call; more than it (a growing file) in bounded chunks
            head = os.read(descriptor, min(max(info.st_size - total, _CHUNK), limit + 1 - total))
            total += len(head)
            if total > limit:
                raise NotReadable(TOO_LARGE, f"more than {limit} bytes")
            chunks.append(head)
    except OSError as error:
        raise NotReadable(UNREADABLE, str(error.strerror)) from None
    finally:
        os.close(descriptor)
    return b"".join(chunks)
