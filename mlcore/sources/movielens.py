"""movielens: GroupLens's MovieLens ratings and movies, in any of the formats it ships.

A delivery holds one ratings file and one movies file, in one of these layouts (told apart by
their file names, each plain or gzipped):

| layout | ratings | movies |
|---|---|---|
| ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m | `ratings.csv` (header `userId,movieId,rating,timestamp`) | `movies.csv` (header `movieId,title,genres`, UTF-8, quoted) |
| ml-1m, ml-10m | `ratings.dat` (`UserID::MovieID::Rating::Timestamp`) | `movies.dat` (`MovieID::Title::Genres`, no quoting; Latin-1 in ml-1m, UTF-8 in ml-10m) |
| ml-100k | `u.data` (tab-separated) | `u.item` (`|`-separated, Latin-1, 19 genre flags) |

Whatever the layout, ``raw.movielens_ratings`` holds user_id, movie_id, rating (0.5 to 5 by
halves; whole stars before ml-latest) and timestamp (unix seconds), and
``raw.movielens_movies`` movie_id, title and genres (``|``-separated, as GroupLens writes
them; u.item's flags are turned into that text). Other files of a release (links.csv,
tags.csv, users.dat, u.user, ...) are ignored with a warning. Staged by ``sql/movielens/``
into ``staging.movielens_*`` for every pipeline that reads it (movielens_recall). Real sample:
``../shared/data/movielens/ml-latest-small``.
"""  # noqa: E501 - the table of layouts reads better unwrapped

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlcore.sources import FileVariant, Option, SourceSpec, TableSpec

NAME = "movielens"
SAMPLE = "ml-latest-small"
SAMPLE_FILES = ("ratings.csv", "movies.csv")  # links.csv and tags.csv: no table reads them

# ml-100k's u.item: id, title, dates and URL, then one 0/1 flag per genre, in this order.
U_ITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
_FLAGS = tuple("is_" + g.lower().replace("'", "").replace("-", "_") for g in U_ITEM_GENRES)
U_ITEM_COLUMNS = ("movie_id", "movie_title", "release_date", "video_release_date", "imdb_url")
U_ITEM_COLUMNS += _FLAGS
NO_GENRES = "(no genres listed)"
# The genres whose flag is 1, joined as ml-latest writes them; none (or only "unknown"): none.
_U_ITEM_GENRES_SQL = "coalesce(nullif(concat_ws('|', {}), ''), '{}')".format(
    ", ".join(
        f"""case when "{flag}" = '1' then '{genre.replace("'", "''")}' end"""
        for flag, genre in zip(_FLAGS[1:], U_ITEM_GENRES[1:], strict=True)
    ),
    NO_GENRES,
)

RATINGS = TableSpec(
    "ratings",
    "ratings.csv",
    {"user_id": "bigint", "movie_id": "bigint", "rating": "double", "timestamp": "bigint"},
    key=("user_id", "movie_id"),
    # a delivery holds the ratings since the last one (the first may hold all history)
    kind="event",
    format="csv",
    csv_columns=("userId", "movieId", "rating", "timestamp"),
    variants=(
        FileVariant("ratings.dat", header=False, delimiter="::", quote="", doc="ml-1m, ml-10m"),
        FileVariant("u.data", header=False, delimiter="\t", quote="", doc="ml-100k"),
    ),
)
MOVIES = TableSpec(
    "movies",
    "movies.csv",
    {"movie_id": "bigint", "title": "varchar", "genres": "varchar"},
    key=("movie_id",),
    format="csv",
    csv_columns=("movieId", "title", "genres"),
    variants=(
        FileVariant(
            "movies.dat",
            header=False,
            delimiter="::",
            quote="",  # titles hold " and , as plain characters
            encoding="utf-8|latin-1",  # ml-1m: Latin-1; ml-10m: UTF-8
            doc="ml-1m, ml-10m",
        ),
        FileVariant(
            "u.item",
            header=False,
            delimiter="|",
            quote="",
            encoding="latin-1",
            columns=U_ITEM_COLUMNS,
            derive={"genres": _U_ITEM_GENRES_SQL},
            doc="ml-100k",
        ),
    ),
)

SOURCE = SourceSpec(
    name=NAME,
    doc="MovieLens (GroupLens): movie ratings since the last delivery and the movie catalogue, "
    "as ml-latest/ml-25m (`ratings.csv`, `movies.csv`), ml-1m/ml-10m (`ratings.dat`, "
    "`movies.dat`) or ml-100k (`u.data`, `u.item`) files.",
    tables=(RATINGS, MOVIES),
    synth="mlcore.synth.movielens:write_delivery",
    synth_options=(
        Option(
            "users", int, None, "users (every one rates 20+ in a history); default: by --ratings"
        ),
        Option("movies", int, None, "movies in the catalogue; default: by --ratings"),
        Option("ratings", int, 100_836, "ratings in the delivery (< 20 a user: an increment)"),
        Option("days", int, 365, "days of ratings up to --ds"),
        Option("defects", bool, False, "inject the real files' quirks"),
    ),
    sample="mlcore.sources.movielens:stage_sample",
    # ml-latest-small's last rating is on 2018-09-24: delivered the next day
    sample_ds="2018-09-25",
    # A history of four months, then one day of new ratings; the real quirks both nights.
    # (A catalogue several times the ratings a user makes, as in the real releases: with 400
    # movies for 80 ratings a user, tastes are exhausted and popularity beats every model.)
    test_nights=(
        {"users": 200, "movies": 1_500, "ratings": 8_000, "days": 120, "defects": True},
        {"users": 200, "movies": 1_500, "ratings": 150, "days": 1, "defects": True},
    ),
    demo_nights=(
        {"users": 600, "movies": 1_500, "ratings": 60_000, "days": 180, "defects": True},
        {"users": 600, "movies": 1_500, "ratings": 400, "days": 1, "defects": True},
    ),
)


def stage_sample(lake, ds: dt.date, data: Path) -> list[str]:
    """Put ml-latest-small's ratings.csv and movies.csv (``data/movielens/ml-latest-small``)
    in the lake as the delivery ``ds``."""
    from mlcore.lake import raw_prefix

    folder = Path(data) / NAME / SAMPLE
    files = [folder / name for name in SAMPLE_FILES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"movielens sample incomplete: missing {', '.join(missing)}")
    keys = []
    for f in files:
        key = f"{raw_prefix(NAME, ds)}/{f.name}"
        lake.put_file(f, key)
        keys.append(lake.url(key))
    return keys
