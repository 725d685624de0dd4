"""Remove what killed commands left in a workspace, only where the writer is provably gone.

Two kinds of leftovers: temporaries of the atomic writes (storage/atomic.py; index folders of
scoring/index_store.py) and score partitions ``parquet/scores/run_id=<id>/`` written by a run
killed before it published its ``runs`` row. A temporary that names its writer goes once that
process is gone; anything else (an unnamed temporary, an orphan partition) only while no other
process uses the workspace (``.users.lock``) and no pipeline runs (``.pipeline.lock``).
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from asd_core.config import Workspace
from asd_core.storage.lock import pipeline_running, sole_user, workspace_in_use
from asd_core.storage.atomic import TempOwner, host_tag, temp_owner

logger = logging.getLogger("asd.cleanup")
SKIP_DIRS = {"mlflow"}  # MLflow's store manages its own files


def remove_leftovers(ws: Workspace) -> list[Path]:
    """Remove the dead writers' temporaries and orphan score partitions of ``ws``; the paths removed.

    A folder ``.old`` whose final folder is missing (killed between the two renames of a swap)
    is renamed back instead, so the last published version stays.
    """
    if not ws.root.is_dir():
        return []
    removed: list[Path] = []
    with sole_user(ws) as alone:
        quiet = alone and not pipeline_running(ws)  # no other process can be writing anything
        for path, owner in _temporaries(ws.root):
            if _writer_gone(owner) or (owner.pid is None and quiet):
                if _restore_or_remove(path, owner):
                    removed.append(path)
        if quiet:
            removed += _remove_orphan_partitions(ws)
    if removed:
        logger.info("removed %d leftovers of killed runs in %s: %s", len(removed), ws.root,
                    ", ".join(str(p.relative_to(ws.root)) for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
    return removed


@contextmanager
def workspace_session(root: str | Path | None, clean: bool = True) -> Iterator[list[Path]]:
    """What each ``asd`` command runs in: leftovers of dead runs removed first (unless ``clean`` is
    False, for commands that only read), then the workspace marked in use until the command ends.
    Yields the paths removed; no workspace (None, missing, not a folder) is left alone."""
    ws = Workspace(Path(root)) if root is not None else None
    if ws is None or not ws.root.is_dir():
        yield []
        return
    removed = remove_leftovers(ws) if clean else []
    with workspace_in_use(ws):
        yield removed


def _temporaries(root: Path) -> Iterator[tuple[Path, TempOwner]]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in list(dirs):
            owner = temp_owner(name)
            if owner is not None:
                dirs.remove(name)  # a temporary folder goes (or stays) whole
                yield here / name, owner
            elif name in SKIP_DIRS and here == root:
                dirs.remove(name)
        for name in files:
            if (owner := temp_owner(name)) is not None:
                yield here / name, owner


def _writer_gone(owner: TempOwner) -> bool:
    """True only for a writer of this machine whose process no longer exists."""
    if owner.pid is None or owner.host != host_tag() or owner.pid == os.getpid():
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _restore_or_remove(path: Path, owner: TempOwner) -> bool:
    """Put an ``.old`` folder back when its final folder is missing, else delete; True if deleted."""
    final = path.with_name(owner.final)
    try:
        if owner.kind == "old" and path.is_dir() and not final.exists():
            os.replace(path, final)
            logger.info("restored %s from %s (a swap was killed half-way)", final, path.name)
            return False
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except FileNotFoundError:  # removed meanwhile
        return False
    except OSError as exc:  # no permission (a read-only workspace): leave it
        logger.debug("could not remove %s: %s", path, exc)
        return False


def _remove_orphan_partitions(ws: Workspace) -> list[Path]:
    """``parquet/scores/run_id=<id>/`` folders whose run has no row in ``runs`` (killed before publishing)."""
    scores = ws.artifact_dir("scores")
    partitions = [p for p in scores.glob("run_id=*") if p.is_dir()] if scores.is_dir() else []
    if not partitions:
        return []
    published = _published_runs(ws)
    if published is None:
        return []  # no readable catalog: nothing proves a partition is an orphan
    orphans = [p for p in partitions if p.name.split("=", 1)[1] not in published]
    for p in orphans:
        shutil.rmtree(p, ignore_errors=True)
    return orphans


def _published_runs(ws: Workspace) -> set[str] | None:
    if not ws.duckdb_path.exists():
        return None
    import duckdb

    try:
        with duckdb.connect(str(ws.duckdb_path), read_only=True) as con:
            return {row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()}
    except duckdb.Error:  # locked by a writer outside asd, no runs table yet, damaged
        return None
