"""Run DAGs for one ``ds`` on a laptop, through Airflow itself: ``dag.test``.

    python -m nightshift_airflow.runner ingest_pozytywka music_skip --ds 2024-01-31

(``nightshift run`` calls this with ``plugins/`` on ``PYTHONPATH``.) It sets up the laptop
Airflow home (:mod:`nightshift_airflow.airflow_env`), migrates the metadata DB when needed,
creates the pools, runs every task of each DAG in this process in dependency order (the DAGs
in the order given, stopping at the first that fails), prints the state of each task, and
exits 0 on success or 1 with ``FAILED <task>: <reason>`` lines.

A pipeline DAG is scheduled on its sources' Assets; ``dag.test`` runs it with a logical date
instead, which is how ``ds`` reaches its tasks here (``context.run_ds``).

Retries are switched off (``--retries`` keeps them): ``dag.test`` would sleep through each
retry delay, and on a laptop a failure is better seen at once. ``dag.test`` does not enforce
pools; the real scheduler does (``make airflow``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time

from mlcore import config
from nightshift_airflow import airflow_env, callbacks


class _FailureLines(logging.Handler):
    """Keeps the one-line reasons that the failure callback logs, per task."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if line.startswith(callbacks.PREFIX) and " task=" in line:
            task_id = line.split(" task=", 1)[1].split(" ", 1)[0]
            self.reasons[task_id] = line.split(" reason=", 1)[-1]


def parse_ds(value: str) -> dt.date:
    try:
        return config.parse_ds(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ds must look like 2024-01-31, got {value!r}") from None


def run_dags(dag_ids: list[str], ds: dt.date, *, keep_retries: bool = False) -> int:
    """Run each DAG for ``ds`` with ``dag.test``, in order; stop at the first that fails.

    Print a summary of each; return the exit code (0, 1 when a run failed, 2 when a DAG is
    missing or does not import).
    """
    env = airflow_env.apply()
    # Airflow is imported only now, after its environment is set.
    from airflow import settings

    if env["AIRFLOW__CORE__DAGS_FOLDER"] != settings.DAGS_FOLDER:
        # dag.test would fail later with "the dag is not serialized".
        raise RuntimeError(
            f"Airflow was imported before its environment was set (DAGs folder "
            f"{settings.DAGS_FOLDER}): call airflow_env.apply() first"
        )
    airflow_env.prepare()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"])
    for path, error in bag.import_errors.items():
        print(f"IMPORT ERROR {path}: {error.strip().splitlines()[-1]}")
    missing = [d for d in dag_ids if d not in bag.dags]
    if missing:
        known = ", ".join(sorted(bag.dags)) or "none"
        print(f"unknown DAG {', '.join(map(repr, missing))}; known: {known}")
        return 2
    for dag_id in dag_ids:
        code = _run_one(bag.dags[dag_id], ds, keep_retries=keep_retries)
        if code:
            if dag_id != dag_ids[-1]:
                print(f"not run: {', '.join(dag_ids[dag_ids.index(dag_id) + 1 :])}")
            return code
    return 0


def _run_one(dag, ds: dt.date, *, keep_retries: bool) -> int:
    started = time.perf_counter()
    if not keep_retries:
        for task in dag.tasks:
            task.retries = 0

    reasons = _FailureLines()
    logging.getLogger(callbacks.__name__).addHandler(reasons)
    try:
        run = dag.test(logical_date=dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC))
    finally:
        logging.getLogger(callbacks.__name__).removeHandler(reasons)

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    state = getattr(run.state, "value", run.state)
    print(f"\n{dag.dag_id} ds={ds}: {state} in {time.perf_counter() - started:.0f}s")
    for task_id in dag.task_ids:
        task_state = states.get(task_id)
        print(f"  {task_id:<24} {getattr(task_state, 'value', task_state) or 'not run'}")
    failed = [t for t in dag.task_ids if states.get(t) == "failed"]
    for task_id in failed:
        print(f"FAILED {task_id}: {reasons.reasons.get(task_id, 'see the log above')}")
    return 0 if state == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nightshift_airflow.runner", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dag_ids", nargs="+", metavar="dag_id", help="run in this order")
    parser.add_argument("--ds", type=parse_ds, required=True, help="the day to run, YYYY-MM-DD")
    parser.add_argument("--retries", action="store_true", help="keep the tasks' retries")
    args = parser.parse_args(argv)
    return run_dags(args.dag_ids, args.ds, keep_retries=args.retries)


if __name__ == "__main__":
    code = main()
    # Interpreter teardown after dag.test takes seconds (Airflow's in-process API server and
    # its threads); everything is committed and printed by now, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
