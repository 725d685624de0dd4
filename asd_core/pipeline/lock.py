"""One pipeline run per workspace at a time: an exclusive ``flock`` on ``<workspace>/.pipeline.lock``.

The lock dies with its process (no stale locks after a crash); a second run refuses at
once, naming the holder, instead of interleaving publishes with the first.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from asd_core.config import Workspace


class WorkspaceBusyError(RuntimeError):
    """Another pipeline run holds the workspace."""


def lock_path(ws: Workspace) -> Path:
    return ws.root / ".pipeline.lock"


@contextmanager
def workspace_lock(ws: Workspace, owner: str = "") -> Iterator[Path]:
    """Hold the workspace for the block; raise ``WorkspaceBusyError`` if another run holds it."""
    ws.root.mkdir(parents=True, exist_ok=True)
    path = lock_path(ws)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            raise WorkspaceBusyError(
                f"workspace {ws.root} is in use by another pipeline run ({holder}); wait for it to finish "
                f"or use another --workspace") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "owner": owner}).encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
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
