"""Run a ``nightshift`` command and SIGKILL it just before its N-th write, or count its writes.

    python tests/faults/kill_at.py --count FILE -- step ingest pozytywka --ds 2024-01-31
    python tests/faults/kill_at.py --kill-at 7 -- train music_skip --ds 2024-01-31

A kill at a wall-clock delay mostly lands in imports on small data; a kill just before the
N-th write lands where a crash hurts: between two statements of a transaction, before its
commit, between a lake file's write and its rename, between two tables of a publish. A write
is one statement on a DuckDB file (``execute``, ``sql``, ``commit``...: in-memory connections
do not count), one lake write or delete (``mlcore.lake``), or one ``os.replace`` (how a local
lake file becomes visible). ``--count`` runs the command undisturbed and writes how many
writes it made, so that a test can spread its kills over the whole step.

The writes are counted by wrapping those functions in this process, not by a profiler: a
profiler slows training twofold, and DuckDB's methods raise no profiler events.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Iterator

import duckdb

STATEMENTS = ("execute", "executemany", "sql", "query", "begin", "commit", "rollback")
LAKE_WRITES = ("write_bytes", "put_file", "delete_key", "delete_prefix")


class _Counter:
    def __init__(self, kill_at: int | None) -> None:
        self.kill_at, self.seen = kill_at, 0

    def tick(self) -> None:
        self.seen += 1
        if self.seen == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(self, fn):
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            self.tick()
            return fn(*args, **kwargs)

        return counted


class _CountedConnection:
    """A DuckDB connection whose statements tick the counter; everything else passes through."""

    def __init__(self, con, counter: _Counter) -> None:
        self._con, self._counter = con, counter

    def __getattr__(self, name):
        attr = getattr(self._con, name)
        return self._counter.wrap(attr) if name in STATEMENTS else attr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)


@contextlib.contextmanager
def counting(counter: _Counter) -> Iterator[_Counter]:
    """Count (and, with ``kill_at``, kill at) the writes made inside the block."""
    from mlcore import lake

    originals = [(duckdb, "connect", duckdb.connect), (os, "replace", os.replace)]
    originals += [
        (cls, name, cls.__dict__[name])
        for cls in (lake.LocalLake, lake.S3Lake)
        for name in LAKE_WRITES
        if name in cls.__dict__
    ]
    connect = duckdb.connect

    def counted_connect(database=":memory:", *args, **kwargs):
        con = connect(database, *args, **kwargs)
        on_disk = str(database) not in ("", ":memory:") and not str(database).startswith(":")
        return _CountedConnection(con, counter) if on_disk else con

    duckdb.connect = counted_connect
    for owner, name, fn in originals[1:]:
        setattr(owner, name, counter.wrap(fn))
    try:
        yield counter
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1 :]
    count_file = opts[opts.index("--count") + 1] if "--count" in opts else None
    kill_at = int(opts[opts.index("--kill-at") + 1]) if "--kill-at" in opts else None
    from mlcore.cli import main as nightshift

    with counting(_Counter(kill_at)) as counter:
        rc = nightshift(command)
    if count_file:
        with open(count_file, "w") as out:
            out.write(str(counter.seen))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
