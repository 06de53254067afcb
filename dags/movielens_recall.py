"""movielens_recall: u2i and i2i recall tables from a latent factor model (docs: the docstring)."""

from airflow.sdk import dag
from nightshift_airflow import tasks
from nightshift_airflow.assets import source_asset
from nightshift_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS

from mlcore.pipelines import get

PIPELINE = get("movielens_recall")


@dag(
    dag_id=PIPELINE.name,
    # when every source it reads has staged the night's delivery (ingest_<source> DAGs)
    schedule=[source_asset(source) for source in PIPELINE.sources],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, *PIPELINE.tags],
)
def movielens_recall():
    """
    ### MovieLens recall: u2i and i2i tables

    Every night, once `ingest_movielens` has loaded, checked and staged the delivery `ds`
    (`staging.movielens_*`; its Asset `nightshift.raw.movielens` starts this DAG with that
    `ds`): split every user's ratings as the original LFM project did (users with more than
    2000 ratings out, the last two ratings by time held out, rating >= 4 a positive) into
    sharded Parquet files, train the latent factor model over hashed ids with a ranking
    objective (`lfm_bpr`, the published slot) beside the original's MSE version (`lfm_mse`)
    and the peers `popularity`, `ease` and implicit's `als`, evaluate them all on the held-out
    ratings (Recall@10/20, NDCG@10, AUC, RMSE), gate, and publish. When a peer beats the LFM,
    the peer serves and the run is marked degraded with the reason (`ops.model_runs`,
    `ops.serving`, the gate's log).

    **Input**: `staging.movielens_*` (from `lake/raw/movielens/ds=…/`: ratings and movies in
    any GroupLens format: ml-latest CSV, ml-1m/ml-10m `.dat`, ml-100k `u.data`/`u.item`).

    **Outputs** (`marts.<table>` partition `ds`, `lake/outputs/<table>/ds=…/`, and an Asset
    `nightshift.marts.<table>` per table):

    | table | one row per | columns (besides `ds`) |
    |---|---|---|
    | `movie_u2i` | user × recommended movie (top 50) | user_id, rank, movie_id, score, model |
    | `movie_i2i` | movie × similar one (top 50) | movie_id, rank, similar_movie_id, score, model |

    (`model`: model_name and model_version of the model that served.) The published model's
    held-out lists are at
    `lake/predictions/movielens_recall/ds=…/holdout.parquet`, to recompute any score.

    **Rerun a day**: clear the run of that `ds` in the UI (every task is idempotent for its
    `ds`), or `nightshift run movielens_recall --ds YYYY-MM-DD` on a laptop (it runs
    `ingest_movielens` for that day first).
    """
    features = tasks.build_features(PIPELINE.name)
    train = tasks.train_model(PIPELINE.name)
    gate = tasks.gate_model(PIPELINE.name)
    publish = tasks.publish_outputs(PIPELINE.name)

    features >> train >> gate >> publish


movielens_recall()
