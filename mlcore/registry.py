"""The model registry and the champion gate, on ``ops.model_runs`` and the lake.

A training run leaves ``models/<pipeline>/<version>/manifest.json`` (metrics of every model, of
the baselines and of the current champions, all on the same holdout rows). ``gate_run`` turns it
into one ``ops.model_runs`` row per published model and decides, per model name:

- **rejected** when the model does not beat every ``must_beat`` baseline (a baseline named in
  ``tolerance_applies_to`` only has to be matched within ``baseline_tolerance``), or when it is
  worse than the current champion by more than ``tolerance``; the champion keeps serving;
- **champion** otherwise; the previous champion row becomes **retired**.

``models/<pipeline>/champion.json`` ({model_name: version}) mirrors the champion rows, so that
the trainer, which never opens the warehouse, knows which models to compare against and score.
Statuses in ``ops.model_runs``: candidate | champion | rejected | retired.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING

from mlcore.lake import Lake, LakeError, models_prefix

if TYPE_CHECKING:  # the trainer imports champion_key from here and never opens the warehouse
    import duckdb

log = logging.getLogger(__name__)

# Metrics equal up to float noise count as equal: "worse by more than 0.005" must not fire at
# exactly 0.005 because 0.72 - 0.715 is 0.0050000000000000044.
_EPS = 1e-12


class RegistryError(RuntimeError):
    """A run cannot be registered (missing or malformed manifest)."""


def champion_key(pipeline: str) -> str:
    """Lake key of the pipeline's champion mirror, ``{model_name: version}``."""
    return f"{models_prefix(pipeline)}/champion.json"


def manifest_key(pipeline: str, version: str) -> str:
    return f"{models_prefix(pipeline, version)}/manifest.json"


def read_manifest(lake: Lake, pipeline: str, version: str) -> dict:
    """The run's manifest; RegistryError (one line) when the run did not finish or is garbled."""
    key = manifest_key(pipeline, version)
    try:
        manifest = json.loads(lake.read_text(key))
    except LakeError as exc:
        raise RegistryError(
            f"no manifest at {lake.url(key)}: the training run did not finish"
        ) from exc
    except json.JSONDecodeError as exc:
        raise RegistryError(f"manifest {lake.url(key)} is not valid JSON: {exc}") from exc
    for field in ("version", "ds", "gate", "models", "baselines"):
        if field not in manifest:
            raise RegistryError(f"manifest {lake.url(key)} lacks {field!r}")
    if manifest["version"] != version:
        raise RegistryError(f"manifest {lake.url(key)} is for version {manifest['version']}")
    return manifest


# ---- the decision -----------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _beats(value: float, other: float, slack: float, greater_is_better: bool) -> bool:
    """Whether ``value`` is better than ``other`` once ``other`` is moved by ``slack`` our way."""
    return value > other - slack if greater_is_better else value < other + slack


def _bar(name: str, value: float, slack: float, greater_is_better: bool) -> str:
    """'gradient_boosting 0.700 - 0.010' (or '+' when lower is better; no slack: no sign)."""
    if not slack:
        return f"{name} {_fmt(value)}"
    return f"{name} {_fmt(value)} {'-' if greater_is_better else '+'} {_fmt(slack)}"


