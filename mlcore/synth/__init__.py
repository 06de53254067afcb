"""Generators of realistic raw data for each source (demo, tests, benchmarks).

Each module writes one source's delivery into a lake folder with the real file names, schemas and,
on request, the real defects, seeded so that the same arguments give byte-identical files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` on success and is removed on error: a
    generator killed half-way leaves no half-written file that a run would ingest."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
