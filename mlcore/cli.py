"""`nightshift`: the command line. Commands parse options and call library functions."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlcore import pipelines, steps
from mlcore.config import load_settings
from mlcore.lake import open_lake, raw_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEMO_DS = dt.date(2024, 1, 31)

log = logging.getLogger("nightshift")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_synth(args) -> int:
    if args.source != "pozytywka":
        raise SystemExit(f"nightshift synth: no generator for source {args.source!r} yet")
    from mlcore.synth.pozytywka import write_delivery

    counts = write_delivery(
        args.out, args.ds, users=args.users, days=args.days, seed=args.seed, defects=args.defects
    )
    print(json.dumps({"out": str(Path(args.out) / raw_prefix(args.source, args.ds)), **counts}))
    return 0


def stage_sample(source: str, ds: dt.date, data: Path) -> list[str]:
    """Copy the real sample of ``source`` into the lake as the delivery of ``ds``."""
    if source != "pozytywka":
        raise SystemExit(f"nightshift sample: no real sample wired for {source!r} yet")
    files = sorted((data / "pozytywka" / "v1").glob("*.jsonl"))
    files.append(data / "pozytywka" / "catalog" / "tracks.jsonl")
    missing = [str(f) for f in files if not f.exists()]
    if missing or not files:
        raise SystemExit(f"nightshift sample: missing sample files {missing or data}")
    lake = open_lake(load_settings())
    keys = []
    for f in files:
        key = f"{raw_prefix(source, ds)}/{f.name}"
        lake.put_file(f, key)
        keys.append(lake.url(key))
    return keys


def cmd_sample(args) -> int:
    for key in stage_sample(args.source, args.ds, Path(args.data)):
        print(key)
    return 0


def cmd_step(args) -> int:
    fn = getattr(steps, args.step.replace("-", "_"))
    print(json.dumps(fn(args.name, args.ds.isoformat()), indent=2, default=str))
    return 0


def cmd_train(args) -> int:
    print(json.dumps(steps.train(args.pipeline, args.ds.isoformat()), indent=2, default=str))
    return 0


def run_dag(dag_id: str, ds: dt.date) -> int:
    """Run one DAG for one date through Airflow (dag.test) in a child process.

    mlcore never imports Airflow, so the runner lives on the Airflow side (plugins/).
    """
    plugins = REPO_ROOT / "plugins"
    if not (plugins / "nightshift_airflow").is_dir():
        raise SystemExit("nightshift run: the Airflow side (plugins/) is not installed here")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugins), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "nightshift_airflow.runner", dag_id, "--ds", ds.isoformat()]
    return subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode


def cmd_run(args) -> int:
    return run_dag(args.dag_id, args.ds)


def cmd_metrics(args) -> int:
    from mlcore.registry import latest_metrics
    from mlcore.warehouse import open_warehouse

    pipelines.get(args.dag_id)
    with open_warehouse(load_settings().warehouse, read_only=True) as con:
        result = latest_metrics(con, args.dag_id, args.ds)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        from mlcore.report import metrics_table

        print(metrics_table(result))
    return 0


def cmd_demo(args) -> int:
    """Synthesise a delivery per source, run every DAG for two nights, show what was published."""
    from mlcore.report import demo_summary
    from mlcore.synth.pozytywka import write_delivery

    settings = load_settings()
    if settings.lake_is_s3:
        raise SystemExit("nightshift demo writes its synthetic data to a local lake folder")
    if args.fresh:
        for path in (Path(settings.lake), settings.warehouse):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    first = args.ds - dt.timedelta(days=1)
    nights = [(first, args.days), (args.ds, 1)]
    for ds, days in nights:
        print(f"== synthesising pozytywka delivery ds={ds} ({days} day(s) of sessions)")
        write_delivery(settings.lake, ds, users=args.users, days=days, seed=args.seed, defects=True)
    failed = 0
    for ds, _ in nights:
        for name in pipelines.PIPELINES:
            print(f"== running DAG {name} for ds={ds}")
            started = time.perf_counter()
            rc = run_dag(name, ds)
            print(
                f"   {name} ds={ds}: {'ok' if rc == 0 else 'FAILED'} "
                f"in {time.perf_counter() - started:.0f}s"
            )
            failed += rc != 0
    print(demo_summary(settings, args.ds))
    return 1 if failed else 0


def cmd_bench(args) -> int:
    from mlcore.bench import bench, format_table

    if args.pipeline != "music_skip":
        raise SystemExit(f"nightshift bench: no benchmark for {args.pipeline!r} yet")
    result = bench(
        users=args.users,
        days=args.days,
        seed=args.seed,
        workdir=Path(args.workdir),
        repeat=args.repeat,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nightshift", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a realistic synthetic raw delivery")
    s.add_argument("source", choices=["pozytywka"])
    s.add_argument("--out", required=True, help="lake root (a folder) to write raw/<source>/ into")
    s.add_argument("--ds", type=_date, default=DEMO_DS, help="delivery date (default %(default)s)")
    s.add_argument("--users", type=int, default=200)
    s.add_argument("--days", type=int, default=30, help="days of sessions up to --ds")
    s.add_argument("--scale", type=int, dest="users", help="alias of --users")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--defects", action="store_true", help="inject the real v1 defects")
    s.set_defaults(fn=cmd_synth)

    s = sub.add_parser("sample", help="copy a real data sample into the lake as a delivery")
    s.add_argument("source", choices=["pozytywka"])
    s.add_argument("--ds", type=_date, default=dt.date(2023, 3, 27))
    s.add_argument("--data", default=str(SHARED_DATA), help="folder of the samples")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("run", help="run one DAG for one date through Airflow (dag.test)")
    s.add_argument("dag_id", choices=sorted(pipelines.PIPELINES))
    s.add_argument("--ds", type=_date, required=True)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("train", help="train, evaluate and score from the lake (the trainer entry)")
    s.add_argument("pipeline", choices=sorted(pipelines.PIPELINES))
    s.add_argument("--ds", type=_date, required=True)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("step", help="run one step of a pipeline outside Airflow")
    s.add_argument("step", choices=["ingest", "validate", "build-features", "gate", "publish"])
    s.add_argument("name", help="source (ingest, validate) or pipeline (the others)")
    s.add_argument("--ds", type=_date, required=True)
    s.set_defaults(fn=cmd_step)

    s = sub.add_parser("metrics", help="the latest model run's metrics and its baselines")
    s.add_argument("dag_id", choices=sorted(pipelines.PIPELINES))
    s.add_argument("--ds", type=_date, default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_metrics)

    s = sub.add_parser("bench", help="run a pipeline stage by stage on synthetic data, timed")
    s.add_argument("pipeline", choices=sorted(pipelines.PIPELINES))
    s.add_argument("--users", type=int, default=2000)
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--repeat", type=int, default=2, help="runs of the same ds (default 2)")
    s.add_argument("--workdir", default="bench-results", help="where data and runs are kept")
    s.add_argument("--json", help="also write the results as JSON to this path")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("demo", help="synthesise data, run every DAG, print what was published")
    s.add_argument("--ds", type=_date, default=DEMO_DS)
    s.add_argument("--users", type=int, default=300)
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--fresh", action="store_true", help="start from an empty lake and warehouse")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("NIGHTSHIFT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (KeyError, ValueError, RuntimeError) as exc:
        # One line for the operator; the traceback is in the log at DEBUG.
        log.debug("failed", exc_info=True)
        print(f"nightshift {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
