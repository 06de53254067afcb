"""music_skip: will a Pozytywka user play a track in full or skip it? (docs: the DAG docstring)."""

from airflow.sdk import dag
from nightshift_airflow import tasks
from nightshift_airflow.assets import source_asset
from nightshift_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS

from mlcore.pipelines import get

PIPELINE = get("music_skip")


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
def music_skip():
    """
    ### Music skip prediction (Pozytywka)

    Every night, once `ingest_pozytywka` has loaded, checked and staged the day `ds` that has
    just ended (`staging.pozytywka_*`, shared by every pipeline reading it; its Asset
    `nightshift.raw.pozytywka` starts this DAG with that `ds`): build features in SQL,
    train two Keras MLPs (simple, advanced) against majority and gradient-boosting baselines,
    gate them against the champion, and publish. When no model passes and no champion can
    serve, the best model that beats `always_played` serves and the run is marked degraded
    (the reason is in the gate's log, `ops.model_runs`, `ops.serving` and the Asset
    events); only when nothing beats `always_played` does it fail.

    **Input**: `staging.pozytywka_*` (from `lake/raw/pozytywka/ds=…/`: JSONL artists, tracks,
    users, sessions, track_storage).

    **Outputs** (`marts.<table>` partition `ds`, `lake/outputs/<table>/ds=…/`, and an Asset
    `nightshift.marts.<table>` per table):

    | table | one row per | columns (besides `ds`) |
    |---|---|---|
    | `skip_scores` | user × candidate track | user_id, track_id, p_skip, model_version, arm |
    | `ab_assignments` | scored user | user_id, arm (simple/advanced), model_name, model_version |
    | `cache_plan` | track | track_id, expected_full_plays, storage class: now, recommended |
    | `ab_report` | past scoring day × arm | score_ds, arm, users, plays, realised skip rate |

    **Rerun a day**: clear the run of that `ds` in the UI (every task is idempotent for its
    `ds`), or `nightshift run music_skip --ds YYYY-MM-DD` on a laptop (it runs
    `ingest_pozytywka` for that day first). A failed task logs one
    line `nightshift task failed: … reason=…`; a failed validation is not retried.
    """
    features = tasks.build_features(PIPELINE.name)
    train = tasks.train_model(PIPELINE.name)
    gate = tasks.gate_model(PIPELINE.name)
    publish = tasks.publish_outputs(PIPELINE.name)

    features >> train >> gate >> publish


music_skip()
