"""An S3 lake whose server fails: answers 500, answers too late, drops connections, cuts
bodies short, or stops in the middle of a publish (the fault suite of the issue "Faults, bad
input and secrets").

The lake talks to moto's S3 server on 127.0.0.1 through a fault-injecting proxy
(``s3_proxy.FaultProxy``), with the client ``open_lake`` builds, so that the retry policy and
the timeouts under test are the production ones. What users expect, case by case:

- a transient fault (a few 500s, a body cut short once) is retried and the operation succeeds;
- a lasting fault fails each lake operation after a bounded number of attempts and a bounded
  time, with one line naming the lake key and the reason: no traceback, no credential;
- a server that stops mid-publish leaves the earlier partitions and every other lake object
  byte-identical, no day marked complete (``_SUCCESS``) that is not, no stray objects, and a
  rerun once the server is back publishes the same rows as an undisturbed publish.

The publish case runs for every registered pipeline, from the two small nights of the
conformance runs (``pipeline_runs`` in tests/conftest.py, trained once for the whole session),
so that a new pipeline is held to it without new test code.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import time
from pathlib import Path

import duckdb
import pytest
from s3_proxy import FaultProxy

import mlcore.lake
from mlcore import pipelines, steps
from mlcore.lake import LakeError, LocalLake, S3Lake, open_lake, s3_client
from mlcore.publish import SUCCESS_MARKER


@pytest.fixture
def proxy(s3_endpoint):
    p = FaultProxy(s3_endpoint)
    yield p
    p.close()


@pytest.fixture
def lakes(s3_settings, proxy):
    """(settings whose lake goes through the proxy, that lake, the same bucket without it)."""
    settings = s3_settings.with_overrides(s3_endpoint=proxy.url)
    return settings, open_lake(settings), open_lake(s3_settings)


@pytest.fixture
def secret(s3_settings):
    """The test lake's secret key: a canary that must show up in no message, log or output."""
    return s3_settings.aws_secret_access_key


def seeded(direct: S3Lake, tmp_path):
    """Objects for the read operations, written without the proxy; a local file to upload."""
    direct.write_bytes("raw/a.bin", b"a" * 5000)
    direct.write_bytes("raw/b.bin", b"b" * 5000)
    local = tmp_path / "up.bin"
    local.write_bytes(b"u" * 5000)
    return local


def lake_ops(lake: S3Lake, tmp_path, local):
    """Each lake operation, as (name, the key its error must name, call, expected result)."""
    return [
        ("exists", "raw/a.bin", lambda: lake.exists("raw/a.bin"), True),
        ("list", "raw", lambda: lake.list("raw"), ["raw/a.bin", "raw/b.bin"]),
        ("read_bytes", "raw/a.bin", lambda: lake.read_bytes("raw/a.bin"), b"a" * 5000),
        ("write_bytes", "out/w.bin", lambda: lake.write_bytes("out/w.bin", b"w"), None),
        ("put_file", "out/up.bin", lambda: lake.put_file(local, "out/up.bin"), None),
        (
            "get_file",
            "raw/b.bin",
            lambda: (
                lake.get_file("raw/b.bin", tmp_path / "down.bin")
                or (tmp_path / "down.bin").read_bytes()
            ),
            b"b" * 5000,
        ),
        ("delete_key", "raw/b.bin", lambda: lake.delete_key("raw/b.bin"), None),
    ]


def assert_one_line(exc: LakeError, lake: S3Lake, key: str, secret: str) -> str:
    """The error the CLI and the task log print: one line naming the object, nothing chained."""
    message = str(exc)
    assert message.startswith("cannot "), message
    assert lake.url(key) in message, message
    assert "\n" not in message and "Traceback" not in message, message
    assert secret not in message
    assert exc.__cause__ is None and exc.__suppress_context__, "a chained botocore traceback"
    return message


def assert_secret_kept(caplog, capfd, secret: str) -> None:
    assert caplog.records, "caplog saw no log record: the secret check would prove nothing"
    assert secret not in caplog.text
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
    assert "Traceback" not in err


