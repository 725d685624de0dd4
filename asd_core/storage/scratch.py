"""Disk-backed scratch matrices: a training set's clips in an unnamed temporary file of the workspace.

The teacher trains on every normal training clip and the student renders its mixtures from every
clean clip. Held in the process's own memory, those clips grow with the dataset (2.4 GB at the
`dcase` demo size; past the machine's RAM for months of recordings). Mapped from a file, they live
in the page cache instead: resident while there is room, dropped and re-read when there is not,
so the process's private memory stays flat in dataset size (issue 17 part 2). The file has no
name (``tempfile.TemporaryFile``: Linux's O_TMPFILE, elsewhere unlinked at once), so neither a
crash nor a kill leaves it behind; its blocks are reserved up front, so a full disk is a clear
error here rather than a SIGBUS at the first write into a page the disk cannot hold.
"""

from __future__ import annotations

import errno
import os
import tempfile
from typing import Iterable, Iterator

import numpy as np

from asd_core.config import Workspace

__all__ = ["ScratchClips", "scratch_clips", "scratch_matrix"]


def scratch_matrix(ws: Workspace, rows: int, cols: int, what: str = "clips") -> np.ndarray:
    """A zero-filled float32 [rows, cols] matrix backed by an unnamed file in the workspace."""
    if rows * cols == 0:
        return np.zeros((rows, cols), np.float32)
    ws.root.mkdir(parents=True, exist_ok=True)
    size = rows * cols * np.dtype(np.float32).itemsize
    with tempfile.TemporaryFile(dir=ws.root, prefix=".asd-scratch-") as fh:
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fh.fileno(), 0, size)
            else:  # pragma: no cover - not Linux
                fh.truncate(size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(e.errno, f"not enough disk space in {ws.root} for the {what} "
                                       f"({size / 2**30:.1f} GiB of scratch space)") from None
            raise
        # np.memmap's mmap holds its own descriptor: the mapping, and the file, outlive ``fh``.
        return np.memmap(fh, dtype=np.float32, mode="r+", shape=(rows, cols))


class ScratchClips:
    """Waveforms of many clips in one scratch matrix; ``clips[clip_id]`` is a view of its row at the
    clip's own length, so callers use it like the dict of arrays it replaces."""

    def __init__(self, matrix: np.ndarray, row: dict[str, int], lengths: dict[str, int], odd: dict[str, np.ndarray]):
        self.matrix, self._row, self._lengths, self._odd = matrix, row, lengths, odd

    def __getitem__(self, clip_id: str) -> np.ndarray:
        if clip_id in self._odd:
            return self._odd[clip_id]
        return self.matrix[self._row[clip_id], : self._lengths[clip_id]]

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._row or clip_id in self._odd

    def __iter__(self) -> Iterator[str]:
        yield from self._row
        yield from self._odd

    def __len__(self) -> int:
        return len(self._row) + len(self._odd)


def scratch_clips(ws: Workspace, expected: dict[str, int], waves: Iterable[tuple[str, np.ndarray]],
                  what: str = "clips") -> ScratchClips:
    """The ``waves`` whose ids are in ``expected`` (clip id -> planned length in samples) in one
    scratch matrix as wide as the longest planned clip. A clip whose stored length differs from
    its plan (the audio changed since) is kept as it is, in memory, so the caller's length check
    reports it; there are none unless the workspace changed under the plan."""
    slot = {c: i for i, c in enumerate(sorted(expected))}
    matrix = scratch_matrix(ws, len(slot), max(expected.values(), default=0), what)
    row, odd = {}, {}  # a clip read twice keeps its last read, as a dict would
    for cid, wave in waves:
        if cid not in slot:
            continue
        if len(wave) == expected[cid]:
            matrix[slot[cid], : len(wave)] = wave
            row[cid] = slot[cid]
            odd.pop(cid, None)
        else:
            odd[cid] = np.array(wave, np.float32)
            row.pop(cid, None)
    return ScratchClips(matrix, row, expected, odd)