def decide(name: str, manifest: dict, tolerance: float) -> tuple[str, str]:
    """(status, reason) for the published model ``name`` of a run, from its manifest alone.

    The champion to compare with is the one the trainer evaluated on this run's holdout
    (``manifest["champions"][name]``), so both numbers come from the same rows. Beating a
    baseline is strict (better than its value, moved by the slack); the champion may be
    matched within ``tolerance``.
    """
    gate = manifest["gate"]
    metric = gate["metric"]
    greater = gate.get("greater_is_better", True)
    must_beat = gate.get("must_beat", [])
    slack_for = set(gate.get("tolerance_applies_to", must_beat))
    baseline_tolerance = float(gate.get("baseline_tolerance", 0.0))

    value = manifest["models"][name]["metrics"].get(metric)
    if value is None:
        return "rejected", f"{metric} is undefined on this run's holdout (a single class?)"

    failures, passed = [], []
    for baseline in must_beat:
        base = manifest["baselines"][baseline]["metrics"].get(metric)
        if base is None:
            passed.append(f"{baseline} (no {metric})")
            continue
        slack = baseline_tolerance if baseline in slack_for else 0.0
        bar = _bar(baseline, base, slack, greater)
        (passed if _beats(value, base, slack, greater) else failures).append(bar)
    if failures:
        return "rejected", f"{metric} {_fmt(value)} does not beat {', '.join(failures)}"
    reason = f"{metric} {_fmt(value)} beats {', '.join(passed) or 'no baseline'}"

    champ = (manifest.get("champions") or {}).get(name) or {}
    champ_value = (champ.get("metrics") or {}).get(metric)
    if champ_value is None:
        return "champion", f"{reason}; no champion evaluated on this holdout"
    shortfall = champ_value - value if greater else value - champ_value
    if shortfall > tolerance + _EPS:
        return "rejected", (
            f"{metric} {_fmt(value)} is worse than champion {champ['version']} "
            f"{_fmt(champ_value)} by more than {_fmt(tolerance)}"
        )
    return "champion", (
        f"{reason}; champion {champ['version']} {_fmt(champ_value)} (tolerance {_fmt(tolerance)})"
    )


# ---- the warehouse ----------------------------------------------------------------------------
def _created_at(manifest: dict) -> dt.datetime:
    """The run's own timestamp (naive UTC), so that re-gating writes identical rows."""
    raw = manifest.get("created_at")
    if not raw:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    value = dt.datetime.fromisoformat(raw)
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _current_champions(con: duckdb.DuckDBPyConnection, pipeline: str) -> dict[str, str]:
    rows = con.execute(
        "select model_name, version from ops.model_runs "
        "where pipeline = ? and status = 'champion' order by model_name, created_at",
        [pipeline],
    ).fetchall()
    return {name: version for name, version in rows}


def gate_run(
    con: duckdb.DuckDBPyConnection, lake: Lake, pipeline: str, version: str, *, tolerance: float
) -> dict:
    """Register run ``version`` of ``pipeline`` and promote or reject each published model.

    Idempotent for a version: its rows are deleted and re-inserted in one transaction with the
    promotions, so a re-gate leaves one row per model and a failure leaves the table as it was.
    Returns ``{model_name: {"status", "version", "reason", "serving_version"}}``, where
    ``serving_version`` is the version whose scores to publish: the new champion, the previous
    champion when rejected (if this run scored it), or None (the caller fails the run).
    """
    manifest = read_manifest(lake, pipeline, version)
    ds = dt.date.fromisoformat(str(manifest["ds"]))
    created_at = _created_at(manifest)
    baselines = {name: b.get("metrics") for name, b in manifest["baselines"].items()}
    scored_champions = {
        name: c["version"]
        for name, c in (manifest.get("champions") or {}).items()
        if c.get("metrics") is not None
    }

    decisions: dict[str, dict] = {}
    con.execute("begin transaction")
    try:
        con.execute(
            "delete from ops.model_runs where pipeline = ? and version = ?", [pipeline, version]
        )
        for name, entry in sorted(manifest["models"].items()):
            status, reason = decide(name, manifest, tolerance)
            if status == "champion":
                con.execute(
                    "update ops.model_runs set status = 'retired' "
                    "where pipeline = ? and model_name = ? and status = 'champion'",
                    [pipeline, name],
                )
                serving = version
            else:
                serving = scored_champions.get(name)
            artifact = entry.get("artifact")
            con.execute(
                "insert into ops.model_runs (pipeline, model_name, version, ds, params, "
                "data_fingerprint, metrics, baseline_metrics, artifact_uri, status, reason, "
                "created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    pipeline,
                    name,
                    version,
                    ds,
                    json.dumps(manifest.get("params", {}), sort_keys=True),
                    manifest.get("data_fingerprint"),
                    json.dumps(entry.get("metrics", {}), sort_keys=True),
                    json.dumps(baselines, sort_keys=True),
                    lake.url(artifact) if artifact else None,
                    status,
                    reason,
                    created_at,
                ],
            )
            decisions[name] = {
                "status": status,
                "version": version,
                "reason": reason,
                "serving_version": serving,
            }
            log.info("%s %s %s: %s (%s)", pipeline, name, version, status, reason)
        champions = _current_champions(con, pipeline)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    # After the commit: if this write fails, a re-gate rewrites it from the committed rows.
    lake.write_text(champion_key(pipeline), json.dumps(champions, indent=2, sort_keys=True) + "\n")
    return decisions