# ---- the lake, operation by operation --------------------------------------------------------
def test_transient_500s_are_retried_and_the_operation_succeeds(
    lakes, proxy, tmp_path, caplog, capfd, secret
):
    """S3 answers 500 InternalError now and then and asks clients to retry: two 500s in a row
    must not fail a night's task."""
    _, lake, direct = lakes
    local = seeded(direct, tmp_path)
    with caplog.at_level(logging.DEBUG):
        for name, _key, call, expected in lake_ops(lake, tmp_path, local):
            proxy.clear()
            proxy.fail_500(2)
            seen = len(proxy.requests)
            assert call() == expected, name
            assert len(proxy.requests) - seen >= 3, f"{name}: the two 500s were not retried"
    assert direct.read_bytes("out/w.bin") == b"w"
    assert direct.read_bytes("out/up.bin") == local.read_bytes()
    assert not direct.exists("raw/b.bin")
    assert_secret_kept(caplog, capfd, secret)


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("500", "InternalError|\\(500\\)"),
        ("reset", "Connection was closed before we received a valid response"),
        ("stopped", "Could not connect to the endpoint URL"),
    ],
)
def test_a_lasting_fault_fails_each_operation_in_one_line_after_bounded_attempts(
    lakes, proxy, tmp_path, caplog, capfd, secret, fault, reason
):
    """A server that keeps answering 500, that drops every connection, or that is down: each
    lake operation is tried S3_MAX_ATTEMPTS times (retried, and not for ever), then fails with
    one line naming the object and the reason, without a traceback or the secret."""
    _, lake, direct = lakes
    local = seeded(direct, tmp_path)
    {"500": proxy.fail_500, "reset": proxy.reset, "stopped": proxy.stop}[fault]()
    with caplog.at_level(logging.DEBUG):
        for name, key, call, _expected in lake_ops(lake, tmp_path, local):
            seen = len(proxy.requests)
            started = time.monotonic()
            with pytest.raises(LakeError) as failed:
                call()
            assert time.monotonic() - started < 5, f"{name}: a fast failure took long"
            message = assert_one_line(failed.value, lake, key, secret)
            assert re.search(reason, message), message
            attempts = len(proxy.requests) - seen
            # A refused connection never reaches the proxy's request log.
            want = 0 if fault == "stopped" else mlcore.lake.S3_MAX_ATTEMPTS
            assert attempts == want, f"{name}: {attempts} requests, expected {want}"
    proxy.clear()
    if fault == "stopped":
        proxy.start()
    # Nothing was half-written: the failed writes left no object, the failed delete no gap.
    assert direct.list("") == ["raw/a.bin", "raw/b.bin"]
    assert not (tmp_path / "down.bin").exists()
    assert_secret_kept(caplog, capfd, secret)


def test_a_body_cut_short_is_retried_then_fails_in_one_line(
    lakes, proxy, tmp_path, caplog, capfd, secret
):
    """A connection that breaks while an object is streamed back: botocore does not retry a
    body, so the lake must (read_bytes as the transfer manager's get_file does); a body cut
    short every time fails in one line with the reason, not "Max Retries Exceeded"."""
    _, lake, direct = lakes
    seeded(direct, tmp_path)
    target = tmp_path / "down.bin"
    reads = [
        ("raw/a.bin", lambda: lake.read_bytes("raw/a.bin"), b"a" * 5000),
        (
            "raw/b.bin",
            lambda: lake.get_file("raw/b.bin", target) or target.read_bytes(),
            b"b" * 5000,
        ),
    ]
    with caplog.at_level(logging.DEBUG):
        for key, call, expected in reads:
            proxy.clear()
            proxy.truncate_bodies(1)
            assert call() == expected, key
        for key, call, _expected in reads:
            proxy.clear()
            proxy.truncate_bodies()
            gets = sum(m == "GET" for m, _ in proxy.requests)
            with pytest.raises(LakeError) as failed:
                call()
            message = assert_one_line(failed.value, lake, key, secret)
            assert "Max Retries Exceeded" not in message
            assert re.search("response stream|IncompleteRead|bytes expected", message), message
            gets = sum(m == "GET" for m, _ in proxy.requests) - gets
            assert gets == mlcore.lake.S3_MAX_ATTEMPTS, f"{key}: {gets} GETs"
    assert_secret_kept(caplog, capfd, secret)


