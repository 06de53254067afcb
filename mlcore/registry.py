"""The model registry and the champion gate, on ``ops.model_runs``, ``ops.serving`` and the lake.

A training run leaves ``models/<pipeline>/<version>/manifest.json`` (a
:class:`~mlcore.manifest.RunManifest`: metrics of every model, of the baselines and of the
current champions, all on the same evaluation rows). ``gate_run`` turns it into one
``ops.model_runs`` row per published model slot and decides, per slot:

- **rejected** when the model does not beat every ``must_beat`` baseline (a baseline named in
  ``tolerance_applies_to`` only has to be matched within ``baseline_tolerance``), or when it is
  worse than the current champion by more than ``tolerance``; the champion keeps serving;
- **champion** otherwise; the previous champion row becomes **retired**.

When a slot is left with nothing to serve (its candidate rejected, no champion scored tonight),
the run is **degraded** rather than failed: the best model of the run that beats the naive
baseline and was scored tonight (a baseline included) serves the slot, its ``ops.model_runs``
row says ``degraded`` with the reason, and so do the gate's result, the task log and the
publish Asset event. Only when no model beats naive does the gate fail (:class:`GateFailed`).
A degraded fallback is never a champion: tomorrow's candidates are judged as on a first night.

``ops.serving`` (pipeline × ds × slot) records which model serves each slot that night and why;
the publisher reads it. ``models/<pipeline>/champion.json`` ({slot: version}) mirrors the
champion rows, so that the trainer, which never opens the warehouse, knows which champions to
re-score. A run's **challengers** (models measured beside the slots, serving none) get a row
with status ``challenger`` and a verdict: how they compare with the gate's baselines and with
the run's best slot model. Statuses in ``ops.model_runs``: champion | rejected | retired |
degraded | challenger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING

from mlcore.contract import ServingModel
from mlcore.lake import Lake, LakeError, models_prefix
from mlcore.manifest import ManifestError, RunManifest

if TYPE_CHECKING:  # the trainer imports champion_key from here and never opens the warehouse
    import duckdb

log = logging.getLogger(__name__)

# Metrics equal up to float noise count as equal: "worse by more than 0.005" must not fire at
# exactly 0.005 because 0.72 - 0.715 is 0.0050000000000000044.
_EPS = 1e-12


class RegistryError(RuntimeError):
    """A run cannot be registered (missing or malformed manifest)."""


class GateFailed(RuntimeError):
    """No model of the run can serve: none beats the naive baseline. Retrying cannot help."""


def champion_key(pipeline: str) -> str:
    """Lake key of the pipeline's champion mirror, ``{model_name: version}``."""
    return f"{models_prefix(pipeline)}/champion.json"


def manifest_key(pipeline: str, version: str) -> str:
    return f"{models_prefix(pipeline, version)}/manifest.json"


def read_manifest(lake: Lake, pipeline: str, version: str) -> RunManifest:
    """The run's manifest; RegistryError (one line) when the run did not finish or is garbled."""
    key = manifest_key(pipeline, version)
    try:
        text = lake.read_text(key)
    except LakeError as exc:
        raise RegistryError(
            f"no manifest at {lake.url(key)}: the training run did not finish"
        ) from exc
    try:
        manifest = RunManifest.from_json(text, where=f"manifest {lake.url(key)}")
    except ManifestError as exc:
        raise RegistryError(str(exc)) from exc
    if manifest.version != version:
        raise RegistryError(f"manifest {lake.url(key)} is for version {manifest.version}")
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


def _beats_baselines(value: float, manifest: RunManifest) -> tuple[list[str], list[str]]:
    """(bars passed, bars failed) of ``value`` against the gate's ``must_beat`` baselines."""
    gate = manifest.gate
    slack_for = set(
        gate.must_beat if gate.tolerance_applies_to is None else gate.tolerance_applies_to
    )
    failures, passed = [], []
    for baseline in gate.must_beat:
        base = manifest.baselines[baseline].metrics.get(gate.metric)
        if base is None:
            passed.append(f"{baseline} (no {gate.metric})")
            continue
        slack = gate.baseline_tolerance if baseline in slack_for else 0.0
        bar = _bar(baseline, base, slack, gate.greater_is_better)
        (passed if _beats(value, base, slack, gate.greater_is_better) else failures).append(bar)
    return passed, failures


