"""The registry and the champion gate, on hand-written manifests in a temporary lake."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from mlcore import registry, warehouse
from mlcore.contract import ServingModel
from mlcore.lake import LocalLake
from mlcore.manifest import (
    ChampionEntry,
    Evaluation,
    GateRule,
    ManifestError,
    ModelEntry,
    RunManifest,
    ScoredModel,
)
from mlcore.registry import GateFailed, RegistryError

PIPELINE = "music_skip"
V1, V2 = "2024-03-30-aaaaaaaaaa", "2024-03-31-bbbbbbbbbb"
DS1, DS2 = dt.date(2024, 3, 30), dt.date(2024, 3, 31)
TOL = 0.005
SLOTS = ("mlp_simple", "mlp_advanced")
GATE = GateRule(
    metric="roc_auc",
    greater_is_better=True,
    must_beat=["always_played", "gradient_boosting"],
    naive="always_played",
    baseline_tolerance=0.01,
    tolerance_applies_to=["gradient_boosting"],
)


def metrics(auc: float | None) -> dict:
    return {"accuracy": 0.7, "roc_auc": auc, "log_loss": 0.55, "f1": 0.5, "n": 800}


def make_manifest(
    version: str,
    *,
    simple: float | None,
    advanced: float | None,
    gb: float = 0.70,
    champions: dict | None = None,
    scored: list[tuple[str, str]] | None = None,
) -> RunManifest:
    """A manifest as music_skip's trainer returns it, reduced to what the gate reads.

    ``scored`` defaults to what the trainer scores: both new candidates, gradient_boosting
    (the fallback) and every champion, each at its own version.
    """
    ds = version[:10]
    champions = champions or {}
    if scored is None:
        scored = [(n, version) for n in (*SLOTS, "gradient_boosting")]
        scored += [(n, v) for n, (v, _) in champions.items()]
    return RunManifest(
        pipeline=PIPELINE,
        kind="binary",
        version=version,
        ds=ds,
        created_at=f"{ds}T03:00:00+00:00",
        data_fingerprint="f" * 64,
        params={"seed": 42},
        gate=GATE,
        models={
            name: ModelEntry(
                metrics=metrics(auc), artifact=f"models/{PIPELINE}/{version}/{name}.keras"
            )
            for name, auc in (("mlp_simple", simple), ("mlp_advanced", advanced))
        },
        baselines={
            "always_played": ModelEntry(metrics=metrics(0.5), artifact=None),
            "gradient_boosting": ModelEntry(
                metrics=metrics(gb), artifact=f"models/{PIPELINE}/{version}/gradient_boosting.pkl"
            ),
        },
        champions={
            name: ChampionEntry(version=v, metrics=metrics(auc))
            for name, (v, auc) in champions.items()
        },
        scored=[ScoredModel(m, v) for m, v in scored],
        scores_key=f"predictions/{PIPELINE}/ds={ds}/scores.parquet",
        evaluation=Evaluation(
            key=f"predictions/{PIPELINE}/ds={ds}/holdout.parquet",
            columns={"label": "label"},
            scores={n: f"p_skip_{n}" for n in (*SLOTS, "always_played", "gradient_boosting")},
        ),
        counts={"input_rows": 1000, "train_rows": 800, "evaluation_rows": 200, "scored_rows": 300},
    )


def write_manifest(lake: LocalLake, version: str, **kwargs) -> RunManifest:
    manifest = make_manifest(version, **kwargs)
    lake.write_text(f"models/{PIPELINE}/{version}/manifest.json", manifest.to_json())
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


def serving_rows(con) -> list[tuple]:
    return con.execute(
        "select pipeline, ds, slot, model_name, version, status, reason, decided_at "
        "from ops.serving order by pipeline, ds, slot"
    ).fetchall()


def champion_json(lake: LocalLake) -> dict:
    return json.loads(lake.read_text(f"models/{PIPELINE}/champion.json"))


def served(con, ds: dt.date) -> dict:
    """{slot: (model_name, version, status)} from ops.serving for ``ds``."""
    return {
        slot: (s.model_name, s.version, s.status)
        for slot, s in registry.serving_models(con, PIPELINE, ds).items()
    }


def test_manifest_round_trips_through_json():
    manifest = make_manifest(V2, simple=0.7, advanced=0.8, champions={"mlp_simple": (V1, 0.75)})
    assert RunManifest.from_json(manifest.to_json()) == manifest
    assert RunManifest.from_dict(json.loads(manifest.to_json())) == manifest


def test_first_run_that_beats_the_baselines_is_promoted(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.695)  # 0.695 is within 0.01 of 0.700
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    decisions = result["decisions"]

    assert {n: (r["status"], r["serving_version"]) for n, r in decisions.items()} == {
        "mlp_simple": ("champion", V1),
        "mlp_advanced": ("champion", V1),
    }
    assert decisions["mlp_simple"]["version"] == V1
    assert decisions["mlp_simple"]["serving_model"] == "mlp_simple"
    assert decisions["mlp_simple"]["reason"] == (
        "roc_auc 0.750 beats always_played 0.500, gradient_boosting 0.700 - 0.010; "
        "no champion evaluated on this holdout"
    )
    assert result["degraded"] is None
    assert {slot: s.status for slot, s in result["serving"].items()} == {
        "mlp_simple": "champion",
        "mlp_advanced": "champion",
    }
    assert rows(con) == [(V1, "mlp_advanced", "champion"), (V1, "mlp_simple", "champion")]
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}
    assert served(con, DS1) == {
        "mlp_advanced": ("mlp_advanced", V1, "champion"),
        "mlp_simple": ("mlp_simple", V1, "champion"),
    }
    assert registry.serving_models(con, PIPELINE, DS1) == result["serving"]
    ds, baselines, uri, created = con.execute(
        "select ds, baseline_metrics, artifact_uri, created_at from ops.model_runs "
        "where model_name = 'mlp_simple'"
    ).fetchone()
    assert ds == DS1
    assert json.loads(baselines)["gradient_boosting"]["roc_auc"] == 0.70
    assert set(json.loads(baselines)) == {"always_played", "gradient_boosting"}
    assert uri == lake.url(f"models/{PIPELINE}/{V1}/mlp_simple.keras")
    assert created == dt.datetime(2024, 3, 30, 3, 0)


def test_rejected_with_no_champion_is_served_degraded_by_gradient_boosting(con, lake):
    """Both slots rejected, no champion: the run degrades to gradient_boosting, not a failure."""
    write_manifest(lake, V1, simple=0.612, advanced=0.5)
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    decisions = result["decisions"]

    assert decisions["mlp_simple"] == {
        "status": "rejected",
        "version": V1,
        "reason": "roc_auc 0.612 does not beat gradient_boosting 0.700 - 0.010",
        "serving_version": V1,
        "serving_model": "gradient_boosting",
    }
    # always_played must be beaten outright: no tolerance on the trivial baseline
    assert decisions["mlp_advanced"]["reason"] == (
        "roc_auc 0.500 does not beat always_played 0.500, gradient_boosting 0.700 - 0.010"
    )
    assert decisions["mlp_advanced"]["serving_model"] == "gradient_boosting"

    degraded = result["degraded"]
    assert isinstance(degraded, str) and "\n" not in degraded
    assert "mlp_advanced, mlp_simple" in degraded and "gradient_boosting" in degraded
    assert "always_played" in degraded
    for slot in SLOTS:
        s = result["serving"][slot]
        assert s == ServingModel(slot, "gradient_boosting", V1, "degraded", degraded)
    assert served(con, DS1) == {
        slot: ("gradient_boosting", V1, "degraded") for slot in ("mlp_advanced", "mlp_simple")
    }
    assert registry.serving_models(con, PIPELINE, DS1) == result["serving"]

    assert rows(con) == [
        (V1, "gradient_boosting", "degraded"),
        (V1, "mlp_advanced", "rejected"),
        (V1, "mlp_simple", "rejected"),
    ]
    reason, uri = con.execute(
        "select reason, artifact_uri from ops.model_runs where model_name = 'gradient_boosting'"
    ).fetchone()
    assert reason.startswith("serves mlp_advanced, mlp_simple; ")
    assert degraded in reason
    assert uri == lake.url(f"models/{PIPELINE}/{V1}/gradient_boosting.pkl")
    # A degraded fallback is never a champion.
    assert champion_json(lake) == {}
    assert registry.champion(con, PIPELINE, "mlp_simple") is None
    assert registry.champion(con, PIPELINE, "gradient_boosting") is None


def test_nothing_beats_the_naive_baseline_fails_the_gate(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    before_runs = con.execute(
        "select * from ops.model_runs order by version, model_name"
    ).fetchall()
    before_serving = serving_rows(con)
    # Tonight nothing beats always_played (0.500), though all are scored; no champion.
    write_manifest(lake, V2, simple=0.49, advanced=0.5, gb=0.5)

    with pytest.raises(GateFailed) as info:
        registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    message = str(info.value)
    assert "\n" not in message
    assert "nothing beats always_played" in message
    assert con.execute("select * from ops.model_runs order by version, model_name").fetchall() == (
        before_runs
    )
    assert serving_rows(con) == before_serving
    assert served(con, DS2) == {}
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}


def test_an_unscored_model_never_serves(con, lake):
    """The fallback must have scores for tonight's rows: gradient_boosting unscored, the best
    scored model that beats always_played serves instead, however it fared at the gate."""
    write_manifest(
        lake, V1, simple=0.6, advanced=0.55, scored=[("mlp_simple", V1), ("mlp_advanced", V1)]
    )
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    assert served(con, DS1) == {slot: ("mlp_simple", V1, "degraded") for slot in SLOTS}
    assert rows(con) == [(V1, "mlp_advanced", "rejected"), (V1, "mlp_simple", "degraded")]
    assert "serving mlp_simple roc_auc 0.600" in result["degraded"]

    write_manifest(lake, V2, simple=0.6, advanced=0.55, scored=[])
    with pytest.raises(GateFailed, match="nothing beats always_played"):
        registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    assert served(con, DS2) == {}


def test_undefined_metric_is_rejected(con, lake):
    write_manifest(lake, V1, simple=None, advanced=0.75)
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)["decisions"]
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
    out = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    result = out["decisions"]

    assert result["mlp_simple"] == {
        "status": "rejected",
        "version": V2,
        "reason": f"roc_auc 0.750 is worse than champion {V1} 0.760 by more than 0.005",
        "serving_version": V1,
        "serving_model": "mlp_simple",
    }
    assert result["mlp_advanced"]["status"] == "champion"  # exactly at the tolerance: kept
    assert result["mlp_advanced"]["serving_version"] == V2
    assert result["mlp_advanced"]["reason"].endswith(f"champion {V1} 0.760 (tolerance 0.005)")
    assert out["degraded"] is None
    assert rows(con) == [
        (V1, "mlp_advanced", "retired"),
        (V1, "mlp_simple", "champion"),
        (V2, "mlp_advanced", "champion"),
        (V2, "mlp_simple", "rejected"),
    ]
    assert champion_json(lake) == {"mlp_advanced": V2, "mlp_simple": V1}
    assert registry.champion(con, PIPELINE, "mlp_simple")["version"] == V1
    assert registry.champion(con, PIPELINE, "mlp_advanced")["version"] == V2
    assert served(con, DS2) == {
        "mlp_advanced": ("mlp_advanced", V2, "champion"),
        "mlp_simple": ("mlp_simple", V1, "champion"),
    }
    # The night before keeps its own serving rows.
    assert served(con, DS1) == {
        "mlp_advanced": ("mlp_advanced", V1, "champion"),
        "mlp_simple": ("mlp_simple", V1, "champion"),
    }


def test_rejected_slot_keeps_a_champion_scored_tonight(con, lake):
    """Rejected against the baselines, but the champion was re-scored: it serves, not degraded."""
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    write_manifest(
        lake,
        V2,
        simple=0.6,  # does not beat gradient_boosting 0.700 - 0.010
        advanced=0.80,
        champions={"mlp_simple": (V1, 0.74), "mlp_advanced": (V1, 0.74)},
    )
    result = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)

    assert result["degraded"] is None
    simple = result["serving"]["mlp_simple"]
    assert (simple.model_name, simple.version, simple.status) == ("mlp_simple", V1, "champion")
    assert simple.reason.startswith("champion kept: roc_auc 0.600 does not beat")
    assert result["decisions"]["mlp_simple"]["status"] == "rejected"
    assert result["decisions"]["mlp_simple"]["serving_version"] == V1
    assert served(con, DS2) == {
        "mlp_advanced": ("mlp_advanced", V2, "champion"),
        "mlp_simple": ("mlp_simple", V1, "champion"),
    }
    assert "gradient_boosting" not in {m for _, m, _ in rows(con)}
    assert champion_json(lake) == {"mlp_advanced": V2, "mlp_simple": V1}


def test_a_champion_not_scored_tonight_cannot_keep_serving(con, lake):
    """A champion that was left out of tonight's scoring has no scores: the slot degrades."""
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    write_manifest(
        lake,
        V2,
        simple=0.6,
        advanced=0.80,
        champions={"mlp_simple": (V1, 0.74)},
        scored=[("mlp_simple", V2), ("mlp_advanced", V2), ("gradient_boosting", V2)],
    )
    result = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    # The best scored model that beats always_played is the new mlp_advanced (0.80).
    assert result["serving"]["mlp_simple"].model_name == "mlp_advanced"
    assert result["serving"]["mlp_simple"].status == "degraded"
    assert result["degraded"] and "mlp_simple" in result["degraded"]


