"""Give the memory of big, rare work back to the operating system.

A global localization scores 128 candidate poses in batches of 32 (tens of MB of temporary tensors); a 2M-point cloud
or a 4096x4096 depth image is converted before it is decimated or refused. glibc's malloc keeps what is freed for
reuse, and after such a burst it raises its mmap threshold, so the next big buffers come from the heap too: a
long-running node's RSS then stays hundreds of MB above what it uses (the fault matrix's node grew from ~540 to
~840 MB). :func:`trim` asks glibc to return free heap pages (``malloc_trim(0)``: 60 MB back after one global
localization here, ~3 ms; ~0.2 ms when there is nothing to return); it is a no-op where the C library has no such
call (musl, macOS). The localizer node calls it on every diagnostics tick.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library('c')
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, 'malloc_trim') else None


def trim() -> bool:
    """Return free heap memory to the OS; True if the C library did (glibc), False where it cannot."""
    lib = _libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False
