"""The SQL of movielens_recall (sql/movielens_recall/): the original project's split.

Staging tables are built by hand with the columns sql/movielens/ produces, so these tests
need neither ingest nor validation.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlcore.pipelines.movielens_recall.features import MOVIE_COLUMNS, RATING_COLUMNS
from mlcore.sqlrun import run_sql_dir
from mlcore.warehouse import connect

DS = dt.date(2024, 3, 31)
T0 = dt.datetime(2024, 1, 1)


def staging(con, ratings: list[tuple], movies: list[int]) -> None:
    """staging.movielens_* as sql/movielens/ leaves them; ratings: (user, movie, rating, hour)."""
    con.execute(
        "create or replace table staging.movielens_movies (movie_id bigint, title varchar, "
        "year integer, genres varchar[], ds date)"
    )
    con.execute(
        "insert into staging.movielens_movies select m, 'Movie ' || m || ' (1999)', 1999, "
        "['Drama'], ?::date from (select unnest(?::bigint[]) as m)",
        [DS, movies],
    )
    con.execute(
        "create or replace table staging.movielens_ratings (user_id bigint, movie_id bigint, "
        "rating double, rated_at timestamp, ds date)"
    )
    frame = pd.DataFrame(ratings, columns=["user_id", "movie_id", "rating", "hours"])
    frame["rated_at"] = T0 + pd.to_timedelta(frame.pop("hours"), unit="h")
    frame["ds"] = DS
    con.register("given", frame)
    con.execute("insert into staging.movielens_ratings by name select * from given")
    con.unregister("given")


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_last_two_ratings_by_time_are_held_out_and_four_stars_is_positive(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    staging(
        con,
        [
            # user 1: five ratings; hours 4 and 5 are the last two (test)
            (1, 10, 5.0, 1),
            (1, 11, 3.5, 2),
            (1, 12, 4.0, 3),
            (1, 13, 2.0, 4),
            (1, 14, 4.5, 5),
            # user 2: 11 and 12 at the same hour: ties go by movie_id (the higher is later)
            (2, 10, 4.0, 1),
            (2, 11, 1.0, 5),
            (2, 12, 5.0, 5),
            (2, 13, 3.0, 9),
            # user 3: two ratings only: nothing held out
            (3, 10, 4.0, 1),
            (3, 11, 4.0, 2),
            # user 4 rated a movie missing from the catalogue: left out
            (4, 10, 4.0, 1),
            (4, 11, 4.0, 2),
            (4, 12, 4.0, 3),
            (4, 99, 5.0, 4),
        ],
        movies=[10, 11, 12, 13, 14],
    )
    run_sql_dir(con, "movielens_recall", {"ds": DS})
    got = rows(
        con,
        "select user_id, movie_id, label, split from features.movielens_ratings order by all",
    )
    assert got == [
        (1, 10, 1, "train"), (1, 11, 0, "train"), (1, 12, 1, "train"),
        (1, 13, 0, "test"), (1, 14, 1, "test"),
        (2, 10, 1, "train"), (2, 11, 0, "train"), (2, 12, 1, "test"), (2, 13, 0, "test"),
        (3, 10, 1, "train"), (3, 11, 1, "train"),
        (4, 10, 1, "train"), (4, 11, 1, "test"), (4, 12, 1, "test"),
    ]  # fmt: skip
    columns = [c[0] for c in con.execute("describe features.movielens_ratings").fetchall()]
    assert tuple(columns) == RATING_COLUMNS
    movies = con.execute("select * from features.movielens_movies order by movie_id").df()
    assert tuple(movies.columns) == MOVIE_COLUMNS
    # counts are of the training split only
    m10, m11 = movies.set_index("movie_id").loc[10], movies.set_index("movie_id").loc[11]
    assert (m10["train_ratings"], m10["train_positives"]) == (4, 4)
    assert (m11["train_ratings"], m11["train_positives"]) == (3, 1)  # user 4's is held out
    assert movies.set_index("movie_id").loc[13, "train_ratings"] == 0


def test_users_with_more_than_2000_ratings_are_left_out(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    heavy = [(7, m, 3.0, m) for m in range(2001)]
    edge = [(8, m, 3.0, m) for m in range(2000)]
    staging(con, heavy + edge, movies=list(range(2001)))
    run_sql_dir(con, "movielens_recall", {"ds": DS})
    users = rows(con, "select user_id, count(*) from features.movielens_ratings group by 1")
    assert users == [(8, 2000)]