def test_a_champion_that_also_fills_a_rejected_slot_stays_champion(con, lake):
    """The run's best model is a champion of its own slot and serves the rejected other slot."""
    write_manifest(lake, V1, simple=0.75, advanced=0.60)
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)

    assert result["decisions"]["mlp_simple"]["status"] == "champion"
    assert result["decisions"]["mlp_advanced"]["status"] == "rejected"
    assert result["decisions"]["mlp_advanced"]["serving_model"] == "mlp_simple"
    assert isinstance(result["degraded"], str) and "mlp_simple" in result["degraded"]
    assert served(con, DS1) == {
        "mlp_advanced": ("mlp_simple", V1, "degraded"),
        "mlp_simple": ("mlp_simple", V1, "champion"),
    }
    # mlp_simple's row stays a champion (no gradient_boosting row: it is not the best).
    assert rows(con) == [(V1, "mlp_advanced", "rejected"), (V1, "mlp_simple", "champion")]
    reason = con.execute(
        "select reason from ops.model_runs where model_name = 'mlp_simple'"
    ).fetchone()[0]
    assert reason.startswith("serves mlp_advanced (roc_auc 0.750 beats always_played")
    assert champion_json(lake) == {"mlp_simple": V1}
    assert registry.champion(con, PIPELINE, "mlp_simple")["version"] == V1


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
    serving = serving_rows(con)

    again = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)

    assert again == first
    assert con.execute("select * from ops.model_runs order by version, model_name").fetchall() == (
        table
    )
    assert serving_rows(con) == serving
    assert champion_json(lake) == {"mlp_advanced": V2, "mlp_simple": V1}


