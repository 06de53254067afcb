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
from mlcore.config import load_settings, parse_ds
from mlcore.lake import open_lake, raw_prefix
from mlcore.sources import SOURCES, get_source

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEMO_DS = dt.date(2024, 1, 31)

log = logging.getLogger("nightshift")


def _date(text: str) -> dt.date:
    try:
        return parse_ds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _options(args, options) -> dict:
    return {o.name: getattr(args, o.name) for o in options}


def cmd_synth(args) -> int:
    source = get_source(args.source)
    counts = source.load_synth()(
        args.out, args.ds, seed=args.seed, **_options(args, source.synth_options)
    )
    print(json.dumps({"out": str(Path(args.out) / raw_prefix(args.source, args.ds)), **counts}))
    return 0


def cmd_sample(args) -> int:
    """Stage the real sample of a source (../shared/data) in the lake as one delivery."""
    source = get_source(args.source)
    ds = args.ds or dt.date.fromisoformat(source.sample_ds or DEMO_DS.isoformat())
    lake = open_lake(load_settings())
    stager = source.load_sample()
    for key in stager(lake, ds, Path(args.data), **_options(args, source.sample_options)):
        print(key)
    return 0


def cmd_step(args) -> int:
    fn = getattr(steps, args.step.replace("-", "_"))
    print(json.dumps(fn(args.name, args.ds.isoformat()), indent=2, default=str))
    return 0


def cmd_train(args) -> int:
    print(json.dumps(steps.train(args.pipeline, args.ds.isoformat()), indent=2, default=str))
    return 0


def run_dags(dag_ids: list[str], ds: dt.date) -> int:
    """Run DAGs for one date through Airflow (dag.test), in order, in one child process.

    mlcore never imports Airflow, so the runner lives on the Airflow side (plugins/).
    """
    plugins = REPO_ROOT / "plugins"
    if not (plugins / "nightshift_airflow").is_dir():
        raise SystemExit("nightshift run: the Airflow side (plugins/) is not installed here")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugins), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "nightshift_airflow.runner", *dag_ids, "--ds", ds.isoformat()]
    return subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode


def cmd_run(args) -> int:
    # A pipeline needs its sources staged for the day: their ingest DAGs run first.
    return run_dags(pipelines.dag_chain(args.dag_id), args.ds)


def cmd_metrics(args) -> int:
    from mlcore.registry import latest_metrics
    from mlcore.warehouse import open_warehouse

    spec = pipelines.get(args.dag_id)
    settings = load_settings()
    with open_warehouse(
        settings.warehouse, read_only=True, lock_wait=settings.warehouse_lock_wait
    ) as con:
        result = latest_metrics(con, args.dag_id, args.ds)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        from mlcore.report import metrics_table

        print(metrics_table(result, spec.kind))
    return 0


def cmd_demo(args) -> int:
    """Synthesise two nights of every registered source, run every DAG, show what was published."""
    from mlcore.report import demo_summary

    settings = load_settings()
    if settings.lake_is_s3:
        raise SystemExit("nightshift demo writes its synthetic data to a local lake folder")
    if args.fresh:
        for path in (Path(settings.lake), settings.warehouse):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    nights = [args.ds - dt.timedelta(days=1), args.ds]
    for source in SOURCES.values():
        for ds, options in zip(nights, source.demo_nights, strict=True):
            print(f"== synthesising {source.name} delivery ds={ds} ({options})")
            source.load_synth()(settings.lake, ds, seed=args.seed, **options)
    failed = 0
    for ds in nights:
        # Each source once a night, then every pipeline: as the scheduler runs them.
        dag_ids = [*(source.dag_id for source in SOURCES.values()), *pipelines.PIPELINES]
        print(f"== running DAGs {', '.join(dag_ids)} for ds={ds}")
        started = time.perf_counter()
        rc = run_dags(dag_ids, ds)
        took = time.perf_counter() - started
        print(f"   ds={ds}: {'ok' if rc == 0 else 'FAILED'} in {took:.0f}s")
        failed += rc != 0
    print(demo_summary(settings, args.ds))
    return 1 if failed else 0