def test_a_server_that_stops_answering_fails_within_a_bounded_time(
    lakes, proxy, tmp_path, caplog, capfd, secret, monkeypatch
):
    """A server that accepts connections and then says nothing (overloaded, half-dead): with
    botocore's defaults (60 s to connect, 60 s per read, per attempt) one request held a task for
    minutes. The production client's worst case per request is bounded; here, with the read
    timeout shortened, each operation fails in one line once its attempts have timed out, while
    a server that is slow but within the timeout is simply waited for."""
    settings, lake, direct = lakes
    local = seeded(direct, tmp_path)

    # The production client: a request to a silent server fails within two minutes.
    config = s3_client(settings).meta.config
    attempts = config.retries.get("total_max_attempts", 3)
    assert attempts * (config.connect_timeout + config.read_timeout) <= 120, config.retries

    # Slow but within the timeout: waited for, not retried.
    proxy.delay(0.5)
    seen = len(proxy.requests)
    assert lake.read_bytes("raw/a.bin") == b"a" * 5000
    assert len(proxy.requests) - seen == 1

    read_timeout = 0.3
    monkeypatch.setattr(mlcore.lake, "S3_READ_TIMEOUT", read_timeout)
    quick = open_lake(settings)
    assert quick.client.meta.config.read_timeout == read_timeout
    proxy.delay(1.5)
    bound = mlcore.lake.S3_MAX_ATTEMPTS * read_timeout + 1.5
    with caplog.at_level(logging.DEBUG):
        for name, key, call, _expected in lake_ops(quick, tmp_path, local):
            if name not in ("list", "read_bytes", "write_bytes", "get_file"):
                continue  # the same client and path as these; kept out for time
            started = time.monotonic()
            with pytest.raises(LakeError) as failed:
                call()
            elapsed = time.monotonic() - started
            message = assert_one_line(failed.value, quick, key, secret)
            assert "Read timeout on endpoint URL" in message, message
            assert read_timeout <= elapsed < bound, f"{name}: failed after {elapsed:.1f} s"
    assert_secret_kept(caplog, capfd, secret)


# ---- a server that stops in the middle of a publish, for every registered pipeline -----------
def _marts(warehouse, spec, ds) -> dict[str, list]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t.name: con.execute(
                f"select * from marts.{t.name} where ds = ? order by all", [ds]
            ).fetchall()
            for t in spec.tables
        }


def _snapshot(lake) -> dict[str, bytes]:
    return {key: lake.read_bytes(key) for key in lake.list("")}


def _is_day(key: str, ds: dt.date) -> bool:
    """Whether ``key`` is a lake output of the day ``ds`` (outputs/<table>/ds=<ds>/...)."""
    return key.startswith("outputs/") and f"/ds={ds}/" in key


def _day(snapshot: dict[str, bytes], ds: dt.date) -> dict[str, bytes]:
    return {k: v for k, v in snapshot.items() if _is_day(k, ds)}


def _rest(snapshot: dict[str, bytes], ds: dt.date) -> dict[str, bytes]:
    return {k: v for k, v in snapshot.items() if not _is_day(k, ds)}


def _markers(day: dict[str, bytes]) -> list[str]:
    return sorted(k for k in day if k.endswith("/" + SUCCESS_MARKER))


