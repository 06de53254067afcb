"""`nightshift bench <pipeline>`: the whole pipeline for one ds on synthetic data, stage by stage.

The stages come from the registry: for each of the pipeline's sources ingest, validate and
stage, then the pipeline's features, train+score, gate and publish. Each stage runs in a child
process of its own, as an Airflow task would, so that the peak resident memory reported for it
is that stage's own (``ru_maxrss`` of the child). The deliveries are generated once per set of
generator options and seed (each source's ``synth`` with its ``synth_options``) and reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlcore import steps
from mlcore.contract import Pipeline
from mlcore.sources import get_source

BENCH_DS = dt.date(2024, 3, 31)
# The stages before the model that the targets group together ("ingest + validate + features").
DATA_STAGES = ("ingest", "validate", "stage", "sql features")


def stages(spec: Pipeline) -> list[tuple[str, str, str]]:
    """(stage label, step function, what it runs on) for ``spec``, in run order."""
    out = []
    for source in spec.sources:
        suffix = f" {source}" if len(spec.sources) > 1 else ""
        out += [
            (f"ingest{suffix}", "ingest", source),
            (f"validate{suffix}", "validate", source),
            (f"stage{suffix}", "stage", source),
        ]
    return out + [
        ("sql features", "build_features", spec.name),
        ("train+score", "train", spec.name),
        ("gate", "gate", spec.name),
        ("publish", "publish", spec.name),
    ]


def child(step: str, name: str, ds: str) -> None:
    """Run one step in this process and print its result, wall time and peak RSS as JSON."""
    started = time.perf_counter()
    result = getattr(steps, step)(name, ds)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps({"result": result, "seconds": seconds, "peak_mb": peak_kb / 1024}, default=str)
    )


def _run_child(step: str, name: str, ds: dt.date, env: dict) -> dict:
    cmd = [sys.executable, "-m", "mlcore.bench", "--child", step, name, ds.isoformat()]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"bench: stage {step} failed: {' | '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rows(step: str, out: dict, previous: dict) -> tuple[int | None, int | None]:
    """Rows into and out of a stage, from the summaries the steps return."""
    r = out["result"]
    if step == "ingest":
        t = r["tables"].values()
        return sum(x["rows"] + x["rejected"] for x in t), sum(x["rows"] for x in t)
    if step == "validate":
        t = r["tables"].values()
        return sum(x["rows"] for x in t), sum(x["rows"] - x["quarantined"] for x in t)
    if step == "stage":
        return previous.get("validated"), sum(v or 0 for v in r["tables"].values())
    if step == "build_features":
        return previous.get("staged"), sum(r["exported"].values())
    if step == "train":
        return r["rows"]["train_rows"], r["rows"]["scored_rows"]
    if step == "gate":
        return len(r["decisions"]), len(r["serving"])
    if step == "publish":
        return previous.get("scored"), sum(r["tables"].values())
    return None, None


def marts_digest(warehouse: Path, ds: dt.date, tables: tuple[str, ...]) -> str:
    """A digest of every published mart partition for ``ds`` (to compare two runs).

    Computed inside DuckDB (an order-free xor of per-row md5s, plus the row count; a sum would
    be a DOUBLE in DuckDB, whose parallel additions are not repeatable): fetching
    millions of rows into this parent process would raise its peak memory, and the children
    forked after it would report that inherited peak as their own.
    """
    import duckdb

    h = hashlib.sha256()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set enable_progress_bar = false")
        for table in tables:
            row = con.execute(
                f"select count(*), bit_xor(md5_number(t::varchar)) "
                f"from marts.{table} t where ds = ?",
                [ds],
            ).fetchone()
            h.update(f"{table}:{row[0]}:{row[1]}".encode())
    return h.hexdigest()


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
    }


def run_once(spec: Pipeline, env: dict, ds: dt.date, log) -> dict:
    plan, done, carry = stages(spec), [], {}
    for i, (label, step, name) in enumerate(plan, 1):
        log(f"[{i}/{len(plan)}] {label} ...")
        out = _run_child(step, name, ds, env)
        rows_in, rows_out = _rows(step, out, carry)
        carry[{"validate": "validated", "stage": "staged", "train": "scored"}.get(step, step)] = (
            rows_out
        )
        stage = {
            "stage": label,
            "rows_in": rows_in,
            "rows_out": rows_out,
            "seconds": round(out["seconds"], 2),
            "rows_per_second": round(rows_in / out["seconds"]) if rows_in else None,
            "peak_rss_mb": round(out["peak_mb"]),
        }
        if step == "train":
            r = out["result"]
            stage["detail"] = r.get("timings", {})
            stage["kind"] = r.get("kind")
            # every model's metrics on the same held-out rows, beside its fit time
            stage["models"] = {
                **r.get("models", {}),
                **r.get("baselines", {}),
                **r.get("challengers", {}),
            }
        if step == "gate" and out["result"].get("degraded"):
            stage["detail"] = {"degraded": out["result"]["degraded"]}
        done.append(stage)
        log(
            f"[{i}/{len(plan)}] {label}: {stage['seconds']:.1f}s, "
            f"{rows_in} -> {rows_out} rows, peak {stage['peak_rss_mb']} MB"
        )
    return {"stages": done, "total_seconds": round(sum(s["seconds"] for s in done), 2)}


def _data_folder(spec: Pipeline, options: dict[str, dict], seed: int) -> str:
    """A folder name that says which deliveries it holds (e.g. pozytywka-users2000-days30-s0)."""
    parts = []
    for source in spec.sources:
        opts = "-".join(
            f"{k}{int(v) if isinstance(v, bool) else v}"
            for k, v in options[source].items()
            if v is not None  # an option left to the generator's own default
        )
        parts.append(f"{source}-{opts}" if opts else source)
    return "+".join(parts) + f"-s{seed}"


def bench(
    spec: Pipeline,
    *,
    options: dict[str, dict],
    seed: int,
    workdir: Path,
    repeat: int = 1,
    log=print,
) -> dict:
    """Generate (once) a synthetic delivery of each source and run the pipeline ``repeat`` times.

    ``options`` maps each of the pipeline's sources to its generator's options. Deliveries carry
    the sources' real defects where the generator can inject them (``defects``: on by default).
    """
    data = workdir / _data_folder(spec, options, seed)
    lake, warehouse = data / "lake", data / "warehouse.duckdb"
    marker = data / "delivery.json"
    synth_seconds = None
    if not marker.exists():
        counts = {}
        started = time.perf_counter()
        for source in spec.sources:
            log(f"generating a synthetic {source} delivery: {options[source]} (seed {seed}) ...")
            made = get_source(source).load_synth()(lake, BENCH_DS, seed=seed, **options[source])
            counts.update({f"{source}/{f}": n for f, n in made.items()})
        synth_seconds = round(time.perf_counter() - started, 1)
        data.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(counts))
    counts = json.loads(marker.read_text())
    warehouse.unlink(missing_ok=True)  # the first run starts from an empty warehouse
    for stale in ("features", "models", "predictions", "outputs", "reports"):
        shutil.rmtree(lake / stale, ignore_errors=True)

    env = dict(
        os.environ,
        NIGHTSHIFT_LAKE=str(lake),
        NIGHTSHIFT_WAREHOUSE=str(warehouse),
        NIGHTSHIFT_LOG_LEVEL=os.environ.get("NIGHTSHIFT_LOG_LEVEL", "WARNING"),
    )
    runs = []
    for n in range(repeat):
        log(f"== run {n + 1} of {repeat} for ds={BENCH_DS}")
        run = run_once(spec, env, BENCH_DS, log)
        run["marts_digest"] = marts_digest(warehouse, BENCH_DS, spec.published_tables)
        runs.append(run)
    first = runs[0]["stages"]
    head = sum(s["seconds"] for s in first if s["stage"].startswith(DATA_STAGES))
    return {
        "pipeline": spec.name,
        "options": options,
        "seed": seed,
        "ds": BENCH_DS.isoformat(),
        "delivery_rows": counts,
        "synth_seconds": synth_seconds,
        "machine": machine(),
        "runs": runs,
        "ingest_validate_features_seconds": round(head, 2),
        "total_seconds": runs[0]["total_seconds"],
        "peak_rss_mb": max(s["peak_rss_mb"] for r in runs for s in r["stages"]),
        "reruns_identical": len({r["marts_digest"] for r in runs}) == 1 if repeat > 1 else None,
    }


def _models_table(run: dict) -> list[str]:
    """The train stage's models: their headline metrics and fit seconds (when timed)."""
    from mlcore.evaluation import metric_names

    train = next((s for s in run["stages"] if s.get("models")), None)
    if train is None:
        return []
    names = metric_names(train["kind"])[:1] if train.get("kind") else ()
    first = next(iter(train["models"].values()), {})
    # the kind's first metric at whatever cut-off the run used, and up to two more of its own
    shown = [m for m in first if m.split("@")[0] in {n.split("@")[0] for n in names}][:3]
    shown += [m for m in first if m.startswith("ndcg@")][:1]
    extra = ("auc", "auc_unrated", "rmse", "roc_auc", "mase", "smape", "coverage")
    shown += [m for m in extra if m in first and m not in shown]
    # A forecast pipeline times each model's backtest too (a local statistical model fits
    # there, once per room and origin): shown when the run timed it.
    timed = [("fit", "fit s")]
    if any(f"backtest_{name}_seconds" in train["detail"] for name in train["models"]):
        timed.append(("backtest", "backtest s"))
    header = "".join(f"{m:>12}" for m in shown) + "".join(f"{t:>12}" for _, t in timed)
    lines = ["", f"{'model':<22}" + header]
    for name, metrics in train["models"].items():
        values = "".join(
            f"{metrics[m]:>12.4f}" if isinstance(metrics.get(m), float) else f"{'-':>12}"
            for m in shown
        )
        for phase, _ in timed:
            took = train["detail"].get(f"{phase}_{name}_seconds")
            values += f"{took:>12.1f}" if took is not None else f"{'-':>12}"
        lines.append(f"{name:<22}{values}")
    return lines


