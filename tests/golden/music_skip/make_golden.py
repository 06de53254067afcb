"""How the golden marts beside this file are made, from the current tree:

    python tests/golden/music_skip/make_golden.py /tmp/golden-root tests/golden/music_skip

The scenario is the conformance tests' two nights for pozytywka (seed 3): D1 with 80 users and
21 days of sessions, D2 with one more day. tests/conformance/test_music_skip_golden.py runs the
same nights and compares every published row. The first pin (issue "One pipeline contract")
came from commit 0d5396c, before the contract, and proved the contract changed no row; run
this again only when the published rows change on purpose, and say why in the commit. The
sequence challenger (issue "music_skip on real deliveries") changed only model_version: its
params and tracks.parquet enter the version hash; every score stayed within 3e-7. So did the
setting that can turn the challenger off (TrainParams.challengers enters the hash): again
model_version only, every float within 3e-7.
"""

import datetime as dt
import os
import sys
from pathlib import Path


def main(root: Path, out: Path) -> None:
    os.environ.update(
        NIGHTSHIFT_LAKE=str(root / "lake"), NIGHTSHIFT_WAREHOUSE=str(root / "w.duckdb")
    )
    import duckdb

    from mlcore import steps
    from mlcore.synth.pozytywka import write_delivery

    d1 = dt.date(2024, 1, 30)
    d2 = d1 + dt.timedelta(days=1)
    write_delivery(root / "lake", d1, users=80, days=21, seed=3, defects=True)
    write_delivery(root / "lake", d2, users=80, days=1, seed=3, defects=True)
    for d in (d1, d2):
        ds = d.isoformat()
        steps.ingest("pozytywka", ds)
        steps.validate("pozytywka", ds)
        steps.stage("pozytywka", ds)
        steps.build_features("music_skip", ds)
        steps.train("music_skip", ds)
        steps.gate("music_skip", ds)
        steps.publish("music_skip", ds)
    out.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        for t in ("skip_scores", "cache_plan", "ab_assignments", "ab_report"):
            con.execute(
                f"copy (select * from marts.{t} order by all) to '{out}/{t}.parquet' "
                "(format parquet, compression zstd)"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
