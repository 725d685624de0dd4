"""``configure_allocator`` keeps freed large blocks for reuse: a loop that allocates, fills and frees a
64 MB array page-faults once instead of every time (issue 17 part 2's allocation churn). Counted in
fresh processes (mallopt settings cannot be undone), with the kernel's minor-fault counter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOOP = """
import resource, sys
sys.path.insert(0, {repo!r})
import numpy as np
if {tuned}:
    from asd_core.runtime import configure_allocator
    assert configure_allocator()
np.ones(8 << 20).sum()  # first use: every page faults in either mode
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(8 << 20).sum()  # 64 MB, above glibc's largest mmap threshold
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _faults(tuned: bool) -> int:
    p = subprocess.run([sys.executable, "-c", LOOP.format(repo=str(REPO), tuned=tuned)], capture_output=True, text=True,
                       check=True)
    return int(p.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_large_blocks_are_reused():
    default, tuned = _faults(False), _faults(True)
    assert default >= 20  # glibc maps each 64 MB block afresh: its pages fault again (measured ~10,000)
    assert tuned * 20 < default  # the heap's pages are reused (measured 0)


def test_configure_allocator_is_idempotent():
    from asd_core.runtime import configure_allocator

    assert configure_allocator() == configure_allocator()
