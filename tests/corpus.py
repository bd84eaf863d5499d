"""The malformed-input corpus, and how to make a file unreadable even when the tests run as root.

The corpus itself is `scanrag.testing.malformed_corpus` (one generator for the CLI, the Python
API and the HTTP tests). A file with mode 000 is still readable by root, because root holds
the capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; these helpers drop them — for the
calling thread only (capabilities are per thread on Linux), or for a child process — so that
root meets the permission check like anybody else.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
_MASK = (1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)
_V3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3
PR_CAPBSET_DROP = 24
_libc = ctypes.CDLL(None, use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _capset(change) -> int:
    header, data = _Header(_V3, 0), (_Data * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    before = data[0].effective
    data[0].effective = change(before)
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    return before


@contextmanager
def permissions_apply() -> Iterator[None]:
    """Within the block, this thread cannot read a file its mode forbids, even as root."""
    if os.geteuid() != 0:
        yield
        return
    before = _capset(lambda effective: effective & ~_MASK)
    try:
        yield
    finally:
        _capset(lambda effective: before)


def drop_root_read_override() -> None:
    """A `preexec_fn`: the child (even root) cannot read a file its mode forbids."""
    if os.geteuid() == 0:
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