def test_regating_a_degraded_version_is_idempotent(con, lake):
    write_manifest(lake, V1, simple=0.612, advanced=0.5)
    first = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    table = con.execute("select * from ops.model_runs order by version, model_name").fetchall()
    serving = serving_rows(con)

    again = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)

    assert again == first
    assert con.execute("select * from ops.model_runs order by version, model_name").fetchall() == (
        table
    )
    assert serving_rows(con) == serving
    assert len(table) == 3 and len(serving) == 2
    assert champion_json(lake) == {}


def test_a_garbled_manifest_leaves_the_table_as_it_was(con, lake):
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    before, before_serving = rows(con), serving_rows(con)
    manifest = json.loads(write_manifest(lake, V2, simple=0.80, advanced=0.80).to_json())
    del manifest["models"]["mlp_simple"]["metrics"]  # garbled
    lake.write_text(f"models/{PIPELINE}/{V2}/manifest.json", json.dumps(manifest))

    with pytest.raises(RegistryError) as info:
        registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    assert "\n" not in str(info.value)
    assert rows(con) == before
    assert serving_rows(con) == before_serving
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}


def test_a_failure_inside_the_transaction_leaves_the_tables_as_they_were(con, lake, monkeypatch):
    write_manifest(lake, V1, simple=0.75, advanced=0.75)
    registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)
    before, before_serving = rows(con), serving_rows(con)
    write_manifest(
        lake,
        V2,
        simple=0.80,
        advanced=0.80,
        champions={"mlp_simple": (V1, 0.75), "mlp_advanced": (V1, 0.75)},
    )
    real = registry._insert_run_row
    calls = []

    def flaky(*args, **kwargs):  # the second model breaks the loop, after the first's writes
        calls.append(args)
        if len(calls) == 2:
            raise KeyError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "_insert_run_row", flaky)
    with pytest.raises(KeyError):
        registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    assert len(calls) == 2
    assert rows(con) == before
    assert serving_rows(con) == before_serving
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}


