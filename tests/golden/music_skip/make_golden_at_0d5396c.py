"""Golden marts of music_skip at the last pre-contract commit (0d5396c), old steps API."""
import datetime as dt, os, sys
from pathlib import Path
import duckdb
root = Path(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
os.environ.update(NIGHTSHIFT_LAKE=str(root / "lake"), NIGHTSHIFT_WAREHOUSE=str(root / "w.duckdb"))
from mlcore import steps
from mlcore.synth.pozytywka import write_delivery
D1 = dt.date(2024, 1, 30); D2 = D1 + dt.timedelta(days=1)
write_delivery(root / "lake", D1, users=80, days=21, seed=3, defects=True)
write_delivery(root / "lake", D2, users=80, days=1, seed=3, defects=True)
for d in (D1, D2):
    ds = d.isoformat()
    steps.ingest("pozytywka", ds); steps.validate("pozytywka", ds)
    steps.build_features("music_skip", ds); steps.train("music_skip", ds)
    print(steps.gate("music_skip", ds)); print(steps.publish("music_skip", ds))
with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
    for t in ("skip_scores", "cache_plan", "ab_assignments", "ab_report"):
        con.execute(f"copy (select * from marts.{t} order by all) to '{out}/{t}.csv' (header)")