def format_table(result: dict) -> str:
    delivered = sum(result["delivery_rows"].values())
    lines = [
        f"{result['pipeline']} bench: {result['options']}, {delivered:,} delivered rows, on "
        f"{result['machine']['cores']} cores ({result['machine']['cpu']}, "
        f"{result['machine']['memory_gib']} GiB)",
    ]
    header = (
        f"{'stage':<22}{'rows in':>12}{'rows out':>12}{'seconds':>10}{'rows/s':>12}{'peak MB':>9}"
    )
    for i, run in enumerate(result["runs"], 1):
        lines += ["", f"run {i}", header]
        for s in run["stages"]:
            rin = f"{s['rows_in']:,}" if s["rows_in"] is not None else "-"
            rout = f"{s['rows_out']:,}" if s["rows_out"] is not None else "-"
            rps = f"{s['rows_per_second']:,}" if s["rows_per_second"] else "-"
            lines.append(
                f"{s['stage']:<22}{rin:>12}{rout:>12}{s['seconds']:>10.1f}{rps:>12}"
                f"{s['peak_rss_mb']:>9}"
            )
        lines.append(f"{'total':<22}{'':>12}{'':>12}{run['total_seconds']:>10.1f}")
        lines += _models_table(run)
    lines.append("")
    lines.append(
        f"ingest+validate+features: {result['ingest_validate_features_seconds']:.1f}s; "
        f"whole run: {result['total_seconds']:.1f}s; peak RSS {result['peak_rss_mb']} MB"
    )
    if result["reruns_identical"] is not None:
        lines.append(f"re-runs publish identical marts: {result['reruns_identical']}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        import logging

        logging.basicConfig(level=os.environ.get("NIGHTSHIFT_LOG_LEVEL", "WARNING"))
        child(*sys.argv[2:5])
    else:
        sys.exit("usage: python -m mlcore.bench --child STEP NAME DS (use `nightshift bench`)")