def test_missing_manifest_is_a_clear_error(con, lake):
    with pytest.raises(RegistryError, match="no manifest at .*did not finish"):
        registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)


@pytest.mark.parametrize("field", ["kind", "evaluation"])
def test_manifest_missing_a_field_is_a_one_line_error(lake, field):
    data = json.loads(make_manifest(V1, simple=0.75, advanced=0.75).to_json())
    del data[field]
    lake.write_text(f"models/{PIPELINE}/{V1}/manifest.json", json.dumps(data))
    with pytest.raises(RegistryError) as info:
        registry.read_manifest(lake, PIPELINE, V1)
    message = str(info.value)
    assert "\n" not in message
    assert repr(field) in message


def test_read_manifest_returns_a_run_manifest(lake):
    written = write_manifest(lake, V1, simple=0.75, advanced=0.75)
    read = registry.read_manifest(lake, PIPELINE, V1)
    assert isinstance(read, RunManifest)
    assert read == written


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

    older = registry.latest_metrics(con, PIPELINE, ds=DS1)
    assert older["version"] == V1
    assert older["models"]["mlp_advanced"]["status"] == "retired"


def test_lower_is_better_metrics_gate_the_other_way():
    """Forecasting pipelines gate on errors (MAE): smaller must win, slack is added."""
    manifest = RunManifest(
        pipeline="demand",
        kind="forecast",
        version="2024-03-31-cccccccccc",
        ds="2024-03-31",
        data_fingerprint="f" * 64,
        params={},
        gate=GateRule(metric="mae", greater_is_better=False, must_beat=["seasonal_naive"]),
        models={"lstm": ModelEntry(metrics={"mae": 11.0})},
        baselines={"seasonal_naive": ModelEntry(metrics={"mae": 12.0})},
        champions={"lstm": ChampionEntry(version="old", metrics={"mae": 10.0})},
        evaluation=Evaluation(key="predictions/demand/ds=2024-03-31/backtest.parquet"),
        counts={"input_rows": 10, "train_rows": 8, "evaluation_rows": 2, "scored_rows": 2},
    )
    assert manifest.gate.naive == "seasonal_naive"
    status, reason = registry.decide("lstm", manifest, tolerance=0.5)
    assert status == "rejected"
    assert reason == "mae 11.000 is worse than champion old 10.000 by more than 0.500"
    assert registry.decide("lstm", manifest, tolerance=1.0)[0] == "champion"
    manifest.models["lstm"].metrics["mae"] = 12.5
    assert registry.decide("lstm", manifest, tolerance=1.0) == (
        "rejected",
        "mae 12.500 does not beat seasonal_naive 12.000",
    )
    # The fallback never picks the naive baseline itself; 12.5 does not beat it either.
    assert registry.fallback(manifest) is None


