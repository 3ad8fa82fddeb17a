"""How the main job keeps its memory bounded besides the source's package limits: `[main_job]` in .dlt/config.toml.

Most of what a run holds beyond what it uses is memory freed and kept by an allocator: glibc's, which Python,
the reading threads and Arrow share, and DuckDB's own jemalloc. These settings make both give it back.
"""

from __future__ import annotations

import ctypes
import dataclasses
import platform
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""glibc's `mallopt` parameters: the size from which an allocation is mmapped, and the most arenas kept."""


@configspec
class MemorySettings(BaseConfiguration):
    """`[main_job]` in .dlt/config.toml."""

    duckdb: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"memory_limit": "256MB", "threads": 1, "preserve_insertion_order": False}
    )
    """DuckDB's settings while it loads; its default memory limit (80% of the RAM) lets it keep the tables it
    writes, so that it grows with them."""
    malloc_arenas: int = 2
    """At most this many malloc arenas: the pages that the reading threads parse are freed where they are reused."""
    malloc_mmap_threshold_kb: int = 128
    """Allocations of this size or more get pages of their own that go back to the system when freed. glibc's
    default threshold rises to the largest block freed so far (up to 32 MB), after which response bodies and
    Arrow buffers stay in its heap."""
    duckdb_decay_ms: int = 0
    """DuckDB's jemalloc gives freed pages back after this long; its default (1 s, counted only while it
    allocates) keeps about 100 MB from each package's load into the next."""


def memory_settings() -> MemorySettings:
    return resolve_configuration(MemorySettings(), sections=("main_job",))


def keep_less_freed_memory(settings: MemorySettings) -> None:
    """Arrow allocates with malloc instead of its own jemalloc pool; malloc keeps at most `malloc_arenas` arenas
    and gives large blocks back when they are freed; DuckDB's allocator gives freed pages back after
    `duckdb_decay_ms`. Memory freed after one page or package is then reused or returned, not held."""
    pa.set_memory_pool(pa.system_memory_pool())
    if platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, settings.malloc_arenas)
        libc.mallopt(M_MMAP_THRESHOLD, settings.malloc_mmap_threshold_kb * 1024)
    set_duckdb_decay(settings.duckdb_decay_ms)


def set_duckdb_decay(decay_ms: int) -> None:
    """Sets the dirty and muzzy page decay of every arena of DuckDB's jemalloc, and of those it creates later.

    DuckDB's Linux wheels link jemalloc under the `duckdb_je_` prefix and export its `mallctl`; other builds
    allocate with the system's malloc, and this does nothing.
    """
    try:
        import _duckdb  # type: ignore[import-not-found]

        mallctl = ctypes.CDLL(_duckdb.__file__).duckdb_je_mallctl
    except (ImportError, OSError, AttributeError):
        return
    arenas = ctypes.c_uint()
    size = ctypes.c_size_t(ctypes.sizeof(arenas))
    mallctl(b"arenas.narenas", ctypes.byref(arenas), ctypes.byref(size), None, ctypes.c_size_t(0))
    decay = ctypes.c_ssize_t(decay_ms)
    for arena in ["arenas", *(f"arena.{index}" for index in range(arenas.value))]:
        for pages in ("dirty", "muzzy"):
            name = f"{arena}.{pages}_decay_ms".encode()
            mallctl(name, None, None, ctypes.byref(decay), ctypes.c_size_t(ctypes.sizeof(decay)))
