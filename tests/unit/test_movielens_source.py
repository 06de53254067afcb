"""The movielens source: every GroupLens layout ingested through the real path, its quirks
validated and staged, and the real ml-latest-small sample loaded without a rejected line."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest
from conftest import shared_data

from mlcore import steps
from mlcore.config import Settings
from mlcore.ingest import IngestError, ingest_delivery
from mlcore.lake import LocalLake, raw_prefix
from mlcore.sources import get_source
from mlcore.sources.movielens import SOURCE, U_ITEM_GENRES, stage_sample
from mlcore.validate import (
    countable_rules,
    load_suite,
    sql_counts,
    suite_rules,
    with_declared_columns,
)
from mlcore.warehouse import connect

DS = dt.date(2024, 1, 31)
T = 1_706_600_000  # 2024-01-30 07:33:20 UTC, inside the delivery


@pytest.fixture
def env(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    con = connect(tmp_path / "w.duckdb")
    yield lake, con
    con.close()


def deliver(lake: LocalLake, files: dict[str, bytes | str], ds: dt.date = DS) -> None:
    for name, data in files.items():
        raw = data.encode("utf-8") if isinstance(data, str) else data
        lake.write_bytes(f"{raw_prefix('movielens', ds)}/{name}", raw)


def rows(con, table: str, columns: str) -> list[tuple]:
    return con.execute(f"select {columns} from raw.movielens_{table} order by _line").fetchall()


def rejected(con) -> dict[tuple[str, int], str]:
    found = con.execute("select table_name, line, reason from ops.rejected_lines").fetchall()
    return {(table, line): reason for table, line, reason in found}


def _ratings_csv(lines: list[str]) -> str:
    return "userId,movieId,rating,timestamp\n" + "".join(line + "\n" for line in lines)


def test_the_registered_source_declares_every_layout():
    assert get_source("movielens") is SOURCE
    files = {t.name: [layout.file for layout in t.layouts] for t in SOURCE.tables}
    assert files == {
        "ratings": ["ratings.csv", "ratings.dat", "u.data"],
        "movies": ["movies.csv", "movies.dat", "u.item"],
    }
    assert [o.name for o in SOURCE.synth_options] == ["users", "movies", "ratings", "days"] + [
        "defects"
    ]


# ---- one delivery per layout ---------------------------------------------------------------
ML_LATEST_MOVIES = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    '73,"Misérables, Les (1995)",Drama|War\n'
    '6679,"11\'09""01 - September 11 (2002)",Drama\n'
    "114335,La cravate (1957),(no genres listed)\n"
)


def test_ml_latest_csv_files(env):
    lake, con = env
    deliver(
        lake,
        {
            "ratings.csv": _ratings_csv(["1,1,4.0,964982703", "1,73,3.5,964981247"]),
            "movies.csv": ML_LATEST_MOVIES,
            "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n",  # no table reads it
        },
    )
    report = ingest_delivery(con, lake, SOURCE, DS)
    assert {t: (x.rows, x.rejected) for t, x in report.tables.items()} == {
        "ratings": (2, 0),
        "movies": (5, 0),
    }
    assert rows(con, "ratings", "user_id, movie_id, rating, timestamp, _source_file") == [
        (1, 1, 4.0, 964982703, "raw/movielens/ds=2024-01-31/ratings.csv"),
        (1, 73, 3.5, 964981247, "raw/movielens/ds=2024-01-31/ratings.csv"),
    ]
    assert rows(con, "movies", "movie_id, title, genres") == [
        (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
        (11, "American President, The (1995)", "Comedy|Drama|Romance"),
        (73, "Misérables, Les (1995)", "Drama|War"),
        (6679, "11'09\"01 - September 11 (2002)", "Drama"),
        (114335, "La cravate (1957)", "(no genres listed)"),
    ]


def test_ml_1m_dat_files_latin1_and_unquoted(env):
    """ml-1m: `::` between fields, no quoting (a `"` and a `,` are plain text), and a
    movies.dat in Latin-1."""
    lake, con = env
    movies = (
        "73::Misérables, Les (1995)::Drama|Musical\n"
        '2559::King and I, The "Anna" (1999)::Animation|Children\'s\n'
        "3::Grumpier Old Men (1995)::Comedy|Romance\n"
    )
    deliver(
        lake,
        {
            "ratings.dat": "1::1193::5::978300760\n1::73::3::978302109\n",
            "movies.dat": movies.encode("latin-1"),
            "users.dat": "1::F::1::10::48067\n",  # no table reads it
        },
    )
    ingest_delivery(con, lake, SOURCE, DS)
    assert rows(con, "ratings", "user_id, movie_id, rating, timestamp") == [
        (1, 1193, 5.0, 978300760),
        (1, 73, 3.0, 978302109),
    ]
    assert rows(con, "movies", "movie_id, title, genres") == [
        (73, "Misérables, Les (1995)", "Drama|Musical"),
        (2559, 'King and I, The "Anna" (1999)', "Animation|Children's"),
        (3, "Grumpier Old Men (1995)", "Comedy|Romance"),
    ]
    assert {f for (f,) in rows(con, "movies", "_source_file")} == {
        "raw/movielens/ds=2024-01-31/movies.dat"
    }
    assert rejected(con) == {}


def test_ml_10m_dat_files_in_utf8(env):
    lake, con = env
    deliver(
        lake,
        {
            "ratings.dat.gz": gzip.compress(b"1::122::5::838985046\n1::185::4.5::838983525\n"),
            "movies.dat": "122::Léon: The Professional (1994)::Action\n"
            "185::Net, The (1995)::Thriller\n",
        },
    )
    ingest_delivery(con, lake, SOURCE, DS)
    assert rows(con, "ratings", "movie_id, rating") == [(122, 5.0), (185, 4.5)]
    assert rows(con, "movies", "title") == [
        ("Léon: The Professional (1994)",),
        ("Net, The (1995)",),
    ]
    assert rejected(con) == {}


def _u_item(movie_id: int, title: str, genres: set[str]) -> str:
    flags = ["1" if g in genres else "0" for g in U_ITEM_GENRES]
    url = "http://us.imdb.com/M/title-exact?Mis%E9rables,%20Les%20(1995)"
    return "|".join([str(movie_id), title, "01-Jan-1995", "", url, *flags])


def test_ml_100k_files_genre_flags_and_latin1_titles(env):
    lake, con = env
    items = "\n".join(
        [
            _u_item(1, "Toy Story (1995)", {"Animation", "Children's", "Comedy"}),
            _u_item(2, "Misérables, Les (1995)", {"Drama", "Musical"}),
            _u_item(267, "unknown", {"unknown"}),
            _u_item(5, "Copycat (1995)", set()),
            _u_item(6, "Nikita (La Femme Nikita) (1990)", {"Film-Noir", "Sci-Fi", "Thriller"}),
        ]
    )
    deliver(
        lake,
        {
            "u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
            "u.item": (items + "\n").encode("latin-1"),
            "u.user": "1|24|M|technician|85711\n",  # no table reads it
        },
    )
    report = ingest_delivery(con, lake, SOURCE, DS)
    assert report.tables["movies"].source_file.endswith("/u.item")
    assert rows(con, "ratings", "user_id, movie_id, rating, timestamp") == [
        (196, 242, 3.0, 881250949),
        (186, 302, 3.0, 891717742),
    ]
    assert rows(con, "movies", "movie_id, title, genres") == [
        (1, "Toy Story (1995)", "Animation|Children's|Comedy"),
        (2, "Misérables, Les (1995)", "Drama|Musical"),
        (267, "unknown", "(no genres listed)"),
        (5, "Copycat (1995)", "(no genres listed)"),
        (6, "Nikita (La Femme Nikita) (1990)", "Film-Noir|Sci-Fi|Thriller"),
    ]
    assert rejected(con) == {}


def test_two_layouts_of_a_table_at_once_are_refused(env):
    lake, con = env
    deliver(
        lake,
        {
            "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n",
            "u.data": "196\t242\t3\t881250949\n",
            "movies.csv": ML_LATEST_MOVIES,
        },
    )
    with pytest.raises(IngestError) as refused:
        ingest_delivery(con, lake, SOURCE, DS)
    message = str(refused.value)
    assert "ratings.csv" in message and "u.data" in message and "deliver one" in message
    assert "\n" not in message


def test_a_missing_table_names_every_layout_it_may_come_in(env):
    lake, con = env
    deliver(lake, {"movies.csv": ML_LATEST_MOVIES})
    with pytest.raises(IngestError, match=r"has no ratings.csv \(or ratings.dat, u.data\)"):
        ingest_delivery(con, lake, SOURCE, DS)


def test_a_header_with_the_declared_names_instead_of_the_files_is_drift(env):
    lake, con = env
    deliver(
        lake,
        {
            "ratings.csv": "user_id,movie_id,rating,timestamp\n1,1,4.0,964982703\n",
            "movies.csv": ML_LATEST_MOVIES,
        },
    )
    with pytest.raises(IngestError, match="lacks the declared columns 'userId', 'movieId'"):
        ingest_delivery(con, lake, SOURCE, DS)


def test_malformed_lines_are_rejected_with_their_line_numbers(env):
    lake, con = env
    deliver(
        lake,
        {
            "ratings.dat": (
                "1::1::4::978300760\n"
                "1::2::4\n"  # a field short
                "1::3::four::978300760\n"
                "1::4::5::978300760::extra\n"
                "1::5::2::978300760\n"
            ),
            "movies.dat": "1::Toy Story (1995)::Animation\nnot a movie line\n2::Jumanji (1995)::\n",
        },
    )
    report = ingest_delivery(con, lake, SOURCE, DS)
    assert (report.tables["ratings"].rows, report.tables["ratings"].rejected) == (2, 3)
    reasons = rejected(con)
    assert reasons[("ratings", 2)].startswith("MISSING COLUMNS")
    assert reasons[("ratings", 3)] == "rating: cannot read four as double"
    assert reasons[("ratings", 4)].startswith("TOO MANY COLUMNS")
    assert reasons[("movies", 2)].startswith("MISSING COLUMNS")
    assert len(reasons) == 4  # one per line, however many columns it lacks
    assert rows(con, "ratings", "movie_id, _line") == [(1, 1), (5, 5)]
    assert rows(con, "movies", "movie_id, genres, _line") == [(1, "Animation", 1), (2, None, 3)]


# ---- validation and staging ----------------------------------------------------------------
def test_quirks_are_counted_quarantined_and_staged_once(tmp_path):
    """Duplicates and a movie rated again: counted by validation, the later rating staged;
    ids -1, off-scale ratings, future timestamps and unknown movies: quarantined."""
    # a hand-made night of mostly quirks: above the share of bad rows a real night may have
    settings = Settings(
        lake=str(tmp_path / "lake"), warehouse=tmp_path / "w.duckdb", max_bad_row_share=0.9
    )
    lake = LocalLake(tmp_path / "lake")
    d1, d2 = DS - dt.timedelta(days=1), DS
    t1 = T - 86_400
    deliver(
        lake,
        {
            "ratings.csv": _ratings_csv(
                [
                    f"1,1,4.0,{t1}",
                    f"1,11,3.0,{t1}",
                    f"1,11,3.0,{t1}",  # the same line twice
                    f"2,1,2.0,{t1}",
                    f"2,1,4.5,{t1 + 60}",  # rated again a minute later: this one counts
                    f"-1,1,4.0,{t1}",
                    f"3,-1,4.0,{t1}",
                    f"3,1,5.5,{t1}",
                    f"3,11,0.0,{t1}",
                    f"3,999,4.0,{t1}",  # a movie the catalogue lacks
                    f"3,73,4.0,{t1 + 400 * 86_400}",  # in the future
                    f"4,11,4.0,{700_000_000}",  # 1992: before MovieLens
                    f"4,73,3.7,{t1}",  # not a half star: a warning, kept
                ]
            ),
            "movies.csv": ML_LATEST_MOVIES,
        },
        ds=d1,
    )
    deliver(
        lake,
        {
            "ratings.csv": _ratings_csv([f"1,1,2.0,{T}", f"1,11,5.0,{t1}"]),  # later; a tie
            "movies.csv": ML_LATEST_MOVIES,
        },
        ds=d2,
    )
    steps.ingest("movielens", d1.isoformat(), settings)
    report = steps.validate("movielens", d1.isoformat(), settings)
    steps.stage("movielens", d1.isoformat(), settings)
    ratings = report["tables"]["ratings"]
    assert ratings["failed_critical"] == []
    assert ratings["quarantined"] == 7
    assert set(ratings["warnings"]) == {
        "user_id below 1: 1 row, 1 quarantined",
        "movie_id below 1: 1 row, 1 quarantined",
        "rating off the 0.5 to 5 scale: 2 rows, 2 quarantined",
        "rating not a multiple of 0.5: 1 row",
        "timestamp before 1995 or after the delivery day: 2 rows, 2 quarantined",
        "a user rated a movie twice: 4 rows (2 surplus)",
        # movie 999, and -1 (quarantined as an id below 1: the first rule it breaks)
        "movie_id not in the delivery's movies: 2 rows, 2 quarantined",
    }
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        held = con.execute(
            "select _line, _rule from quarantine.movielens_ratings order by _line"
        ).fetchall()
        assert [line for line, _ in held] == [7, 8, 9, 10, 11, 12, 13]
        staged = con.execute(
            "select user_id, movie_id, rating, rated_at, ds from staging.movielens_ratings "
            "order by all"
        ).fetchall()
    at = dt.datetime.fromtimestamp(t1, dt.UTC).replace(tzinfo=None)
    assert staged == [
        (1, 1, 4.0, at, d1),
        (1, 11, 3.0, at, d1),
        (2, 1, 4.5, at + dt.timedelta(minutes=1), d1),
        (4, 73, 3.7, at, d1),
    ]
    # the next night: a later rating wins; at the same time, the newer delivery wins
    steps.ingest("movielens", d2.isoformat(), settings)
    steps.validate("movielens", d2.isoformat(), settings)
    steps.stage("movielens", d2.isoformat(), settings)
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        staged = con.execute(
            "select user_id, movie_id, rating, ds from staging.movielens_ratings order by all"
        ).fetchall()
        movies = con.execute("select * from staging.movielens_movies order by movie_id").fetchall()
        types = con.execute("describe staging.movielens_movies").fetchall()
    assert staged == [(1, 1, 2.0, d2), (1, 11, 5.0, d2), (2, 1, 4.5, d1), (4, 73, 3.7, d1)]
    assert movies == [
        (1, "Toy Story (1995)", 1995, ["Adventure", "Animation", "Children", "Comedy",
                                        "Fantasy"], d2),
        (11, "American President, The (1995)", 1995, ["Comedy", "Drama", "Romance"], d2),
        (73, "Misérables, Les (1995)", 1995, ["Drama", "War"], d2),
        (6679, "11'09\"01 - September 11 (2002)", 2002, ["Drama"], d2),
        (114335, "La cravate (1957)", 1957, [], d2),
    ]  # fmt: skip
    assert [(c[0], c[1]) for c in types] == [
        ("movie_id", "BIGINT"),
        ("title", "VARCHAR"),
        ("year", "INTEGER"),
        ("genres", "VARCHAR[]"),
        ("ds", "DATE"),
    ]


# ---- the real sample -----------------------------------------------------------------------
def test_the_real_ml_latest_small_sample_loads_without_a_rejected_line(tmp_path):
    data = shared_data("movielens", "ml-latest-small").parents[1]
    lake = LocalLake(tmp_path / "lake")
    ds = dt.date.fromisoformat(SOURCE.sample_ds)
    keys = stage_sample(lake, ds, data)
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["ratings.csv", "movies.csv"]
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_delivery(con, lake, SOURCE, ds)
        assert {t: (x.rows, x.rejected) for t, x in report.tables.items()} == {
            "ratings": (100_836, 0),
            "movies": (9_742, 0),
        }
        titles = con.execute(
            "select title from raw.movielens_movies where movie_id in (11, 73) order by 1"
        ).fetchall()
        assert titles == [("American President, The (1995)",), ("Misérables, Les (1995)",)]
        # the sample breaks no row-level rule (validation's own SQL, without GX's run)
        for table in SOURCE.tables:
            rules = suite_rules(with_declared_columns(load_suite("movielens", table.name), table))
            rules = countable_rules(rules, set(table.raw_columns))
            counts = sql_counts(con, SOURCE.raw_table(table.name), ds, rules)
            assert counts["quarantine_rows"] == 0, counts
            assert not any(counts["unexpected"].values()), counts["unexpected"]
