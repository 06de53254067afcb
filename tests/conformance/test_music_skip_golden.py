"""music_skip publishes the rows it is pinned to (tests/golden/music_skip/).

The golden marts were first published by commit 0d5396c, the last before the pipeline
contract: equal rows proved the contract changed nothing. The features for real deliveries
changed the rows on purpose; the pin was made again by the script beside them, on the same two
synthetic nights the conformance runs use. Keys, versions, arms and classes must be equal;
floats equal to 1e-6. The scores come from float32 Keras models: byte-identical on an idle
development machine, but with the machine loaded (a docker build beside the tests) one p_skip
moved by 3e-8, one float32 ulp (Eigen's thread pool split a reduction differently); 1e-6
allows that and nothing more.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mlcore import pipelines

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "music_skip"
# on the worker that runs music_skip's nights (tests/conftest.py groups the others by name)
pytestmark = pytest.mark.xdist_group("pipeline_runs-music_skip")


@pytest.mark.parametrize("table", pipelines.get("music_skip").published_tables)
def test_music_skip_publishes_the_rows_it_is_pinned_to(pipeline_runs, table):
    settings = pipeline_runs["music_skip"].settings
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        now = con.execute(f"select * from marts.{table} order by all").fetchall()
        before = con.execute(
            f"select * from read_parquet('{GOLDEN / table}.parquet') order by all"
        ).fetchall()
    assert len(now) == len(before) > 0
    for new, old in zip(now, before, strict=True):
        for a, b in zip(new, old, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, abs=1e-6), (table, new, old)
            else:
                assert a == b, (table, new, old)
