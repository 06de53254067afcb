"""The failure callback logs one line that says which task failed for which ds, and why."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

# Airflow puts plugins/ on sys.path for DAG files; tests do it themselves.
PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from nightshift_airflow import callbacks  # noqa: E402


class AirflowFailException(Exception):
    """Stands in for Airflow's: the callback goes by the name, so no Airflow import here."""


def fake_context(exception: BaseException | None, ds: str | None = "2024-01-30") -> dict:
    ti = SimpleNamespace(dag_id="music_skip", task_id="validate_pozytywka")
    return {"task_instance": ti, "ti": ti, "ds": ds, "exception": exception}


def test_logs_one_line_with_dag_task_ds_and_the_first_line_of_the_reason(caplog):
    exc = AirflowFailException(
        "raw.pozytywka_sessions: 61% of rows broke expect_column_values_to_not_be_null(user_id)"
        "\nTraceback-like detail that on-call does not need in the summary"
    )
    with caplog.at_level(logging.ERROR, logger=callbacks.__name__):
        callbacks.task_failed(fake_context(exc))

    assert [r.getMessage() for r in caplog.records] == [
        "nightshift task failed: dag=music_skip task=validate_pozytywka ds=2024-01-30 "
        "reason=raw.pozytywka_sessions: 61% of rows broke "
        "expect_column_values_to_not_be_null(user_id)"
    ]
    assert caplog.records[0].levelno == logging.ERROR


@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (
            RuntimeError("music_skip: no model can serve\nmore"),
            "RuntimeError: music_skip: no model can serve",
        ),
        (KeyError("user_id"), "KeyError: 'user_id'"),
        (ValueError("\n\n  leading blank lines  \nsecond"), "ValueError: leading blank lines"),
        (MemoryError(), "MemoryError"),
        (None, "unknown (no exception in the context)"),
        ("a message as a string", "a message as a string"),
    ],
)
def test_reason_is_one_line(exception, reason):
    line = callbacks.failure_line(fake_context(exception))
    assert line.endswith(f"reason={reason}")
    assert "\n" not in line


def test_missing_ds_and_task_instance_still_give_a_line():
    dag = SimpleNamespace(dag_id="music_skip")
    line = callbacks.failure_line({"dag": dag, "exception": RuntimeError("boom")})
    assert line == "nightshift task failed: dag=music_skip task=? ds=- reason=RuntimeError: boom"


def test_an_attempt_that_will_be_retried_logs_a_warning_with_its_own_prefix(caplog):
    with caplog.at_level(logging.WARNING, logger=callbacks.__name__):
        callbacks.task_retrying(fake_context(ConnectionError("lake unreachable")))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "nightshift task retrying: dag=music_skip task=validate_pozytywka ds=2024-01-30 "
        "reason=ConnectionError: lake unreachable"
    )


def test_the_runner_reads_the_reason_back_from_the_line():
    from nightshift_airflow.runner import _FailureLines

    handler = _FailureLines()
    logger = logging.getLogger(callbacks.__name__)
    logger.addHandler(handler)
    try:
        callbacks.task_failed(fake_context(AirflowFailException("bad rows: 61% (limit 25%)")))
    finally:
        logger.removeHandler(handler)
    assert handler.reasons == {"validate_pozytywka": "bad rows: 61% (limit 25%)"}
