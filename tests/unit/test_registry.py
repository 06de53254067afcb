"""The registry and the champion gate, on hand-written manifests in a temporary lake."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlcore import registry, warehouse
from mlcore.lake import LocalLake
from mlcore.registry import RegistryError

PIPELINE = "music_skip"
V1, V2 = "2024-03-30-aaaaaaaaaa", "2024-03-31-bbbbbbbbbb"
TOL = 0.005
GATE = {
    "metric": "roc_auc",
    "greater_is_better": True,
    "must_beat": ["always_played", "gradient_boosting"],
    "baseline_tolerance": 0.01,
    "tolerance_applies_to": ["gradient_boosting"],
}


def metrics(auc: float | None) -> dict:
    return {"accuracy": 0.7, "roc_auc": auc, "log_loss": 0.55, "f1_skip": 0.5, "n": 800}


def write_manifest(
    lake: LocalLake,
    version: str,
    *,
    simple: float | None,
    advanced: float | None,
    gb: float = 0.70,
    champions: dict | None = None,
) -> dict:
    """A manifest as music_skip_train writes it, reduced to what the gate reads."""
    ds = version[:10]
    manifest = {
        "pipeline": PIPELINE,
        "version": version,
        "ds": ds,
        "created_at": f"{ds}T03:00:00+00:00",
        "data_fingerprint": "f" * 64,
        "params": {"seed": 42},
        "gate": GATE,
        "models": {
            name: {"metrics": metrics(auc), "artifact": f"models/{PIPELINE}/{version}/{name}.keras"}
            for name, auc in (("mlp_simple", simple), ("mlp_advanced", advanced))
        },
        "baselines": {
            "always_played": {"metrics": metrics(0.5), "artifact": None},
            "gradient_boosting": {
                "metrics": metrics(gb),
                "artifact": f"models/{PIPELINE}/{version}/gradient_boosting.pkl",
            },
        },
        "champions": {
            name: {"version": v, "metrics": metrics(auc)}
            for name, (v, auc) in (champions or {}).items()
        },
    }
    lake.write_text(f"models/{PIPELINE}/{version}/manifest.json", json.dumps(manifest))
    return manifest


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


@pytest.fixture
def con(tmp_path):
    with warehouse.open_warehouse(tmp_path / "wh.duckdb") as con:
        yield con


def rows(con) -> list[tuple]:
    return con.execute(
        "select version, model_name, status from ops.model_runs order by version, model_name"
    ).fetchall()


def champion_json(lake: LocalLake) -> dict:
    return json.loads(lake.read_text(f"models/{PIPELINE}/champion.json"))


def test_first_run_that_beats_the_baselines_is_promoted(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.695)  # 0.695 is within 0.01 of 0.700
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)

    assert {n: (r["status"], r["serving_version"]) for n, r in result.items()} == {
        "mlp_simple": ("champion", V1),
        "mlp_advanced": ("champion", V1),
    }
    assert result["mlp_simple"]["version"] == V1
    assert result["mlp_simple"]["reason"] == (
        "roc_auc 0.750 beats always_played 0.500, gradient_boosting 0.700 - 0.010; "
        "no champion evaluated on this holdout"
    )
    assert rows(con) == [(V1, "mlp_advanced", "champion"), (V1, "mlp_simple", "champion")]
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}
    ds, baselines, uri, created = con.execute(
        "select ds, baseline_metrics, artifact_uri, created_at from ops.model_runs "
        "where model_name = 'mlp_simple'"
    ).fetchone()
    assert ds == dt.date(2024, 3, 30)
    assert json.loads(baselines)["gradient_boosting"]["roc_auc"] == 0.70
    assert set(json.loads(baselines)) == {"always_played", "gradient_boosting"}
    assert uri == lake.url(f"models/{PIPELINE}/{V1}/mlp_simple.keras")
    assert created == dt.datetime(2024, 3, 30, 3, 0)


def test_rejected_against_the_baselines_with_no_champion_serves_nothing(con, lake):
    write_manifest(lake, V1, simple=0.612, advanced=0.5)
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)

    assert result["mlp_simple"] == {
        "status": "rejected",
        "version": V1,
        "reason": "roc_auc 0.612 does not beat gradient_boosting 0.700 - 0.010",
        "serving_version": None,
    }
    # always_played must be beaten outright: no tolerance on the trivial baseline
    assert result["mlp_advanced"]["reason"] == (
        "roc_auc 0.500 does not beat always_played 0.500, gradient_boosting 0.700 - 0.010"
    )
    assert rows(con) == [(V1, "mlp_advanced", "rejected"), (V1, "mlp_simple", "rejected")]
    assert champion_json(lake) == {}
    assert registry.champion(con, PIPELINE, "mlp_simple") is None


def test_undefined_metric_is_rejected(con, lake):
    write_manifest(lake, V1, simple=None, advanced=0.75)
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    assert result["mlp_simple"]["status"] == "rejected"
    assert "undefined" in result["mlp_simple"]["reason"]
    assert result["mlp_advanced"]["status"] == "champion"


def test_worse_than_the_champion_beyond_tolerance_is_rejected(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    # Today's holdout: the champions score 0.760; simple is 0.010 behind, advanced 0.005.
    write_manifest(
        lake,
        V2,
        simple=0.75,
        advanced=0.755,
        champions={"mlp_simple": (V1, 0.76), "mlp_advanced": (V1, 0.76)},
    )
    result = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)

    assert result["mlp_simple"] == {
        "status": "rejected",
        "version": V2,
        "reason": f"roc_auc 0.750 is worse than champion {V1} 0.760 by more than 0.005",
        "serving_version": V1,
    }
    assert result["mlp_advanced"]["status"] == "champion"  # exactly at the tolerance: kept
    assert result["mlp_advanced"]["serving_version"] == V2
    assert result["mlp_advanced"]["reason"].endswith(f"champion {V1} 0.760 (tolerance 0.005)")
    assert rows(con) == [
        (V1, "mlp_advanced", "retired"),
        (V1, "mlp_simple", "champion"),
        (V2, "mlp_advanced", "champion"),
        (V2, "mlp_simple", "rejected"),
    ]
    assert champion_json(lake) == {"mlp_advanced": V2, "mlp_simple": V1}
    assert registry.champion(con, PIPELINE, "mlp_simple")["version"] == V1
    assert registry.champion(con, PIPELINE, "mlp_advanced")["version"] == V2
    assert registry.serving_versions(con, PIPELINE) == {"mlp_advanced": V2, "mlp_simple": V1}


def test_regating_a_version_is_idempotent(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    write_manifest(
        lake,
        V2,
        simple=0.70,
        advanced=0.80,
        champions={"mlp_simple": (V1, 0.76), "mlp_advanced": (V1, 0.76)},
    )
    first = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    table = con.execute("select * from ops.model_runs order by version, model_name").fetchall()

    again = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)

    assert again == first
    assert con.execute("select * from ops.model_runs order by version, model_name").fetchall() == (
        table
    )
    assert champion_json(lake) == {"mlp_advanced": V2, "mlp_simple": V1}


def test_a_failed_gate_leaves_the_table_as_it_was(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    before = rows(con)
    manifest = write_manifest(lake, V2, simple=0.80, advanced=0.80)
    del manifest["models"]["mlp_simple"]["metrics"]  # garbled: the second model breaks the loop
    lake.write_text(f"models/{PIPELINE}/{V2}/manifest.json", json.dumps(manifest))

    with pytest.raises(KeyError):
        registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    assert rows(con) == before
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}


def test_missing_manifest_is_a_clear_error(con, lake):
    with pytest.raises(RegistryError, match="no manifest at .*did not finish"):
        registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)


def test_latest_metrics_reports_the_latest_run(con, lake):
    assert registry.latest_metrics(con, PIPELINE)["version"] is None
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    write_manifest(lake, V2, simple=0.60, advanced=0.80, champions={"mlp_advanced": (V1, 0.75)})
    registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)

    latest = registry.latest_metrics(con, PIPELINE)
    assert latest["version"] == V2 and latest["ds"] == "2024-03-31"
    assert latest["models"]["mlp_simple"]["status"] == "rejected"
    assert latest["models"]["mlp_advanced"]["status"] == "champion"
    assert latest["models"]["mlp_advanced"]["metrics"]["roc_auc"] == 0.80
    assert latest["baselines"]["gradient_boosting"]["roc_auc"] == 0.70
    assert latest["champions"] == {"mlp_advanced": V2, "mlp_simple": V1}
    json.dumps(latest)  # JSON-ready for `nightshift metrics --json`

    older = registry.latest_metrics(con, PIPELINE, ds=dt.date(2024, 3, 30))
    assert older["version"] == V1
    assert older["models"]["mlp_advanced"]["status"] == "retired"


def test_lower_is_better_metrics_gate_the_other_way():
    """Forecasting pipelines gate on errors (MAE): smaller must win, slack is added."""
    manifest = {
        "gate": {"metric": "mae", "greater_is_better": False, "must_beat": ["seasonal_naive"]},
        "models": {"lstm": {"metrics": {"mae": 11.0}}},
        "baselines": {"seasonal_naive": {"metrics": {"mae": 12.0}}},
        "champions": {"lstm": {"version": "old", "metrics": {"mae": 10.0}}},
    }
    status, reason = registry.decide("lstm", manifest, tolerance=0.5)
    assert status == "rejected"
    assert reason == "mae 11.000 is worse than champion old 10.000 by more than 0.500"
    assert registry.decide("lstm", manifest, tolerance=1.0)[0] == "champion"
    manifest["models"]["lstm"]["metrics"]["mae"] = 12.5
    assert registry.decide("lstm", manifest, tolerance=1.0) == (
        "rejected",
        "mae 12.500 does not beat seasonal_naive 12.000",
    )