def _with_challenger(manifest: RunManifest, auc: float) -> RunManifest:
    version = manifest.version
    manifest.challengers = {
        "gru_session": ModelEntry(
            metrics=metrics(auc), artifact=f"models/{PIPELINE}/{version}/gru_session.keras"
        )
    }
    return manifest


@pytest.mark.parametrize(
    ("auc", "verdict"),
    [
        (0.80, "roc_auc 0.800 beats always_played 0.500, gradient_boosting 0.700 - 0.010"),
        (0.60, "roc_auc 0.600 does not beat gradient_boosting 0.700 - 0.010"),
    ],
)
def test_a_challenger_is_recorded_with_a_verdict_and_serves_nothing(con, lake, auc, verdict):
    manifest = _with_challenger(make_manifest(V1, simple=0.75, advanced=0.72), auc)
    lake.write_text(f"models/{PIPELINE}/{V1}/manifest.json", manifest.to_json())
    result = registry.gate_run(con, lake, PIPELINE, V1, tolerance=TOL)

    assert set(result["decisions"]) == set(result["serving"]) == {"mlp_simple", "mlp_advanced"}
    assert result["degraded"] is None  # even a challenger that fails its bars degrades nothing
    assert (V1, "gru_session", "challenger") in rows(con)
    assert champion_json(lake) == {"mlp_advanced": V1, "mlp_simple": V1}
    reason = con.execute(
        "select reason from ops.model_runs where model_name = 'gru_session'"
    ).fetchone()[0]
    assert reason == f"challenger, serves no slot: {verdict}; best slot model mlp_simple 0.750"
    latest = registry.latest_metrics(con, PIPELINE)
    assert latest["models"]["gru_session"]["status"] == "challenger"
    assert latest["models"]["gru_session"]["metrics"]["roc_auc"] == auc


