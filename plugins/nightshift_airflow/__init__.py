"""The Airflow side of nightshift: task builders, the train launcher, callbacks, assets.

DAG files in ``dags/`` import from here (Airflow puts ``plugins/`` on ``sys.path``); the
work itself lives in ``mlcore``, which never imports anything from this package.

Modules, cheapest first (DAG files import only the first four at parse time):

- ``defaults``: the settings every nightshift DAG shares (start date, retries, callback).
- ``callbacks``: the failure callback that logs one line per failed task.
- ``assets``: one Airflow Asset per published table, for downstream DAGs to schedule on.
- ``tasks``: the TaskFlow tasks (ingest, validate, features, gate, publish).
- ``launcher``: the train task for the configured backend (local, docker, kubernetes).
- ``airflow_env``: the laptop Airflow home (env vars, metadata DB, pools).
- ``runner``: ``python -m nightshift_airflow.runner <dag_id> --ds YYYY-MM-DD``.
"""

WAREHOUSE_POOL = "nightshift_warehouse"
"""The pool of one slot that every task writing the DuckDB warehouse runs in (one writer)."""
