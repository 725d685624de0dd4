"""Process settings made deliberately: thread counts (torch and FAISS each bundle OpenMP and must
not oversubscribe) and the C allocator's treatment of large blocks (torch frees and re-allocates
tensors of tens of MB every batch)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_KEEP_FREED = 1 << 30  # bytes of free heap top kept instead of returned to the kernel

_allocator_configured: bool | None = None


def configure_threads(n: int | None = None) -> int:
    """Give torch and FAISS the same thread budget (default: the CPUs this process may use).

    Every torch stage calls this first, in whatever process runs it (the CLI, a deployment's
    worker, a Dask worker), so it also keeps freed tensor memory for reuse (``configure_allocator``)."""
    configure_allocator()
    if not n:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    return n


def configure_allocator() -> bool:
    """Serve large blocks from the heap and keep freed memory for reuse (glibc only; True when set).

    By default glibc maps every block above its mmap threshold afresh and unmaps it on free, so a
    batch loop that allocates and frees 10-100 MB tensors makes the kernel zero and map new pages
    each time: on 2 cores a teacher embedding loop spent over 40% of its CPU time in the kernel (README,
    benchmarks/allocator.py). With mmap off for malloc and a 1 GiB trim threshold, freed blocks are
    reused; the process keeps its high-water mark of heap, which its peak needs anyway.
    Idempotent; later calls return the first result."""
    global _allocator_configured
    if _allocator_configured is None:
        _allocator_configured = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc (musl has no mallopt): leave the allocator alone
                return False
            _allocator_configured = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED))
    return _allocator_configured