def decide(name: str, manifest: RunManifest, tolerance: float) -> tuple[str, str]:
    """(status, reason) for the published model ``name`` of a run, from its manifest alone.

    The champion to compare with is the one the trainer evaluated on this run's evaluation
    rows (``manifest.champions[name]``), so both numbers come from the same rows. Beating a
    baseline is strict (better than its value, moved by the slack); the champion may be
    matched within ``tolerance``.
    """
    gate = manifest.gate
    metric, greater = gate.metric, gate.greater_is_better
    value = manifest.models[name].metrics.get(metric)
    if value is None:
        return "rejected", f"{metric} is undefined on this run's evaluation rows (a single class?)"

    passed, failures = _beats_baselines(value, manifest)
    if failures:
        return "rejected", f"{metric} {_fmt(value)} does not beat {', '.join(failures)}"
    reason = f"{metric} {_fmt(value)} beats {', '.join(passed) or 'no baseline'}"

    champ = manifest.champions.get(name)
    champ_value = champ.metrics.get(metric) if champ else None
    if champ_value is None:
        return "champion", f"{reason}; no champion evaluated on this holdout"
    shortfall = champ_value - value if greater else value - champ_value
    if shortfall > tolerance + _EPS:
        return "rejected", (
            f"{metric} {_fmt(value)} is worse than champion {champ.version} "
            f"{_fmt(champ_value)} by more than {_fmt(tolerance)}"
        )
    return "champion", (
        f"{reason}; champion {champ.version} {_fmt(champ_value)} (tolerance {_fmt(tolerance)})"
    )


def challenger_verdict(name: str, manifest: RunManifest) -> str:
    """One line for a challenger: the gate's baselines it beats or not, and the slots' best."""
    gate = manifest.gate
    value = manifest.challengers[name].metrics.get(gate.metric)
    if value is None:
        return f"challenger, serves no slot: {gate.metric} undefined on this run's rows"
    passed, failures = _beats_baselines(value, manifest)
    bars = (
        f"does not beat {', '.join(failures)}"
        if failures
        else (f"beats {', '.join(passed) or 'no baseline'}")
    )
    slots = [(n, e.metrics.get(gate.metric)) for n, e in manifest.models.items()]
    slots = [(n, v) for n, v in slots if v is not None]
    best = ""
    if slots:
        pick = max if gate.greater_is_better else min
        slot, slot_value = pick(slots, key=lambda item: item[1])
        best = f"; best slot model {slot} {_fmt(slot_value)}"
    return f"challenger, serves no slot: {gate.metric} {_fmt(value)} {bars}{best}"


def fallback(manifest: RunManifest) -> tuple[str, float] | None:
    """The run's best model or baseline that beats the naive baseline and was scored tonight.

    Returns (name, metric value), or None when nothing beats naive. The naive baseline itself
    never serves: a constant that looks like a model would hide the failure from ops.
    """
    gate = manifest.gate
    naive = manifest.baselines[gate.naive].metrics.get(gate.metric) if gate.naive else None
    best = None
    for name in [*manifest.models, *manifest.baselines]:
        if name == gate.naive or not manifest.is_scored(name, manifest.version):
            continue
        value = manifest.entry(name).metrics.get(gate.metric)
        if value is None:
            continue
        if naive is not None and not _beats(value, naive, 0.0, gate.greater_is_better):
            continue
        better = best is None or (value > best[1] if gate.greater_is_better else value < best[1])
        if better:
            best = (name, value)
    return best


def _naive_may_serve(manifest: RunManifest) -> bool:
    """Whether the run's naive baseline may serve itself (``GateRule.naive_may_serve``): it
    must be named and scored tonight."""
    gate = manifest.gate
    return bool(
        gate.naive_may_serve and gate.naive and manifest.is_scored(gate.naive, manifest.version)
    )


# ---- the warehouse ----------------------------------------------------------------------------
def _created_at(manifest: RunManifest) -> dt.datetime:
    """The run's own timestamp (naive UTC), so that re-gating writes identical rows."""
    if not manifest.created_at:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    value = dt.datetime.fromisoformat(manifest.created_at)
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _current_champions(con: duckdb.DuckDBPyConnection, pipeline: str) -> dict[str, str]:
    rows = con.execute(
        "select model_name, version from ops.model_runs "
        "where pipeline = ? and status = 'champion' order by model_name, created_at",
        [pipeline],
    ).fetchall()
    return {name: version for name, version in rows}


def _insert_run_row(con, manifest: RunManifest, name: str, status: str, reason: str, lake: Lake):
    entry = manifest.entry(name)
    baselines = {b: e.metrics for b, e in manifest.baselines.items()}
    con.execute(
        "insert into ops.model_runs (pipeline, model_name, version, ds, params, "
        "data_fingerprint, metrics, baseline_metrics, artifact_uri, status, reason, "
        "created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            manifest.pipeline,
            name,
            manifest.version,
            dt.date.fromisoformat(manifest.ds),
            json.dumps(manifest.params, sort_keys=True),
            manifest.data_fingerprint,
            json.dumps(entry.metrics, sort_keys=True),
            json.dumps(baselines, sort_keys=True),
            lake.url(entry.artifact) if entry.artifact else None,
            status,
            reason,
            _created_at(manifest),
        ],
    )


