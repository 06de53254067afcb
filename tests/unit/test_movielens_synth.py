"""The synthetic MovieLens generator: ml-latest files, deterministic, realistic where a
recommender cares (taste, popularity, activity, the rating scale), two nights that continue one
universe, and the real files' quirks on request."""

from __future__ import annotations

import csv
import datetime as dt
import io

import duckdb
import numpy as np
import pytest

from mlcore.ingest import ingest_delivery
from mlcore.lake import LocalLake
from mlcore.sources.movielens import SOURCE
from mlcore.synth.movielens import write_delivery
from mlcore.validate import (
    countable_rules,
    load_suite,
    sql_counts,
    suite_rules,
    with_declared_columns,
)
from mlcore.warehouse import connect

D1, D2 = dt.date(2024, 1, 30), dt.date(2024, 1, 31)
# Denser than the pipeline's test nights (SOURCE.test_nights), so that rating-level structure
# shows on a small sample: 80 ratings a user over 400 movies.
NIGHT1 = {"users": 150, "movies": 400, "ratings": 12_000, "days": 120, "defects": True}
NIGHT2 = {"users": 150, "movies": 400, "ratings": 100, "days": 1, "defects": True}
DAY = 86_400


def _epoch(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY


def _folder(root, ds: dt.date):
    return root / "raw" / "movielens" / f"ds={ds.isoformat()}"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """The test nights, clean (root / clean) and with their quirks (root / defects)."""
    root = tmp_path_factory.mktemp("movielens-synth")
    for kind, defects in (("clean", False), ("defects", True)):
        for ds, night in ((D1, NIGHT1), (D2, NIGHT2)):
            write_delivery(root / kind, ds, seed=3, **{**night, "defects": defects})
    return root


class Ratings:
    """A delivery's ratings.csv as the table ``ratings`` of an in-memory database."""

    def __init__(self, root, ds: dt.date, name: str = "ratings"):
        self.con = duckdb.connect()
        self.add(root, ds, name)

    def add(self, root, ds: dt.date, name: str) -> Ratings:
        path = _folder(root, ds) / "ratings.csv"
        self.con.execute(
            f"create table {name} as select * from read_csv(?, header = true, "
            "auto_detect = false, columns = {'userId': 'bigint', 'movieId': 'bigint', "
            "'rating': 'double', 'timestamp': 'bigint'})",
            [str(path)],
        )
        return self

    def one(self, sql: str) -> tuple:
        return self.con.execute(sql).fetchone()

    def all(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()


def _movies(root, ds: dt.date) -> list[dict]:
    text = (_folder(root, ds) / "movies.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_files_are_ml_latest_files(lake):
    folder = _folder(lake / "clean", D1)
    ratings = (folder / "ratings.csv").read_text().splitlines()
    assert ratings[0] == "userId,movieId,rating,timestamp"
    user, movie, rating, ts = ratings[1].split(",")
    assert rating in {f"{s / 2:.1f}" for s in range(1, 11)} and len(ts) == 10
    movies = (folder / "movies.csv").read_bytes().decode("utf-8")
    assert movies.startswith("movieId,title,genres\n") and "\r" not in movies
    rows = _movies(lake / "clean", D1)
    assert len(rows) == NIGHT1["movies"]
    ids = [int(r["movieId"]) for r in rows]
    assert ids == sorted(set(ids)) and ids[-1] > len(ids)  # increasing, with gaps
    titles = [r["title"] for r in rows]
    assert all(t[-6:-5] == "(" and t[-5:-1].isdigit() and t[-1] == ")" for t in titles)
    assert any("," in t for t in titles) and any('"' in t for t in titles)
    assert any(not t.isascii() for t in titles)
    assert '"' in movies  # quoted where needed, as GroupLens quotes
    genres = [r["genres"] for r in rows]
    assert "(no genres listed)" in genres
    listed = [g.split("|") for g in genres if g != "(no genres listed)"]
    assert all(g == sorted(g) and len(set(g)) == len(g) for g in listed)


def test_the_same_arguments_give_the_same_bytes(lake, tmp_path):
    write_delivery(tmp_path / "again", D1, seed=3, **NIGHT1)
    for name in ("ratings.csv", "movies.csv"):
        again = (_folder(tmp_path / "again", D1) / name).read_bytes()
        assert again == (_folder(lake / "defects", D1) / name).read_bytes(), name
    write_delivery(tmp_path / "other", D1, seed=4, **NIGHT1)
    other = (_folder(tmp_path / "other", D1) / "ratings.csv").read_bytes()
    assert other != (_folder(lake / "defects", D1) / "ratings.csv").read_bytes()


def test_a_history_is_realistic(lake):
    ratings = Ratings(lake / "clean", D1)
    n, mean, users, fewest = ratings.one(
        "select count(*), avg(rating), count(distinct userId), "
        "(select min(n) from (select count(*) n from ratings group by userId)) from ratings"
    )
    assert abs(n - NIGHT1["ratings"]) <= 0.01 * NIGHT1["ratings"]
    assert users == NIGHT1["users"] and fewest >= 20  # GroupLens's guarantee
    assert 3.3 <= mean <= 3.8
    shares = dict(
        ratings.all("select rating, count(*) / sum(count(*)) over () from ratings group by 1")
    )
    assert set(shares) <= {s / 2 for s in range(1, 11)}
    assert max(shares, key=shares.get) == 4.0
    for half in (1.5, 2.5, 3.5, 4.5):  # half stars are rarer than the whole ones beside them
        assert shares[half] < min(shares[half - 0.5], shares[half + 0.5])
    once = ratings.one("select count(*) = count(distinct (userId, movieId)) from ratings")[0]
    assert once  # a user rates a movie at most once
    lo, hi = ratings.one('select min("timestamp"), max("timestamp") from ratings')
    assert _epoch(D1) - NIGHT1["days"] * DAY <= lo and hi < _epoch(D1) + DAY
    # never before the movie's release year
    years = {int(r["movieId"]): int(r["title"][-5:-1]) for r in _movies(lake / "clean", D1)}
    rated = ratings.all('select movieId, min("timestamp") from ratings group by 1')
    assert all(dt.datetime.fromtimestamp(t, dt.UTC).year >= years[m] for m, t in rated)


def test_popularity_and_activity_are_skewed_as_in_ml_latest_small(tmp_path):
    """At ml-latest-small's size (610 users, 9,742 movies, 100,836 ratings), where the real
    top 1% of movies hold 16% of the ratings, the top 10% 60%."""
    write_delivery(tmp_path, D1, seed=1)
    ratings = Ratings(tmp_path, D1)
    counts = np.sort(np.array(ratings.all("select count(*) from ratings group by movieId"))[:, 0])[
        ::-1
    ]
    top1 = counts[:97].sum() / counts.sum()
    top10 = counts[:974].sum() / counts.sum()
    assert 0.10 <= top1 <= 0.25 and 0.45 <= top10 <= 0.75
    per_user = np.array(ratings.all("select count(*) from ratings group by userId"))[:, 0]
    assert per_user.min() >= 20 and np.median(per_user) < per_user.mean() / 1.4


def test_a_latent_factor_model_learns_the_tastes(lake):
    """On a fifth of the first night held out, a small matrix factorisation (4 factors,
    alternating least squares on what user and movie biases leave) predicts the ratings
    better than the biases alone: the ratings follow the users' tastes."""
    data = np.array(
        Ratings(lake / "clean", D1).all("select userId, movieId, rating from ratings"),
        dtype=float,
    )
    u = np.unique(data[:, 0], return_inverse=True)[1]
    m = np.unique(data[:, 1], return_inverse=True)[1]
    r = data[:, 2]
    test = np.random.default_rng(0).random(len(r)) < 0.2
    train = ~test

    def mean_by(index, values, lam=5.0):
        n = index.max() + 1
        return np.bincount(index[train], values[train], n) / (
            np.bincount(index[train], minlength=n) + lam
        )

    mu = r[train].mean()
    user_bias = mean_by(u, r - mu)[u]
    base = mu + user_bias + mean_by(m, r - mu - user_bias)[m]
    left = r - base
    rng = np.random.default_rng(0)
    factors = [rng.normal(0, 0.1, (u.max() + 1, 4)), rng.normal(0, 0.1, (m.max() + 1, 4))]
    for _ in range(10):
        for side, (index, other) in enumerate(((u, m), (m, u))):
            mine, theirs = factors[side], factors[1 - side]
            for i in range(len(mine)):
                rows = (index == i) & train
                b = theirs[other[rows]]
                mine[i] = np.linalg.solve(b.T @ b + 8.0 * np.eye(4), b.T @ left[rows])
    factored = base + np.sum(factors[0][u] * factors[1][m], axis=1)
    rmse = {
        "biases": np.sqrt(np.mean((r - base)[test] ** 2)),
        "factors": np.sqrt(np.mean((r - factored)[test] ** 2)),
    }
    assert rmse["factors"] < 0.97 * rmse["biases"], rmse


def test_the_second_night_continues_the_universe_with_new_ratings(lake):
    assert _movies(lake / "clean", D2) == _movies(lake / "clean", D1)
    both = Ratings(lake / "clean", D1, "first").add(lake / "clean", D2, "second")
    n, lo, hi = both.one('select count(*), min("timestamp"), max("timestamp") from second')
    assert 0.8 * NIGHT2["ratings"] <= n <= NIGHT2["ratings"]
    assert _epoch(D2) <= lo and hi < _epoch(D2) + DAY  # inside its day
    users = set(both.all("select distinct userId from first"))
    assert set(both.all("select distinct userId from second")) <= users
    again = both.one("select count(*) from second semi join first using (userId, movieId)")[0]
    assert again == 0  # nothing the first night rated is rated again


def test_quirks_are_injected_on_request(lake):
    for ds in (D1, D2):
        path = _folder(lake / "defects", ds) / "ratings.csv"
        lines = path.read_text().splitlines()[1:]
        assert sum(line.count(",") != 3 for line in lines) == 1  # one malformed line
        cells = [line.split(",") for line in lines if line.count(",") == 3]
        known = {int(r["movieId"]) for r in _movies(lake / "defects", ds)}
        end = _epoch(ds) + DAY
        pairs = [(c[0], c[1]) for c in cells]
        found = {
            "duplicate line": len(lines) - len(set(lines)),
            "rated again": len(pairs) - len(set(pairs)),
            "id -1": sum("-1" in (c[0], c[1]) for c in cells),
            "off scale": sum(c[2] in ("0.0", "5.5", "6.0") for c in cells),
            "unknown movie": sum(int(c[1]) not in known and c[1] != "-1" for c in cells),
            "future timestamp": sum(int(c[3]) >= end for c in cells),
        }
        assert all(found.values()), (ds, found)
        assert sum(found.values()) < 0.05 * max(len(lines), 200), (ds, found)


def test_a_clean_delivery_breaks_no_row_level_rule(lake, tmp_path):
    """(The conformance tests run the whole GX validation on it; this is validation's own SQL.)"""
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_delivery(con, LocalLake(lake / "clean"), SOURCE, D1)
        assert all(t.rejected == 0 for t in report.tables.values())
        for table in SOURCE.tables:
            rules = suite_rules(with_declared_columns(load_suite("movielens", table.name), table))
            rules = countable_rules(rules, set(table.raw_columns))
            counts = sql_counts(con, SOURCE.raw_table(table.name), D1, rules)
            assert counts["quarantine_rows"] == 0 and not any(counts["unexpected"].values())


def test_nonsense_arguments_are_refused(tmp_path):
    for bad in ({"users": 0}, {"movies": 1}, {"days": 0}, {"ratings": -1}, {"seed": -1}):
        with pytest.raises(ValueError):
            write_delivery(tmp_path, D1, **{"seed": 0, **bad})
