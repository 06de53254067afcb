"""How much of a delivery's skips can be learnt at all: scores that know the holdout's answers.

    python -m mlcore.pipelines.music_skip.ceiling --ds 2023-03-28

reads ``features/music_skip/ds=D/plays.parquet`` from the lake (``NIGHTSHIFT_LAKE``), splits it
by time as the trainer does (the latest 20% of plays are the holdout), and scores the holdout
with references no model can have, because they are computed FROM the holdout's labels:

- ``user_rate_in_hindsight``: each user's skip rate over the holdout itself;
- ``user_x_<attribute>_in_hindsight``: each user's skip rate per quintile of a track attribute,
  over the holdout itself (the per-user taste a model would have to learn perfectly). Its
  cells hold few plays, so it also fits their noise: it overstates what can be learnt;
- ``user_x_random_in_hindsight``: the same with quintiles drawn at random (seeded), which is
  that noise alone: an attribute's lead over it is the taste there is to learn.

When a trained model comes close to these, what is left is noise the features cannot explain:
a better model will not move the metric much further, only new information would. This is a
diagnostic for whoever tunes the pipeline, never a score the gate reads.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlcore import training
from mlcore.config import load_settings
from mlcore.lake import features_prefix, open_lake
from mlcore.metrics import binary_metrics
from mlcore.pipelines.music_skip.features import LABEL

ATTRIBUTES = ("danceability", "valence", "energy", "duration_ms", "acousticness")


def hindsight_ceiling(plays: pd.DataFrame, test_share: float = 0.2) -> dict[str, dict]:
    """{reference: binary metrics on the holdout} for the references above."""
    split = training.time_split_point(plays["timestamp"].to_numpy(), test_share)
    test = plays[plays["timestamp"] >= split]
    y = test[LABEL].to_numpy()
    out = {"user_rate_in_hindsight": test.groupby("user_id")[LABEL].transform("mean")}
    for attribute in ATTRIBUTES:
        quintile = pd.qcut(test[attribute].rank(method="first"), 5, labels=False)
        out[f"user_x_{attribute}_in_hindsight"] = test.groupby(["user_id", quintile])[
            LABEL
        ].transform("mean")
    random_quintile = np.random.default_rng(0).integers(0, 5, len(test))
    out["user_x_random_in_hindsight"] = test.groupby(["user_id", random_quintile])[LABEL].transform(
        "mean"
    )
    return {name: binary_metrics(y, np.asarray(p, dtype=float)) for name, p in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ds", required=True, help="the features' date, YYYY-MM-DD")
    parser.add_argument("--test-share", type=float, default=0.2)
    args = parser.parse_args(argv)
    lake = open_lake(load_settings())
    with lake.local_dir(features_prefix("music_skip", args.ds)) as local:
        path = local / "plays.parquet"
        if not path.exists():
            print(
                f"no {path.name} for {args.ds}: run the music_skip features first", file=sys.stderr
            )
            return 1
        columns = ["user_id", "timestamp", LABEL, *ATTRIBUTES]
        plays = pq.read_table(path, columns=columns).to_pandas()
    print(f"{'reference (knows the holdout labels)':40s} {'accuracy':>9s} {'roc_auc':>8s}")
    for name, m in hindsight_ceiling(plays, args.test_share).items():
        print(f"{name:40s} {m['accuracy']:9.4f} {m['roc_auc']:8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