def gate_run(
    con: duckdb.DuckDBPyConnection, lake: Lake, pipeline: str, version: str, *, tolerance: float
) -> dict:
    """Register run ``version`` of ``pipeline``, promote or reject each slot's model, and decide
    which model serves each slot tonight.

    Idempotent for a version: its rows (and the ``ops.serving`` rows of its ds) are deleted and
    re-inserted in one transaction with the promotions, so a re-gate leaves one row per model
    and a failure leaves the tables as they were. Returns ``{"decisions": {slot: {"status",
    "version", "reason", "serving_version"}}, "serving": {slot: ServingModel}, "degraded":
    reason or None}``. Raises :class:`GateFailed` when a slot would be left with nothing to
    serve because no model of the run beats the naive baseline.
    """
    manifest = read_manifest(lake, pipeline, version)
    ds = dt.date.fromisoformat(manifest.ds)
    scored_champions = {
        name: c.version
        for name, c in manifest.champions.items()
        if c.metrics and manifest.is_scored(name, c.version)
    }

    decisions: dict[str, dict] = {}
    serving: dict[str, ServingModel] = {}
    for name in sorted(manifest.models):
        status, reason = decide(name, manifest, tolerance)
        decisions[name] = {"status": status, "version": version, "reason": reason}
        if status == "champion":
            serving[name] = ServingModel(name, name, version, "champion", reason)
        elif name in scored_champions:
            champ = scored_champions[name]
            serving[name] = ServingModel(name, name, champ, "champion", f"champion kept: {reason}")
    unserved = [n for n in sorted(manifest.models) if n not in serving]
    degraded = None
    rows_status = {n: d["status"] for n, d in decisions.items()}
    rows_reason = {n: d["reason"] for n, d in decisions.items()}
    for name in sorted(manifest.challengers):
        rows_status[name] = "challenger"
        rows_reason[name] = challenger_verdict(name, manifest)
    if unserved:
        why = "; ".join(f"{n}: {decisions[n]['reason']}" for n in unserved)
        best = fallback(manifest)
        naive = manifest.gate.naive or "the naive baseline"
        if best is None and not _naive_may_serve(manifest):
            raise GateFailed(f"{pipeline}: no model can serve: nothing beats {naive} ({why})")
        if best is None:
            name = naive
            value = manifest.baselines[name].metrics.get(manifest.gate.metric)
            degraded = (
                f"no candidate passed the gate for {', '.join(unserved)} and no model of the "
                f"run beats {naive} ({why}); serving {naive} {manifest.gate.metric} "
                f"{_fmt(value) if value is not None else 'undefined'} itself"
            )
        else:
            name, value = best
            degraded = (
                f"no candidate passed the gate for {', '.join(unserved)} and no champion can "
                f"serve ({why}); serving {name} {manifest.gate.metric} {_fmt(value)}, the best "
                f"model of the run that beats {manifest.gate.naive}"
            )
        for slot in unserved:
            serving[slot] = ServingModel(slot, name, version, "degraded", degraded)
        # A champion that also fills another slot stays a champion; anything else is marked.
        if rows_status.get(name) != "champion":
            rows_status[name] = "degraded"
        earlier = f" ({rows_reason[name]})" if name in rows_reason else ""
        rows_reason[name] = f"serves {', '.join(unserved)}{earlier}; {degraded}"
        log.warning("%s %s degraded: %s", pipeline, version, degraded)
    for slot, d in decisions.items():
        d["serving_version"] = serving[slot].version
        d["serving_model"] = serving[slot].model_name

    now = _created_at(manifest)
    con.execute("begin transaction")
    try:
        con.execute(
            "delete from ops.model_runs where pipeline = ? and version = ?", [pipeline, version]
        )
        con.execute("delete from ops.serving where pipeline = ? and ds = ?", [pipeline, ds])
        for name in sorted(rows_status):
            status = rows_status[name]
            if status == "champion":
                con.execute(
                    "update ops.model_runs set status = 'retired' "
                    "where pipeline = ? and model_name = ? and status = 'champion'",
                    [pipeline, name],
                )
            _insert_run_row(con, manifest, name, status, rows_reason[name], lake)
            log.info("%s %s %s: %s (%s)", pipeline, name, version, status, rows_reason[name])
        for slot, s in sorted(serving.items()):
            con.execute(
                "insert into ops.serving values (?, ?, ?, ?, ?, ?, ?, ?)",
                [pipeline, ds, slot, s.model_name, s.version, s.status, s.reason, now],
            )
        champions = _current_champions(con, pipeline)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    # After the commit: if this write fails, a re-gate rewrites it from the committed rows.
    lake.write_text(champion_key(pipeline), json.dumps(champions, indent=2, sort_keys=True) + "\n")
    return {"decisions": decisions, "serving": serving, "degraded": degraded}


def serving_models(
    con: duckdb.DuckDBPyConnection, pipeline: str, ds: dt.date
) -> dict[str, ServingModel]:
    """{slot: ServingModel} that the gate chose for ``ds``: whose scores to publish tonight."""
    rows = con.execute(
        "select slot, model_name, version, status, reason from ops.serving "
        "where pipeline = ? and ds = ? order by slot",
        [pipeline, ds],
    ).fetchall()
    return {slot: ServingModel(slot, m, v, st, r or "") for slot, m, v, st, r in rows}


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
