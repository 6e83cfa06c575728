"""The SQLite store's named locks (a conversation's, an erasure's ``erasing-…``), held across the processes on one
file: the server and a ``gateway erase``, ``gateway purge`` or ``gateway erase --again`` run beside it.

Inside a process, :class:`~gateway.store.local.LocalLocks` orders the tasks. Across processes, the holder also has
an exclusive ``fcntl`` lock on one byte of the lock file beside the database (``<file>-locks``, created 0600),
the byte chosen by a hash of the lock's name (56 bits: two names sharing a byte are not expected; within a process
a count per byte keeps it held until its last holder lets go). An open-file-description lock (``F_OFD_SETLK``,
Linux; elsewhere ``lockf``): the kernel gives it back when its holder's file is closed, so also when the process
dies, ``kill -9`` or an OOM kill included, with no lease to expire or renew (a row in a locks table would stay
taken until its lease ran out, and a long erasure would have to renew it). Taken without blocking the event loop:
tried at once, then again every few milliseconds (at most 50) until the timeout, ``LockTimeout`` then.

Since 2026-12-07. Until then the locks held in this process only: ``gateway erase`` in a shell beside the running
server erased a young person while the server's own erasure of them ("J'efface tout", confirmed) ran (two audit
lines, the second for nothing), or while a message of theirs was being written (kept after the erasure).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import struct
from pathlib import Path

from gateway.errors import LockTimeout
from gateway.store.local import LocalLocks

_OFD = getattr(fcntl, "F_OFD_SETLK", None)  # Linux: held by the open file, not the process
_FLOCK = "hhqqi"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for an open-file-description lock)
_BUSY = {errno.EAGAIN, errno.EACCES}
FIRST_WAIT = 0.002  # seconds between tries at first, doubled up to LAST_WAIT
LAST_WAIT = 0.05


def lock_file_of(database: Path) -> Path:
    return database.with_name(database.name + "-locks")


OPEN = 0  # the byte every process with the store open holds shared (``FileLocks``), ``in_use`` tries exclusive


def _offset(name: str) -> int:
    return 1 + int.from_bytes(hashlib.blake2b(name.encode(), digest_size=7).digest(), "big")  # never ``OPEN``


def _flock(fd: int, kind: int, offset: int, *, wait: bool = False) -> bool:
    """One byte of the lock file locked (``kind``: ``F_WRLCK``, ``F_RDLCK``) or let go (``F_UNLCK``); False when
    another holds it (unless ``wait``: then waited for)."""
    try:
        if _OFD is not None:
            command = fcntl.F_OFD_SETLKW if wait else _OFD
            fcntl.fcntl(fd, command, struct.pack(_FLOCK, kind, os.SEEK_SET, offset, 1, 0))
        else:  # pragma: no cover - not Linux
            how = {fcntl.F_WRLCK: fcntl.LOCK_EX, fcntl.F_RDLCK: fcntl.LOCK_SH}.get(kind, fcntl.LOCK_UN)
            fcntl.lockf(fd, how if wait or how == fcntl.LOCK_UN else how | fcntl.LOCK_NB, 1, offset)
    except OSError as error:
        if error.errno in _BUSY:
            return False
        raise
    return True


def in_use(database: Path) -> bool:
    """Whether another process has this SQLite store open (the gateway running, a command): it holds ``OPEN``
    shared as long as it does (``FileLocks``), so an exclusive lock on it is refused. Since 2026-12-07, for
    ``gateway data-key rotate`` with the embedded key file, which must run with the gateway stopped."""
    path = lock_file_of(database)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        if not _flock(fd, fcntl.F_WRLCK, OPEN):
            return True
        _flock(fd, fcntl.F_UNLCK, OPEN)
        return False
    finally:
        os.close(fd)


class FileLocks:
    """Named locks held within this process (:class:`LocalLocks`) and across the processes on the same file."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _flock(self._fd, fcntl.F_RDLCK, OPEN, wait=True)  # the store open here (``in_use``): an instant's wait at most
        self._local = LocalLocks()
        self._holders: dict[int, int] = {}  # byte -> holders in this process (two names on one byte: not expected)

    def __len__(self) -> int:
        return len(self._local)

    def close(self) -> None:
        """Every lock of this store given back (the file closed)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def lock(self, name: str, timeout: float) -> _FileHeld:
        """Held inside the block; ``LockTimeout`` after ``timeout`` seconds of waiting, here or for another process."""
        return _FileHeld(self, name, timeout)

    def _try(self, offset: int, kind: int) -> bool:
        return _flock(self._fd, kind, offset)

    async def _take(self, name: str, offset: int, deadline: float) -> None:
        if self._holders.get(offset):  # this process holds the byte already (another name on it)
            self._holders[offset] += 1
            return
        loop, wait = asyncio.get_running_loop(), FIRST_WAIT
        while not self._try(offset, fcntl.F_WRLCK):
            left = deadline - loop.time()
            if left <= 0:
                raise LockTimeout(f"timed out waiting for the lock of conversation {name} (held by another process)")
            await asyncio.sleep(min(wait, left))
            wait = min(wait * 2, LAST_WAIT)
            if self._holders.get(offset):  # taken by a task of this process meanwhile (another name on it)
                break
        self._holders[offset] = self._holders.get(offset, 0) + 1

    def _give_back(self, offset: int) -> None:
        left = self._holders[offset] - 1
        if left:
            self._holders[offset] = left
            return
        del self._holders[offset]
        if self._fd >= 0:
            self._try(offset, fcntl.F_UNLCK)


class _FileHeld:
    __slots__ = ("_local", "_locks", "_name", "_offset", "_timeout")

    def __init__(self, locks: FileLocks, name: str, timeout: float) -> None:
        self._locks, self._name, self._timeout = locks, name, timeout
        self._local = locks._local.lock(name, timeout)
        self._offset = _offset(name)

    async def __aenter__(self) -> None:
        deadline = asyncio.get_running_loop().time() + self._timeout
        await self._local.__aenter__()
        try:
            await self._locks._take(self._name, self._offset, deadline)
        except BaseException:
            await self._local.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            self._locks._give_back(self._offset)
        finally:
            await self._local.__aexit__(None, None, None)
