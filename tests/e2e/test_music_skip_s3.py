"""The same pipeline steps with the lake on a real S3-compatible server publish the same rows.

Runs the steps in-process (no scheduler), once with the lake in a folder and once in a bucket
on the test S3 server, from the same synthetic delivery, and compares every published mart.
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb

from mlcore import steps
from mlcore.config import Settings
from mlcore.lake import LocalLake, open_lake
from mlcore.manifest import RunManifest
from mlcore.synth.pozytywka import write_delivery

DS = dt.date(2024, 1, 30)
MARTS = ("skip_scores", "cache_plan", "ab_assignments", "ab_report")


def run_pipeline(settings: Settings) -> dict:
    steps.ingest("pozytywka", DS.isoformat(), settings)
    steps.validate("pozytywka", DS.isoformat(), settings)
    steps.stage("pozytywka", DS.isoformat(), settings)
    steps.build_features("music_skip", DS.isoformat(), settings)
    steps.train("music_skip", DS.isoformat(), settings)
    steps.gate("music_skip", DS.isoformat(), settings)
    steps.publish("music_skip", DS.isoformat(), settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return {t: con.execute(f"select * from marts.{t} order by all").fetchall() for t in MARTS}


def test_s3_lake_publishes_the_same_rows_as_a_local_lake(
    tmp_path, s3_settings, monkeypatch, caplog, capfd
):
    # The GRU challenger reads and writes the lake as the MLPs do (tests/conformance runs it);
    # turned off here, which this test also checks, to halve its training time.
    monkeypatch.setenv("NIGHTSHIFT_MUSIC_SKIP_SEQUENCE_CHALLENGER", "false")
    source = tmp_path / "delivery"
    write_delivery(source, DS, users=60, days=14, seed=5, defects=True)
    local = Settings(lake=str(tmp_path / "lake"), warehouse=tmp_path / "w" / "local.duckdb")
    for settings in (local, s3_settings):
        lake = open_lake(settings)
        for key in LocalLake(source).list("raw"):
            lake.put_file(source / key, key)

    on_disk = run_pipeline(local)
    with caplog.at_level(logging.DEBUG):
        on_s3 = run_pipeline(s3_settings)
    assert on_disk["skip_scores"], "nothing published"
    assert on_s3 == on_disk

    s3 = open_lake(s3_settings)
    assert s3.exists(f"outputs/skip_scores/ds={DS}/part-0.parquet")
    assert s3.exists(f"predictions/music_skip/ds={DS}/holdout.parquet")
    manifests = [k for k in s3.list("models/music_skip") if k.endswith("manifest.json")]
    assert manifests
    # the setting turned the challenger off: not trained, not saved, not scored
    manifest = RunManifest.from_json(s3.read_text(manifests[0]))
    assert manifest.challengers == {} and manifest.params["challengers"] == []
    assert not any(k.endswith("gru_session.keras") for k in s3.list("models/music_skip"))
    assert "gru_session" not in {s.model for s in manifest.scored}

    # The lake's secret reached no log line, no output, no warehouse or lake file.
    secret = s3_settings.aws_secret_access_key
    assert secret not in caplog.text
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
    assert secret not in repr(s3_settings)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    for key in s3.list(""):
        assert secret.encode() not in s3.read_bytes(key), key