@pytest.mark.parametrize("name", sorted(pipelines.PIPELINES))
def test_a_server_stopping_mid_publish_leaves_no_partial_day_and_a_rerun_publishes_it(
    name, pipeline_runs, s3_settings, proxy, tmp_path, caplog, capfd, secret
):
    """D1 published and D2 gated (the conformance runs' two nights, moved into a bucket: the
    lake as it was before D2's publish, the warehouse without D2's marts partition). The S3
    server then stops right after the K-th lake output of D2's publish: after the marts commit,
    half-way through the tables. The step fails in one line; every other object (D1's outputs,
    raw, features, models, predictions) is byte-identical; no D2 partition carries _SUCCESS;
    nothing is there but the part files already written, and no multipart upload is left open.
    Once the server is back, the rerun publishes the undisturbed night's marts rows and lake
    files, byte for byte. A republish of the marked day that fails the same way unmarks it
    first, and its rerun gives the same bytes again."""
    spec, run = pipelines.get(name), pipeline_runs[name]
    D1, D2 = sorted(run.results)  # noqa: N806 - the nights' names everywhere in the suite
    tables = [t.name for t in spec.tables]
    undisturbed = LocalLake(run.settings.lake)
    reference = _snapshot(undisturbed)
    reference_marts = {ds: _marts(run.settings.warehouse, spec, ds) for ds in (D1, D2)}
    assert any(reference_marts[D1].values()) and _markers(_day(reference, D1))

    # The night before D2's publish, on S3 (written straight to the server, not through the
    # proxy) and in a copy of the warehouse.
    direct = open_lake(s3_settings)
    for key in _rest(reference, D2):
        direct.put_file(undisturbed.path(key), key)
    warehouse = tmp_path / "warehouse.duckdb"
    for suffix in ("", ".wal"):
        source = Path(f"{run.settings.warehouse}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{warehouse}{suffix}")
    with duckdb.connect(str(warehouse)) as con:
        for table in tables:
            con.execute(f"delete from marts.{table} where ds = ?", [D2])
        con.execute("delete from ops.publish_log where ds = ?", [D2])
    settings = s3_settings.with_overrides(warehouse=warehouse, s3_endpoint=proxy.url)
    lake = open_lake(settings)
    before = _snapshot(direct)
    assert before == _rest(reference, D2)

    # Half of the tables get their file; the server stops before the rest.
    stop_at = max(1, len(tables) // 2)

    def failing_publish() -> dict[str, bytes]:
        proxy.stop_after(stop_at, "PUT", "/outputs/")
        started = time.monotonic()
        with caplog.at_level(logging.DEBUG), pytest.raises(LakeError) as failed:
            steps.publish(name, D2.isoformat(), settings)
        assert time.monotonic() - started < 60
        assert not proxy.running, "the fault did not land in the publish"
        message = assert_one_line(failed.value, lake, "outputs/", secret)
        assert "Could not connect to the endpoint URL" in message, message
        after = _snapshot(direct)
        assert _rest(after, D2) == before, "a fault in D2's publish changed other lake objects"
        day = _day(after, D2)
        assert not _markers(day), "a partial day is marked complete"
        assert all(k.endswith("/part-0.parquet") for k in day), sorted(day)
        assert not direct.client.list_multipart_uploads(Bucket=direct.bucket).get("Uploads")
        # The marts committed before the lake: D2 is there whole, D1 as it was.
        assert _marts(warehouse, spec, D2) == reference_marts[D2]
        assert _marts(warehouse, spec, D1) == reference_marts[D1]
        return day

    def rerun_once_back() -> None:
        proxy.clear()
        proxy.start()
        with caplog.at_level(logging.DEBUG):
            steps.publish(name, D2.isoformat(), settings)
        assert _snapshot(direct) == reference, "the rerun's lake differs from an undisturbed run"
        assert _marts(warehouse, spec, D2) == reference_marts[D2]

    # The night's first publish: the tables before the stop have their file, the rest none.
    assert len(failing_publish()) == stop_at
    rerun_once_back()
    # A republish of the complete day: every file is still there, none marked.
    assert sorted(failing_publish()) == sorted(
        k for k in _day(reference, D2) if not k.endswith(SUCCESS_MARKER)
    )
    rerun_once_back()
    assert_secret_kept(caplog, capfd, secret)
