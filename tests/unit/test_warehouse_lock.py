"""Opening the warehouse while another process holds it: wait a bounded time, then say who."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from mlcore.warehouse import WarehouseError, connect

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create table if not exists t as select 1 as x")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold(path, seconds: float) -> subprocess.Popen:
    """Another process writing the warehouse for ``seconds`` (returns once it holds it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_reader_and_a_writer_wait_for_the_holder_then_open(tmp_path, caplog):
    path = tmp_path / "w.duckdb"
    proc = hold(path, 2.0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="mlcore.warehouse"):
        con = connect(path, read_only=True, lock_wait=30)
    assert time.monotonic() - started < 30
    assert con.execute("select x from t").fetchall() == [(1,)]
    con.close()
    assert "is held by " in caplog.text and f"(PID {proc.pid})" in caplog.text
    proc.wait()

    proc = hold(path, 2.0)
    con = connect(path, lock_wait=30)  # a writer waits the same way
    assert con.execute("select count(*) from ops.rejected_lines").fetchone() == (0,)
    con.close()
    proc.wait()


def test_past_the_wait_the_error_names_the_holder(tmp_path):
    path = tmp_path / "w.duckdb"
    proc = hold(path, 20.0)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseError) as failed:
            connect(path, lock_wait=1.0)
        assert 1.0 <= time.monotonic() - started < 10
        message = str(failed.value)
        assert f"(PID {proc.pid})" in message and "waited 1 s" in message
        assert "NIGHTSHIFT_WAREHOUSE_LOCK_WAIT" in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()
