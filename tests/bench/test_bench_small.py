"""`nightshift bench` end to end at a small scale (the timings themselves are not asserted)."""

from __future__ import annotations

import json

from mlcore import pipelines
from mlcore.bench import stages
from mlcore.cli import main


def test_bench_runs_and_measures_every_stage(tmp_path, capsys, monkeypatch):
    # The stages are under test, not the challenger's training (tests/conformance has it).
    monkeypatch.setenv("NIGHTSHIFT_MUSIC_SKIP_SEQUENCE_CHALLENGER", "false")
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "music_skip",
            "--users",
            "80",
            "--days",
            "21",
            "--seed",
            "3",
            "--repeat",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["delivery_rows"]["pozytywka/sessions.jsonl"] > 1000
    assert len(result["runs"]) == 1
    for run in result["runs"]:
        assert [s["stage"] for s in run["stages"]] == [
            label for label, _, _ in stages(pipelines.get("music_skip"))
        ]
        for stage in run["stages"]:
            assert stage["seconds"] >= 0 and stage["peak_rss_mb"] > 0
            assert stage["rows_out"] is not None
    ingest = result["runs"][0]["stages"][0]
    assert ingest["rows_in"] >= ingest["rows_out"] > 0
    # One run: nothing to compare. That a rerun publishes the same rows is held by
    # tests/faults/test_kills.py (a night killed a dozen times, then rerun) at less cost.
    assert result["reruns_identical"] is None
    printed = capsys.readouterr().out
    assert "validate" in printed and "stage" in printed and "re-runs" not in printed
