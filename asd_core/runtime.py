"""Thread counts set deliberately: torch and FAISS each bundle OpenMP and must not oversubscribe."""

from __future__ import annotations

import os


def configure_threads(n: int | None = None) -> int:
    """Give torch and FAISS the same thread budget (default: the CPUs this process may use)."""
    if not n:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    return n
