"""Smoke test of the running compose stack: `make stack-smoke`.

What ops would do by hand, through the stack's own front doors:

1. wait for the api-server to report healthy (metadatabase, scheduler, triggerer, dag-processor);
2. log in (the simple auth manager's generated admin password, read in the api-server
   container) and wait until the dag-processor has parsed ``music_skip``;
3. deliver a small synthetic Pozytywka day into the stack's S3 lake, for the ``ds`` the
   scheduler would ingest next;
4. trigger ``ingest_pozytywka`` for that ``ds`` through the REST API (or clear its run, when
   the stack has run that ``ds`` already), wait for it;
5. wait for the scheduler to start ``music_skip`` on the Asset that run updated (data-aware
   scheduling: the pipeline has no clock), check that the event carried that ``ds``, and wait
   for the run;
6. check the published mart: rows in ``marts.skip_scores`` of the scheduler's warehouse, and the
   same number of rows in the lake's ``outputs/skip_scores/ds=…/`` Parquet.

Exits 0 and prints a summary when all of that holds; exits 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API = os.environ.get("NIGHTSHIFT_STACK_API", "http://127.0.0.1:8080")
S3_ENDPOINT = os.environ.get("NIGHTSHIFT_STACK_S3", "http://127.0.0.1:9000")
LAKE = "s3://nightshift/lake"
# The compose file's development defaults (docker/.env overrides them there and here).
S3_KEY = os.environ.get("MINIO_ROOT_USER", "nightshift")
S3_SECRET = os.environ.get("MINIO_ROOT_PASSWORD", "nightshift-dev-secret")
DAG_ID = "music_skip"
SOURCE_DAG_ID = "ingest_pozytywka"  # the source DAG whose Asset starts DAG_ID
# The stack's train backend (`make stack-smoke NIGHTSHIFT_TRAIN_BACKEND=docker`).
BACKEND = os.environ.get("NIGHTSHIFT_TRAIN_BACKEND", "local")
PASSWORDS_FILE = "/opt/airflow/simple_auth_manager_passwords.json.generated"


class SmokeFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"stack-smoke: {message}", flush=True)


# The stack's compose command, as `make stack-smoke` passes it.
COMPOSE = os.environ.get("COMPOSE") or "docker-compose -p nightshift -f docker/.compose.local.yml"


def compose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMPOSE.split(), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def http(method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise SmokeFailed(f"{method} {path} answered {exc.code}: {detail}") from None


def wait_for(what: str, check, timeout: float, every: float = 3.0):
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, SmokeFailed) as exc:
            last_error = exc
        time.sleep(every)
    raise SmokeFailed(f"timed out after {timeout:.0f} s waiting for {what} ({last_error})")


def healthy() -> bool:
    status = http("GET", "/api/v2/monitor/health")
    return all(part.get("status") == "healthy" for part in status.values() if part)


def login() -> str:
    result = compose("exec", "-T", "airflow-apiserver", "cat", PASSWORDS_FILE)
    if result.returncode != 0:
        raise SmokeFailed(f"no admin password in the api-server: {result.stderr.strip()}")
    password = json.loads(result.stdout)["admin"]
    return http("POST", "/auth/token", body={"username": "admin", "password": password})[
        "access_token"
    ]


def deliver(ds: dt.date, users: int) -> None:
    """A synthetic Pozytywka day (the real defects included) into the stack's S3 lake."""
    from mlcore.config import Settings
    from mlcore.lake import LocalLake, open_lake
    from mlcore.synth.pozytywka import write_delivery

    lake = open_lake(
        Settings(
            lake=LAKE,
            s3_endpoint=S3_ENDPOINT,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_delivery(Path(tmp), ds, users=users, days=21, seed=7, defects=True)
        keys = LocalLake(Path(tmp)).list("raw")
        for key in keys:
            lake.put_file(Path(tmp) / key, key)
    say(f"delivered {len(keys)} raw files for ds={ds} to {LAKE}")


def published_rows(ds: dt.date) -> tuple[int, int]:
    """(rows of marts.skip_scores for ds in the warehouse, rows in the lake's Parquet)."""
    import boto3
    import duckdb

    query = (
        "import duckdb, os; con = duckdb.connect(os.environ['NIGHTSHIFT_WAREHOUSE'], "
        f'read_only=True); print(con.execute("select count(*) from marts.skip_scores where '
        f"ds = '{ds}'\").fetchall()[0][0])"
    )
    result = compose("exec", "-T", "airflow-scheduler", "python", "-c", query)
    if result.returncode != 0:
        raise SmokeFailed(f"could not read the warehouse: {result.stderr.strip()[-300:]}")
    mart_rows = int(result.stdout.strip())

    s3 = boto3.client(
        "s3",
        endpoint_url=S3_ENDPOINT,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    prefix = f"lake/outputs/skip_scores/ds={ds}/"
    listing = s3.list_objects_v2(Bucket="nightshift", Prefix=prefix).get("Contents", [])
    keys = [o["Key"] for o in listing if o["Key"].endswith(".parquet")]
    if not keys:
        return mart_rows, 0
    # Counted by DuckDB from local copies (pyarrow 26 aborts at exit after reading from memory).
    with tempfile.TemporaryDirectory() as tmp:
        for i, key in enumerate(keys):
            s3.download_file("nightshift", key, f"{tmp}/part-{i}.parquet")
        lake_rows = duckdb.sql(f"select count(*) from read_parquet('{tmp}/*.parquet')").fetchall()
    return mart_rows, lake_rows[0][0]


def trigger(dag_id: str, logical: str, token: str) -> str:
    """Start ``dag_id`` for a logical date (or clear its run of that date); return the run id."""
    when = urllib.parse.quote(logical)
    runs = http(
        "GET",
        f"/api/v2/dags/{dag_id}/dagRuns?logical_date_gte={when}&logical_date_lte={when}",
        token,
    )["dag_runs"]
    if runs:
        # One run per logical date: run that day again as ops would, by clearing its run.
        run_id = runs[0]["dag_run_id"]
        http("POST", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/clear", token, {"dry_run": False})
        say(f"{dag_id} already has run {run_id} for {logical[:10]}: cleared it, it runs again")
        return run_id
    run_id = f"smoke__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    body = {"dag_run_id": run_id, "logical_date": logical, "note": "make stack-smoke"}
    http("POST", f"/api/v2/dags/{dag_id}/dagRuns", token, body)
    say(f"triggered {dag_id} run {run_id} for ds={logical[:10]}")
    return run_id


def wait_run(dag_id: str, run_id: str, token: str, timeout: float) -> dict[str, int]:
    """Wait for a run to finish, printing its task states; the try number of each task."""
    last, tries = {}, {}
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"

    def finished():
        run = http("GET", base, token)
        tis = http("GET", f"{base}/taskInstances", token)["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in tis}
        tries.update({ti["task_id"]: ti["try_number"] for ti in tis})
        if states != last:
            last.clear()
            last.update(states)
            say(f"{dag_id}: " + ", ".join(f"{task}={state}" for task, state in states.items()))
        return run["state"] if run["state"] in ("success", "failed") else None

    state = wait_for(f"{dag_id} run {run_id}", finished, timeout=timeout, every=5)
    if state != "success":
        failed = [task for task, s in last.items() if s == "failed"]
        raise SmokeFailed(
            f"{dag_id} run {run_id} {state} at {', '.join(failed) or '?'}: see the task log in "
            f"the UI ({API}/dags/{dag_id}/runs/{run_id}) or `docker-compose logs airflow-scheduler`"
        )
    return tries


def smoke(users: int, timeout: float) -> None:
    started = time.monotonic()
    # Four Airflow processes start at once: on 2 cores the api-server takes minutes to listen.
    wait_for("the api-server and every Airflow component to be healthy", healthy, timeout=900)
    token = login()
    source = wait_for(
        f"the dag-processor to parse {SOURCE_DAG_ID} and {DAG_ID}",
        lambda: (
            http("GET", f"/api/v2/dags/{DAG_ID}", token)
            and http("GET", f"/api/v2/dags/{SOURCE_DAG_ID}", token)
        ),
        timeout=300,
    )
    # The ds the scheduler would ingest next (catchup is off): the day that has just ended.
    logical = source.get("next_dagrun_logical_date") or (
        dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ).strftime("%Y-%m-%dT00:00:00Z")
    ds = dt.date.fromisoformat(logical[:10])
    deliver(ds, users)

    # The pipeline has no clock: the scheduler starts it when the source's Asset is updated.
    http("PATCH", f"/api/v2/dags/{DAG_ID}", token, {"is_paused": False})
    triggered_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    source_run = trigger(SOURCE_DAG_ID, logical, token)
    http("PATCH", f"/api/v2/dags/{SOURCE_DAG_ID}", token, {"is_paused": False})
    wait_run(SOURCE_DAG_ID, source_run, token, timeout)

    def asset_triggered_run():
        query = f"run_type=asset_triggered&run_after_gte={urllib.parse.quote(triggered_at)}"
        runs = http("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?{query}", token)["dag_runs"]
        return runs[0]["dag_run_id"] if runs else None

    run_id = wait_for(f"the scheduler to start {DAG_ID} on the Asset", asset_triggered_run, 300)
    events = http("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/upstreamAssetEvents", token)
    staged = [e["extra"].get("ds") for e in events.get("asset_events", [])]
    say(f"{SOURCE_DAG_ID} updated nightshift.raw.pozytywka (ds {staged}): {DAG_ID} run {run_id}")
    if str(ds) not in staged:
        raise SmokeFailed(f"{DAG_ID} run {run_id} was not started by the event of ds={ds}")
    tries = wait_run(DAG_ID, run_id, token, timeout)
    if BACKEND == "docker":
        # The scheduler's task started a trainer container: its log says so.
        log = http(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/train_model/logs/"
            f"{tries['train_model']}",
            token,
        )
        if "Starting docker container from image" not in json.dumps(log):
            raise SmokeFailed("train_model did not start a trainer container (backend docker)")
        say("train_model ran in a trainer container (backend docker)")
    mart_rows, lake_rows = published_rows(ds)
    if mart_rows == 0 or mart_rows != lake_rows:
        raise SmokeFailed(
            f"marts.skip_scores has {mart_rows} rows for ds={ds}, the lake's Parquet {lake_rows}"
        )
    say(
        f"OK: {SOURCE_DAG_ID} then {DAG_ID} (on its Asset) ds={ds} succeeded; "
        f"marts.skip_scores {mart_rows:,} rows = lake outputs/skip_scores/ds={ds} "
        f"{lake_rows:,} rows ({time.monotonic() - started:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=120, help="synthetic users (default 120)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds for the run")
    args = parser.parse_args(argv)
    try:
        smoke(args.users, args.timeout)
    except SmokeFailed as exc:
        print(f"stack-smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