def test_a_challenger_round_trips_and_cannot_share_a_name():
    manifest = _with_challenger(make_manifest(V1, simple=0.75, advanced=0.72), 0.7)
    assert RunManifest.from_json(manifest.to_json()) == manifest
    assert manifest.entry("gru_session").metrics["roc_auc"] == 0.7
    data = json.loads(manifest.to_json())
    data["challengers"]["gradient_boosting"] = data["challengers"]["gru_session"]
    with pytest.raises(ManifestError, match="'gradient_boosting' is in both baselines and chall"):
        RunManifest.from_dict(data)


def test_a_naive_baseline_that_may_serve_serves_when_nothing_beats_it(con, lake):
    """A forecast pipeline's seasonal naive is a forecast ops can use: with naive_may_serve
    it serves (degraded, saying so) where another pipeline's gate would fail. It must still
    have been scored tonight, and it never becomes a champion."""
    manifest = make_manifest(V2, simple=0.49, advanced=0.5, gb=0.5)
    manifest.gate = dataclasses.replace(manifest.gate, naive_may_serve=True)
    manifest.scored.append(ScoredModel("always_played", V2))
    lake.write_text(f"models/{PIPELINE}/{V2}/manifest.json", manifest.to_json())
    result = registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
    assert served(con, DS2) == {slot: ("always_played", V2, "degraded") for slot in SLOTS}
    assert "no model of the run beats always_played" in result["degraded"]
    assert "serving always_played roc_auc 0.500 itself" in result["degraded"]
    assert champion_json(lake) == {}  # no champion: a degraded night promotes nothing

    # Not scored tonight: it cannot serve, and the gate fails as before.
    manifest.scored = [s for s in manifest.scored if s.model != "always_played"]
    lake.write_text(f"models/{PIPELINE}/{V2}/manifest.json", manifest.to_json())
    with pytest.raises(GateFailed, match="nothing beats always_played"):
        registry.gate_run(con, lake, PIPELINE, V2, tolerance=TOL)
