"""The laptop Airflow: its home, its environment, its metadata DB and the nightshift pools.

One place that every way of running Airflow on a laptop shares:

- ``nightshift run`` (through :mod:`nightshift_airflow.runner`) calls :func:`apply` and
  :func:`prepare` before ``dag.test``;
- ``make airflow`` (``airflow standalone``) takes the same environment from the shell::

      eval "$(python -m nightshift_airflow.airflow_env --print-env)"
      python -m nightshift_airflow.airflow_env --init   # migrate the DB, create the pools
      airflow standalone

The environment must be set before ``airflow`` is imported: Airflow reads its configuration
once, at import time. The compose stack (docker/) sets the same variables its own way.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from mlcore.config import Settings
from nightshift_airflow import WAREHOUSE_POOL

REPO = Path(__file__).resolve().parents[2]

# name -> (slots, description). DuckDB allows one writer, so the warehouse pool has one slot.
POOLS = {
    WAREHOUSE_POOL: (1, "Tasks that write the DuckDB warehouse (DuckDB allows one writer)."),
}


def airflow_env(environ: Mapping[str, str] | None = None, repo: Path = REPO) -> dict[str, str]:
    """The variables that make Airflow run this repo's DAGs from a home of its own.

    ``AIRFLOW_HOME`` and the metadata DB are kept when already set (tests and the e2e runs
    use their own); the DAG and plugin folders are always this repo's, since ``dag.test``
    needs the DAGs folder to be the one the DAG was parsed from.
    """
    environ = os.environ if environ is None else environ
    home = Path(environ.get("AIRFLOW_HOME") or repo / ".airflow").absolute()
    plugins = str(repo / "plugins")
    pythonpath = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": plugins,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or f"sqlite:///{home / 'airflow.db'}",
        # Task processes and `airflow` commands import nightshift_airflow too.
        "PYTHONPATH": os.pathsep.join([plugins, *(p for p in pythonpath if p != plugins)]),
    }
    # Task processes may run in another working directory: make the laptop defaults of the
    # lake and the warehouse (relative to where we were started) absolute.
    defaults = Settings()
    lake = environ.get("NIGHTSHIFT_LAKE") or defaults.lake
    if not lake.startswith("s3://"):
        env["NIGHTSHIFT_LAKE"] = str(Path(lake).absolute())
    warehouse = environ.get("NIGHTSHIFT_WAREHOUSE") or str(defaults.warehouse)
    env["NIGHTSHIFT_WAREHOUSE"] = str(Path(warehouse).absolute())
    return env


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :func:`airflow_env` in ``environ`` (default: this process); returns what was set."""
    environ = os.environ if environ is None else environ
    env = airflow_env(environ)
    environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def migrate_db_if_needed() -> bool:
    """Create or migrate the metadata DB when it is not at this Airflow's head; True if it did.

    Reading the current revision costs milliseconds, the heads about 0.7 s; a fresh SQLite DB
    takes a few seconds to create.
    """
    import airflow
    from airflow import settings
    from airflow.utils import db
    from alembic.script import ScriptDirectory
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with settings.engine.connect() as con:
            current = con.execute(text("select version_num from alembic_version")).scalars().all()
    except (OperationalError, ProgrammingError):  # no DB, or no alembic table yet
        current = []
    heads = ScriptDirectory(str(Path(airflow.__file__).parent / "migrations")).get_heads()
    if set(current) == set(heads):
        return False
    db.initdb()  # creates a new DB, or migrates an existing one
    return True


def ensure_pools(pools: Mapping[str, tuple[int, str]] = POOLS) -> list[str]:
    """Create the nightshift pools that are missing (existing ones keep their slots)."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    created = []
    with create_session() as session:
        for name, (slots, description) in pools.items():
            if Pool.get_pool(name, session=session) is None:
                Pool.create_or_update_pool(
                    name, slots, description, include_deferred=False, session=session
                )
                created.append(name)
    return created


def prepare() -> None:
    """Metadata DB at head and pools in place (call :func:`apply` first)."""
    migrate_db_if_needed()
    ensure_pools()


def export_lines(env: Mapping[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nightshift_airflow.airflow_env", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--print-env", action="store_true", help="print shell export lines")
    parser.add_argument("--init", action="store_true", help="migrate the DB, create the pools")
    args = parser.parse_args(argv)
    if not (args.print_env or args.init):
        parser.error("say --print-env, --init or both")
    if args.print_env:
        print(export_lines(airflow_env()))
    if args.init:
        env = apply()
        migrated = migrate_db_if_needed()
        created = ensure_pools()
        print(
            f"airflow home {env['AIRFLOW_HOME']}: db {'migrated' if migrated else 'up to date'}, "
            f"pools created: {', '.join(created) or 'none'}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