def serving_versions(con: duckdb.DuckDBPyConnection, pipeline: str) -> dict[str, str]:
    """{model_name: version} of the champions: the versions whose scores get published."""
    return _current_champions(con, pipeline)


def champion(con: duckdb.DuckDBPyConnection, pipeline: str, model_name: str) -> dict | None:
    """The current champion of ``model_name``: version, ds, metrics, artifact_uri; None if none."""
    row = con.execute(
        "select version, ds, metrics, artifact_uri, created_at from ops.model_runs "
        "where pipeline = ? and model_name = ? and status = 'champion' "
        "order by created_at desc limit 1",
        [pipeline, model_name],
    ).fetchone()
    if row is None:
        return None
    version, ds, metrics, artifact_uri, created_at = row
    return {
        "version": version,
        "ds": ds.isoformat(),
        "metrics": json.loads(metrics) if metrics else None,
        "artifact_uri": artifact_uri,
        "created_at": created_at.isoformat(),
    }


def latest_metrics(
    con: duckdb.DuckDBPyConnection, pipeline: str, ds: dt.date | str | None = None
) -> dict:
    """The latest run of ``pipeline`` (for ``ds`` when given), JSON-ready.

    Latest means the most recent ``ds``, then the most recently created run of it. Returns
    ``{"pipeline", "version", "ds", "created_at", "data_fingerprint", "models": {name:
    {"status", "reason", "metrics", "artifact_uri"}}, "baselines": {name: metrics},
    "champions": {name: version}}``; ``version`` is None (and ``models`` empty) when the
    pipeline has no run yet.
    """
    where, args = "pipeline = ?", [pipeline]
    if ds is not None:
        where += " and ds = ?"
        args.append(dt.date.fromisoformat(str(ds)) if isinstance(ds, str) else ds)
    latest = con.execute(
        f"select version from ops.model_runs where {where} "
        "order by ds desc, created_at desc, version desc limit 1",
        args,
    ).fetchone()
    result = {
        "pipeline": pipeline,
        "version": None,
        "ds": None if ds is None else str(ds),
        "created_at": None,
        "data_fingerprint": None,
        "models": {},
        "baselines": {},
        "champions": _current_champions(con, pipeline),
    }
    if latest is None:
        return result
    rows = con.execute(
        "select model_name, ds, created_at, data_fingerprint, metrics, baseline_metrics, "
        "artifact_uri, status, reason from ops.model_runs "
        "where pipeline = ? and version = ? order by model_name",
        [pipeline, latest[0]],
    ).fetchall()
    for (
        name,
        run_ds,
        created_at,
        fingerprint,
        metrics,
        baseline_metrics,
        uri,
        status,
        reason,
    ) in rows:
        result.update(
            version=latest[0],
            ds=run_ds.isoformat(),
            created_at=created_at.isoformat(),
            data_fingerprint=fingerprint,
            baselines=json.loads(baseline_metrics) if baseline_metrics else {},
        )
        result["models"][name] = {
            "status": status,
            "reason": reason,
            "metrics": json.loads(metrics) if metrics else {},
            "artifact_uri": uri,
        }
    return result
