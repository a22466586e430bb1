"""release_freed_memory: freed heap holes go back to the system (glibc), so long jobs do not creep up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, numpy as np
from paraspeechclap.encoders.base import release_freed_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
big = np.ones(30 << 17); del big  # a freed 30 MiB mmap raises glibc's mmap threshold, as a big tensor does
pairs = [(np.ones(1 << 17), np.ones(1 << 10)) for _ in range(200)]  # 1 MiB blocks, each pinned by a keeper
keep = [k for _, k in pairs]
del pairs  # 200 MiB of holes between the keepers: free, but still resident
before = rss(); release_freed_memory(); release_freed_memory(); after = rss()
print(before, after)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
                    reason="malloc_trim is glibc's")
def test_freed_holes_are_returned():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    assert before - after > 150, (before, after)  # most of the 200 MiB of holes
