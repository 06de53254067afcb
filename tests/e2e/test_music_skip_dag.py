"""music_skip end to end through Airflow (dag.test), as `nightshift run` runs it.

Small synthetic data with the real defects; checks the marts, the lake outputs and the
registry; a second run of the same ds publishes identical rows; a corrupt delivery fails with a
clear message and leaves what was published before untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import duckdb
import pytest

from mlcore.synth.pozytywka import write_delivery

D1 = dt.date(2024, 1, 30)
D2 = D1 + dt.timedelta(days=1)
MARTS = ("skip_scores", "cache_plan", "ab_assignments", "ab_report")


# Credentials in the environment and in the lake's Airflow connection, which no log, XCom,
# asset event, Data Docs page, lake or warehouse file, or console output may show.
SECRETS = ("canary-env-9d2f-s3cr3t", "canary-conn-41be-s3cr3t")
OUTPUTS: list[str] = []


def nightshift(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "mlcore.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    OUTPUTS.append(done.stdout + done.stderr)
    return done


def marts_snapshot(warehouse, ds) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: con.execute(f"select * from marts.{t} where ds = ? order by all", [ds]).fetchall()
            for t in MARTS
        }


@pytest.fixture(scope="module")
def run_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = dict(os.environ)
    env.update(
        NIGHTSHIFT_LAKE=str(root / "lake"),
        NIGHTSHIFT_WAREHOUSE=str(root / "warehouse" / "nightshift.duckdb"),
        NIGHTSHIFT_TRAIN_BACKEND="local",
        AIRFLOW_HOME=str(root / "airflow"),
        NIGHTSHIFT_LOG_LEVEL="WARNING",
        # The GRU challenger is held to the contract by tests/conformance and tests/model; here
        # it would only double the training time of every run through Airflow.
        NIGHTSHIFT_MUSIC_SKIP_SEQUENCE_CHALLENGER="false",
        AWS_ACCESS_KEY_ID="AKIACANARY",
        AWS_SECRET_ACCESS_KEY=SECRETS[0],
        AIRFLOW_CONN_NIGHTSHIFT_LAKE=json.dumps(
            {"conn_type": "aws", "login": "AKIACANARY", "password": SECRETS[1]}
        ),
    )
    write_delivery(root / "lake", D1, users=80, days=21, seed=3, defects=True)
    return root, env


@pytest.fixture(scope="module")
def first_run(run_env):
    root, env = run_env
    result = nightshift("run", "music_skip", "--ds", D1.isoformat(), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, env


def test_publishes_marts_lake_outputs_and_registry(first_run):
    root, env = first_run
    warehouse = root / "warehouse" / "nightshift.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        scores = con.execute(
            "select count(*), count(distinct user_id), min(p_skip), max(p_skip), "
            "count(*) filter (where arm not in ('simple', 'advanced')) "
            "from marts.skip_scores where ds = ?",
            [D1],
        ).fetchone()
        assert scores[0] > 0 and scores[1] > 10
        assert 0 <= scores[2] <= scores[3] <= 1 and scores[4] == 0
        # Each user sits in one arm and is scored by that arm's model only.
        assert (
            con.execute(
                "select count(*) from (select user_id from marts.skip_scores where ds = ? "
                "group by user_id having count(distinct arm) > 1)",
                [D1],
            ).fetchone()[0]
            == 0
        )
        plan = con.execute(
            "select count(*), sum(daily_cost_change), count(distinct recommended_storage_class) "
            "from marts.cache_plan where ds = ?",
            [D1],
        ).fetchone()
        assert plan[0] > 0 and plan[1] <= 1e-9  # within the default budget: today's cost
        runs = con.execute(
            "select model_name, status from ops.model_runs where pipeline = 'music_skip'"
        ).fetchall()
        assert {"mlp_simple", "mlp_advanced"} <= {m for m, _ in runs}
        assert ("mlp_advanced", "champion") in runs
        quarantined = con.execute("select count(*) from quarantine.pozytywka_sessions").fetchone()
        assert quarantined[0] > 0  # the injected defects were caught and kept out
        assert con.execute("select count(*) from ops.validation_results").fetchone()[0] > 10

    lake = root / "lake"
    for table in MARTS:
        assert (lake / f"outputs/{table}/ds={D1}/part-0.parquet").exists(), table
    holdout = duckdb.sql(f"select * from '{lake}/predictions/music_skip/ds={D1}/holdout.parquet'")
    for col in (
        "session_id",
        "user_id",
        "track_id",
        "timestamp",
        "label",
        "p_skip_always_played",
        "p_skip_gradient_boosting",
        "p_skip_mlp_simple",
        "p_skip_mlp_advanced",
    ):
        assert col in holdout.columns, col
    assert list(lake.glob(f"reports/**/ds={D1}/**/index.html")), "no Data Docs"
    assert list(lake.glob("models/music_skip/*/evaluation.png")), "no ROC / calibration plot"

    metrics = nightshift("metrics", "music_skip", "--json", env=env)
    assert metrics.returncode == 0, metrics.stderr
    payload = json.loads(metrics.stdout)
    assert "always_played" in json.dumps(payload) and "roc_auc" in json.dumps(payload)


def test_rerun_of_the_same_ds_publishes_identical_rows(first_run):
    root, env = first_run
    warehouse = root / "warehouse" / "nightshift.duckdb"
    before = marts_snapshot(warehouse, D1)
    result = nightshift("run", "music_skip", "--ds", D1.isoformat(), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert marts_snapshot(warehouse, D1) == before


def test_corrupt_delivery_fails_clearly_and_keeps_yesterday(first_run):
    root, env = first_run
    warehouse = root / "warehouse" / "nightshift.duckdb"
    before = marts_snapshot(warehouse, D1)
    write_delivery(root / "lake", D2, users=80, days=1, seed=3, defects=True)
    sessions = root / "lake" / f"raw/pozytywka/ds={D2}/sessions.jsonl"
    sessions.write_bytes(b"\x00\x01garbage{{{\n" * 50 + b'{"timestamp": "never"}\n')

    result = nightshift("run", "music_skip", "--ds", D2.isoformat(), env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # 50 lines of garbage and one object without the declared keys: refused at ingest,
    # naming the file (the fault suite has every other way a file can break).
    assert "FAILED ingest_pozytywka" in output and "sessions.jsonl" in output, output[-3000:]
    assert marts_snapshot(warehouse, D1) == before
    assert not any(marts_snapshot(warehouse, D2).values())


def test_no_secret_reaches_a_log_xcom_asset_event_or_file(first_run):
    """Runs after the others: every run of this module, its Airflow home (metadata database
    with XCom and asset events, task logs), the lake (Data Docs, manifests) and the warehouse."""
    root, _ = first_run
    assert len(OUTPUTS) >= 2
    for secret in SECRETS:
        assert not any(secret in out for out in OUTPUTS), secret
        leaks = [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert not leaks, (secret, leaks)
    assert list((root / "airflow").rglob("*.db")), "no Airflow metadata database to search"
