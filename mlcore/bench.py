"""`nightshift bench`: the whole pipeline for one ds on synthetic data, stage by stage.

Each stage runs in a child process of its own, as an Airflow task would, so that the peak
resident memory reported for it is that stage's own (``ru_maxrss`` of the child). The delivery
is generated once per (users, days, seed) and reused.
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

BENCH_DS = dt.date(2024, 3, 31)
# (stage label, step function, what it runs on)
STAGES = (
    ("ingest", "ingest", "pozytywka"),
    ("validate+quarantine", "validate", "pozytywka"),
    ("sql features", "build_features", "music_skip"),
    ("train+score", "train", "music_skip"),
    ("gate", "gate", "music_skip"),
    ("publish", "publish", "music_skip"),
)
MARTS = ("skip_scores", "cache_plan", "ab_assignments", "ab_report")


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


def _rows(label: str, out: dict, previous: dict) -> tuple[int | None, int | None]:
    """Rows into and out of a stage, from the summaries the steps return."""
    r = out["result"]
    if label == "ingest":
        t = r["tables"].values()
        return sum(x["rows"] + x["rejected"] for x in t), sum(x["rows"] for x in t)
    if label.startswith("validate"):
        t = r["tables"].values()
        return sum(x["rows"] for x in t), sum(x["rows"] - x["quarantined"] for x in t)
    if label == "sql features":
        return previous.get("validated"), sum(r["exported"].values())
    if label.startswith("train"):
        return r["rows"]["train_rows"], r["rows"]["candidate_rows"]
    if label == "gate":
        return len(r["decisions"]), sum(
            1 for d in r["decisions"].values() if d.get("serving_version")
        )
    if label == "publish":
        return previous.get("candidates"), sum(r["tables"].values())
    return None, None


def marts_digest(warehouse: Path, ds: dt.date) -> str:
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
        for table in MARTS:
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


def run_once(env: dict, ds: dt.date, log) -> dict:
    stages, carry = [], {}
    for i, (label, step, name) in enumerate(STAGES, 1):
        log(f"[{i}/{len(STAGES)}] {label} ...")
        out = _run_child(step, name, ds, env)
        rows_in, rows_out = _rows(label, out, carry)
        if label.startswith("validate"):
            carry["validated"] = rows_out
        if label.startswith("train"):
            carry["candidates"] = rows_out
        stage = {
            "stage": label,
            "rows_in": rows_in,
            "rows_out": rows_out,
            "seconds": round(out["seconds"], 2),
            "rows_per_second": round(rows_in / out["seconds"]) if rows_in else None,
            "peak_rss_mb": round(out["peak_mb"]),
        }
        if label.startswith("train"):
            stage["detail"] = out["result"].get("timings", {})
        stages.append(stage)
        log(
            f"[{i}/{len(STAGES)}] {label}: {stage['seconds']:.1f}s, "
            f"{rows_in} -> {rows_out} rows, peak {stage['peak_rss_mb']} MB"
        )
    return {"stages": stages, "total_seconds": round(sum(s["seconds"] for s in stages), 2)}


def bench(*, users: int, days: int, seed: int, workdir: Path, repeat: int = 1, log=print) -> dict:
    """Generate (once) a synthetic delivery and run the pipeline on it ``repeat`` times."""
    from mlcore.synth.pozytywka import write_delivery

    data = workdir / f"pozytywka-u{users}-d{days}-s{seed}"
    lake, warehouse = data / "lake", data / "warehouse.duckdb"
    marker = data / "delivery.json"
    synth_seconds = None
    if not marker.exists():
        log(f"generating a synthetic delivery: {users} users x {days} days (seed {seed}) ...")
        started = time.perf_counter()
        counts = write_delivery(lake, BENCH_DS, users=users, days=days, seed=seed, defects=True)
        synth_seconds = round(time.perf_counter() - started, 1)
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
        run = run_once(env, BENCH_DS, log)
        run["marts_digest"] = marts_digest(warehouse, BENCH_DS)
        runs.append(run)
    first = runs[0]["stages"]
    head = sum(
        s["seconds"]
        for s in first
        if s["stage"] in ("ingest", "validate+quarantine", "sql features")
    )
    return {
        "pipeline": "music_skip",
        "users": users,
        "days": days,
        "seed": seed,
        "ds": BENCH_DS.isoformat(),
        "session_events": counts.get("sessions.jsonl"),
        "delivery_rows": counts,
        "synth_seconds": synth_seconds,
        "machine": machine(),
        "runs": runs,
        "ingest_validate_features_seconds": round(head, 2),
        "total_seconds": runs[0]["total_seconds"],
        "peak_rss_mb": max(s["peak_rss_mb"] for r in runs for s in r["stages"]),
        "reruns_identical": len({r["marts_digest"] for r in runs}) == 1 if repeat > 1 else None,
    }


def format_table(result: dict) -> str:
    lines = [
        f"music_skip bench: {result['users']} users x {result['days']} days, "
        f"{result['session_events']:,} session events, on {result['machine']['cores']} cores "
        f"({result['machine']['cpu']}, {result['machine']['memory_gib']} GiB)",
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
