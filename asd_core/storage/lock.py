"""Workspace locks, all ``flock``s that die with their process (no stale locks after a crash).

``.pipeline.lock``: one pipeline run per workspace at a time; a second run refuses at once,
naming the holder, instead of interleaving publishes with the first. A process holding it may
lend it to the runs nested in it (``asd demo`` holds it while writing its data, then runs the pipeline).
``.users.lock``: every ``asd`` command holds it shared while it uses the workspace, so the
start-up of another can tell when no other process is using it (storage/cleanup.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from asd_core.config import Workspace


class WorkspaceBusyError(RuntimeError):
    """Another pipeline run holds the workspace."""


_lent: set[Path] = set()  # pipeline locks this process holds with ``lend=True``


def lock_path(ws: Workspace) -> Path:
    return ws.root / ".pipeline.lock"


def users_lock_path(ws: Workspace) -> Path:
    return ws.root / ".users.lock"


@contextmanager
def workspace_lock(ws: Workspace, owner: str = "", lend: bool = False) -> Iterator[Path]:
    """Hold the workspace for the block; raise ``WorkspaceBusyError`` if another holder has it.

    ``lend=True``: a ``workspace_lock`` nested in this one, in this process (the pipeline run of
    ``asd demo``), takes it again instead of refusing; otherwise even this process is refused.
    """
    ws.root.mkdir(parents=True, exist_ok=True)
    path = lock_path(ws)
    if path in _lent:  # nested in a lending holder of this process, which releases it
        yield path
        return
    busy = lambda holder: WorkspaceBusyError(  # noqa: E731
        f"workspace {ws.root} is in use by another pipeline run ({holder}); wait for it to finish or use another --workspace")
    with exclusive_lock(path, owner, busy):
        if lend:
            _lent.add(path)
        try:
            yield path
        finally:
            _lent.discard(path)


@contextmanager
def exclusive_lock(path: Path, owner: str, busy: Callable[[str], Exception]) -> Iterator[Path]:
    """Hold ``path`` exclusively for the block, recording pid, start time and ``owner`` in it; when
    another process holds it, raise ``busy(holder description)`` at once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(_read_holder(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "owner": owner}).encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def pipeline_running(ws: Workspace) -> bool:
    """Whether any process, this one included, holds the pipeline lock (a probe; holds nothing)."""
    path = lock_path(ws)
    if not path.exists():
        return False
    with _flock(path, fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
        return not got


@contextmanager
def workspace_in_use(ws: Workspace) -> Iterator[bool]:
    """Mark the workspace as used by this process for the block (shared lock on ``.users.lock``).

    Yields False, holding nothing, where the lock file cannot be opened (a read-only workspace).
    Blocks only while a start-up cleanup holds the lock exclusively (milliseconds).
    """
    with _flock(users_lock_path(ws), fcntl.LOCK_SH) as got:
        yield got


@contextmanager
def sole_user(ws: Workspace) -> Iterator[bool]:
    """Try to hold ``.users.lock`` exclusively, without waiting: True when no other process (and no
    other ``workspace_in_use`` of this one) is using the workspace; held for the block."""
    with _flock(users_lock_path(ws), fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
        yield got


@contextmanager
def _flock(path: Path, operation: int) -> Iterator[bool]:
    """``flock(operation)`` on a fresh descriptor of ``path`` for the block; yields whether it was granted."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield False
            return
    try:
        try:
            fcntl.flock(fd, operation)
        except (BlockingIOError, OSError):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "holder unknown"
    owner = f", {info['owner']}" if info.get("owner") else ""
    return f"pid {info.get('pid')}, started {info.get('since')}{owner}"