def cmd_bench(args) -> int:
    from mlcore.bench import bench, format_table

    spec = pipelines.get(args.pipeline)
    options = {
        source: {o.name: getattr(args, o.name) for o in get_source(source).synth_options}
        for source in spec.sources
    }
    result = bench(
        spec,
        options=options,
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


def _add_options(parser: argparse.ArgumentParser, options, *, flags_on: bool = False) -> None:
    """Add a source's generator options; with ``flags_on`` a bool is on unless --no-<name>."""
    for o in options:
        flag = "--" + o.name.replace("_", "-")
        if o.type is bool and flags_on:
            parser.add_argument(
                "--no-" + o.name.replace("_", "-"),
                dest=o.name,
                action="store_false",
                help=f"turn off: {o.help} (on by default)",
            )
        elif o.type is bool:
            parser.add_argument(flag, dest=o.name, action="store_true", help=o.help)
        else:
            parser.add_argument(flag, dest=o.name, type=o.type, default=o.default, help=o.help)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nightshift", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a realistic synthetic raw delivery of a source")
    by_source = s.add_subparsers(dest="source", required=True)
    for source in SOURCES.values():
        if source.synth is None:
            continue
        g = by_source.add_parser(source.name, help=source.doc.split(":")[0])
        g.add_argument("--out", required=True, help="lake root (a folder) to write raw/ into")
        g.add_argument("--ds", type=_date, default=DEMO_DS, help="delivery date (%(default)s)")
        g.add_argument("--seed", type=int, default=0)
        _add_options(g, source.synth_options)
        g.set_defaults(fn=cmd_synth)

    s = sub.add_parser("sample", help="copy a real data sample into the lake as a delivery")
    by_source = s.add_subparsers(dest="source", required=True)
    for source in SOURCES.values():
        if source.sample is None:
            continue
        g = by_source.add_parser(source.name, help=f"real sample, delivered as {source.sample_ds}")
        g.add_argument("--ds", type=_date, default=None, help=f"default {source.sample_ds}")
        g.add_argument("--data", default=str(SHARED_DATA), help="folder of the samples")
        _add_options(g, source.sample_options)
        g.set_defaults(fn=cmd_sample)

    s = sub.add_parser(
        "run",
        help="run a pipeline for one date through Airflow (dag.test): its sources' ingest "
        "DAGs, then its own",
    )
    ingest_dags = sorted(source.dag_id for source in SOURCES.values())
    s.add_argument("dag_id", choices=[*sorted(pipelines.PIPELINES), *ingest_dags])
    s.add_argument("--ds", type=_date, required=True)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("train", help="train, evaluate and score from the lake (the trainer entry)")
    s.add_argument("pipeline", choices=sorted(pipelines.PIPELINES))
    s.add_argument("--ds", type=_date, required=True)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("step", help="run one step of a pipeline outside Airflow")
    s.add_argument(
        "step", choices=["ingest", "validate", "stage", "build-features", "gate", "publish"]
    )
    s.add_argument("name", help="source (ingest, validate, stage) or pipeline (the others)")
    s.add_argument("--ds", type=_date, required=True)
    s.set_defaults(fn=cmd_step)

    s = sub.add_parser("metrics", help="the latest model run's metrics and its baselines")
    s.add_argument("dag_id", choices=sorted(pipelines.PIPELINES))
    s.add_argument("--ds", type=_date, default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_metrics)

    s = sub.add_parser("bench", help="run a pipeline stage by stage on synthetic data, timed")
    by_pipeline = s.add_subparsers(dest="pipeline", required=True)
    for spec in pipelines.PIPELINES.values():
        g = by_pipeline.add_parser(spec.name, help=spec.summary.split(":")[0])
        for source in spec.sources:  # the bench's deliveries carry the real defects by default
            _add_options(g, get_source(source).synth_options, flags_on=True)
        g.add_argument("--seed", type=int, default=0)
        g.add_argument("--repeat", type=int, default=2, help="runs of the same ds (default 2)")
        g.add_argument("--workdir", default="bench-results", help="where data and runs are kept")
        g.add_argument("--json", help="also write the results as JSON to this path")
        g.set_defaults(fn=cmd_bench)

    s = sub.add_parser("demo", help="synthesise data, run every DAG, print what was published")
    s.add_argument("--ds", type=_date, default=DEMO_DS)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--fresh", action="store_true", help="start from an empty lake and warehouse")
    # Each source's demo nights (sizes, defects) are its own: SourceSpec.demo_nights.
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
