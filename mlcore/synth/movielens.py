"""Synthetic MovieLens deliveries in the ml-latest format: ``ratings.csv`` and ``movies.csv``.

A delivery is written under ``<out>/raw/movielens/ds=<ds>/``, formatted as GroupLens writes
ml-latest and ml-25m (see ``../shared/data/movielens/ml-latest-small/README.txt``): a header
row, ``userId,movieId,rating,timestamp`` ordered by user then movie, half-star ratings written
``4.0``, unix seconds; ``movieId,title,genres`` ordered by movie, UTF-8, a title quoted when it
holds a comma or a quote, genres ``|``-separated in alphabetical order.

How the data are made:

* The universe (movies, users and their tastes) depends only on ``(seed, users, movies)``.
  Movies fall in taste clusters with a genre profile each (so genres follow taste), carry a
  latent factor vector near their cluster's, a quality bias, a log-normal popularity
  (the top 1% of movies hold about 15% of the ratings, as in ml-latest-small) and a release
  year, written in the title (``Title (1995)``); ids grow with gaps, as GroupLens's do.
  Users mix a few clusters, with a latent vector near that mix, a rating bias and a
  log-normal activity.
* A user picks movies by taste (a cluster from their mix, then a movie by popularity within
  it) and rates each at most once: ``bias + movie quality + user . movie factors + noise``,
  cut into half stars at the quantiles of the real distribution (mean about 3.5, 4.0 the mode,
  half stars rarer than whole ones; some users use whole stars only). A latent factor model
  can learn it; a movie is never rated before January 1st of its release year.
* A delivery with at least 20 ratings per user (``ratings >= 20 * users``) is a *history*:
  every user rates 20 movies or more (GroupLens's guarantee), over ``days`` days, most users
  in one sitting. A smaller one is an *increment*: the ratings of each of its days, made by
  users drawn by activity, which depend only on the universe, the seed and that day. A hash
  of (user, movie) keeps histories and each day's increment on disjoint pairs (16 days of
  increments in a row never meet each other or a history), so the next night rates movies
  the user has not rated yet, without knowing what the first night held.
* ``defects=True`` adds the real files' quirks at small rates: exact duplicate lines, a user
  rating a movie again later (another rating), ids -1, ratings off the scale (0, 5.5, 6), a
  movie id absent from movies.csv, a malformed line and timestamps in the future.

Ratings are drawn and written one chunk of users at a time (vectorised numpy, serialised by
pyarrow), so memory stays bounded: ml-25m's size (162,000 users, 62,000 movies, 25M ratings)
takes a few minutes on two cores. The same arguments give byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mlcore.synth import replacing

SOURCE = "movielens"
FILES = ("ratings.csv", "movies.csv")
MIN_RATINGS = 20  # GroupLens: every selected user rated at least 20 movies
DAY_S = 86_400
CHUNK_RATINGS = 1_000_000  # ratings drawn and written at once

# ml-latest's genres with the share of movies carrying each (ml-latest-small).
GENRES = {
    "Action": 0.188,
    "Adventure": 0.13,
    "Animation": 0.063,
    "Children": 0.068,
    "Comedy": 0.386,
    "Crime": 0.123,
    "Documentary": 0.045,
    "Drama": 0.448,
    "Fantasy": 0.08,
    "Film-Noir": 0.009,
    "Horror": 0.1,
    "IMAX": 0.016,
    "Musical": 0.034,
    "Mystery": 0.059,
    "Romance": 0.164,
    "Sci-Fi": 0.101,
    "Thriller": 0.194,
    "War": 0.039,
    "Western": 0.017,
}
GENRE_NAMES = tuple(GENRES)
NO_GENRES = "(no genres listed)"
NO_GENRES_SHARE = 0.0035
# Genres per movie: 1 to 6 (ml-latest-small: 29%, 33%, 24%, 10%, 3%, 1%).
GENRE_COUNTS = np.array([0.29, 0.33, 0.24, 0.10, 0.03, 0.01])
# Release decades 1900s..2010s (ml-latest-small), the last one cut at CATALOGUE_YEAR.
DECADES = np.array([3, 7, 37, 136, 197, 279, 401, 500, 1177, 2212, 2849, 1931], dtype=float)
CATALOGUE_YEAR = 2023

# The real rating distribution (ml-latest-small), from 0.5 to 5 stars by halves.
STARS = np.arange(1, 11) / 2
STAR_SHARES = np.array(
    [0.0136, 0.0279, 0.0178, 0.0749, 0.0550, 0.1988, 0.1303, 0.2660, 0.0848, 0.1310]
)


@dataclass(frozen=True)
class TasteModel:
    """How ratings are made (the generator's ground truth, for reference)."""

    # Which movies a user rates follows their taste: a few clusters each, popularity within
    # them. Chosen so that on a held-out last-two split the personal models beat popularity
    # about as they do on ml-latest-small (EASE and ALS about 3x its Recall@10): with 12
    # broad clusters and a heavier popularity tail, popularity beat every model.
    clusters: int = 24  # taste clusters of movies
    factors: int = 8  # latent dimensions
    cluster_concentration: float = 0.15  # Dirichlet alpha of a user's cluster mix
    explore: float = 0.08  # share of a user's picks made by popularity alone
    popularity_sd: float = 1.7  # log-normal popularity of movies
    popularity_quality: float = 0.6  # better movies are more popular
    user_bias_sd: float = 0.45
    movie_bias_sd: float = 0.45
    interaction_sd: float = 0.65  # sd of user . movie
    noise_sd: float = 0.55
    # z is standardised, then shifted down: users pick movies they like, so the picked pairs
    # rate above the average pair; this brings the mean back to the real 3.5.
    selection_shift: float = 0.12
    whole_star_users: float = 0.2  # share of users who never give half stars
    activity_sd: float = 1.06  # log-normal activity (ml-latest-small: sd of log ratings)
    history_share: float = 0.75  # share of (user, movie) pairs a history may rate


MODEL = TasteModel()
# Increments cycle through INCREMENT_BUCKETS buckets of (user, movie) pairs, one per day.
PAIR_BUCKETS = 64
HISTORY_BUCKETS = int(PAIR_BUCKETS * MODEL.history_share)
INCREMENT_BUCKETS = PAIR_BUCKETS - HISTORY_BUCKETS

# Defect rates per rating line (defects=True); each kind appears at least once.
DEFECT_RATES = {
    "duplicate_line": 0.001,
    "rated_again": 0.002,
    "id_minus_one": 0.0005,
    "off_scale": 0.0005,
    "unknown_movie": 0.0005,
    "future_timestamp": 0.0003,
}


def write_delivery(
    out: str | Path,
    ds: dt.date,
    *,
    seed: int = 0,
    users: int | None = None,
    movies: int | None = None,
    ratings: int = 100_836,
    days: int = 365,
    defects: bool = False,
) -> dict[str, int]:
    """Write one MovieLens delivery to ``<out>/raw/movielens/ds=<ds>/``; return lines per file.

    Without ``users`` or ``movies`` they scale with ``ratings`` as the GroupLens releases do
    (:func:`shape_for`): ml-latest-small's 610 × 9,742 at 100,836 ratings, about ml-20m's
    138k × 28k at 20M.
    The ratings lie in ``[ds - days + 1, ds + 1)`` (UTC). ``ratings`` is their number before
    defects: a delivery may hold a little less when users run out of movies they may rate (a
    heavy user in a history, or anyone in a day's increment of a small catalogue). Each file
    is written under a temporary name and renamed when complete.
    """
    default_users, default_movies = shape_for(ratings)
    users = default_users if users is None else users
    movies = default_movies if movies is None else movies
    if users < 1 or movies < 2 or days < 1 or ratings < 0:
        raise ValueError(
            f"need users >= 1, movies >= 2, days >= 1 and ratings >= 0, got users={users}, "
            f"movies={movies}, days={days}, ratings={ratings}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    folder = Path(out) / "raw" / SOURCE / f"ds={ds.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    universe = build_universe(seed, users, movies)
    start = _epoch(ds) - (days - 1) * DAY_S
    end = _epoch(ds) + DAY_S
    if ratings >= MIN_RATINGS * users:
        chunks = _history(universe, ratings, start, end)
    else:
        chunks = _increments(universe, ratings, ds, days)
    return {
        "ratings.csv": _write_ratings(folder / "ratings.csv", universe, chunks, end, defects),
        "movies.csv": _write_movies(folder / "movies.csv", universe),
    }


# ml-latest-small: 100,836 ratings of 610 users (165 a user) over 9,742 movies; ml-20m: 20M of
# 138,493 users (144 a user) over 27,278 movies. Users grow with ratings, the catalogue slower.
_SMALL = (100_836, 610, 9_742)
_RATINGS_PER_USER = 144


def shape_for(ratings: int) -> tuple[int, int]:
    """(users, movies) of a release with ``ratings`` ratings, as GroupLens's grow."""
    n, users, movies = _SMALL
    if ratings <= n:
        return users, movies
    return (
        max(users, round(ratings / _RATINGS_PER_USER)),
        min(62_000, round(movies * (ratings / n) ** 0.2)),
    )


def _rng(seed: int, purpose: str, *extra: int) -> np.random.Generator:
    """An independent generator per purpose (and chunk or day): streams never shift others."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, zlib.crc32(purpose.encode()), *extra])
    )


def _epoch(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY_S


# --------------------------------------------------------------------------------------------
# The universe


@dataclass
class Universe:
    seed: int
    movie_id: np.ndarray  # int64, increasing
    title: list[str]
    genres: list[str]
    released: np.ndarray  # int64 unix seconds of January 1st of the release year
    movie_cluster: np.ndarray
    movie_bias: np.ndarray  # float32
    movie_factors: np.ndarray  # (movies, factors) float32
    # movies sorted by cluster, with cumulative popularity, to draw a movie within a cluster
    by_cluster: np.ndarray
    popularity_cum: np.ndarray  # float64, along by_cluster
    cluster_start: np.ndarray  # cumulative popularity before each cluster
    cluster_total: np.ndarray
    user_mix_cum: np.ndarray  # (users, clusters) float32: cumulative cluster mix of each user
    user_bias: np.ndarray
    user_factors: np.ndarray
    whole_stars: np.ndarray  # bool per user
    activity: np.ndarray  # float64 per user, sums to 1

    @property
    def users(self) -> int:
        return len(self.user_bias)

    @property
    def movies(self) -> int:
        return len(self.movie_id)


def build_universe(seed: int, users: int, movies: int) -> Universe:
    """Movies, users and their tastes: a function of (seed, users, movies) only."""
    m = MODEL
    rng = _rng(seed, "clusters")
    # Each cluster favours a few genres: its genre weights are the base shares times a boost.
    base = np.array(list(GENRES.values()))
    boost = np.exp(rng.normal(0, 1.3, size=(m.clusters, len(base))))
    genre_weights = base * boost
    centroids = rng.normal(0, 1, size=(m.clusters, m.factors))
    cluster_share = rng.dirichlet(np.full(m.clusters, 4.0))

    rng = _rng(seed, "movies")
    cluster = rng.choice(m.clusters, size=movies, p=cluster_share)
    factors = 0.8 * centroids[cluster] + rng.normal(0, 0.6, size=(movies, m.factors))
    bias = rng.normal(0, m.movie_bias_sd, size=movies)
    log_pop = m.popularity_sd * rng.standard_normal(movies) + m.popularity_quality * bias
    popularity = np.exp(log_pop - log_pop.max())
    decade = rng.choice(len(DECADES), size=movies, p=DECADES / DECADES.sum())
    year = np.minimum(1900 + 10 * decade + rng.integers(0, 10, size=movies), CATALOGUE_YEAR)
    gaps = np.where(rng.random(movies) < 0.85, 1, 1 + rng.geometric(1 / 15, size=movies))
    movie_id = np.cumsum(gaps).astype(np.int64)
    genres = _genres(rng, genre_weights[cluster])
    title = _titles(_rng(seed, "titles"), year)

    rng = _rng(seed, "users")
    mix = rng.dirichlet(np.full(m.clusters, m.cluster_concentration), size=users)
    user_factors = mix @ centroids * 0.8 + rng.normal(0, 0.5, size=(users, m.factors))
    user_bias = rng.normal(0, m.user_bias_sd, size=users)
    whole_stars = rng.random(users) < m.whole_star_users
    activity = np.exp(m.activity_sd * rng.standard_normal(users))
    # A user picks a cluster from their mix, or (exploring) by the clusters' popularity.
    order = np.argsort(cluster, kind="stable")
    cluster_total = np.bincount(cluster, weights=popularity, minlength=m.clusters)
    picks = (1 - m.explore) * mix + m.explore * cluster_total / cluster_total.sum()
    # Interaction u . v scaled to interaction_sd (both vectors have unit-ish variance per dim).
    scale = m.interaction_sd / np.sqrt(m.factors * 0.9 * 0.9)
    return Universe(
        seed=seed,
        movie_id=movie_id,
        title=title,
        genres=genres,
        released=_year_start(year),
        movie_cluster=cluster,
        movie_bias=bias.astype(np.float32),
        movie_factors=(factors * scale).astype(np.float32),
        by_cluster=order,
        popularity_cum=np.cumsum(popularity[order]),
        cluster_start=np.concatenate([[0.0], np.cumsum(cluster_total)[:-1]]),
        cluster_total=cluster_total,
        user_mix_cum=np.cumsum(picks, axis=1).astype(np.float32),
        user_bias=user_bias.astype(np.float32),
        user_factors=user_factors.astype(np.float32),
        whole_stars=whole_stars,
        activity=activity / activity.sum(),
    )


def _year_start(year: np.ndarray) -> np.ndarray:
    return (year - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def _genres(rng: np.random.Generator, weights: np.ndarray) -> list[str]:
    """Each movie's genres, alphabetical and ``|``-joined: how many from the real counts,
    which by its cluster's genre weights (Gumbel top-k: without replacement)."""
    n = len(weights)
    count = 1 + rng.choice(len(GENRE_COUNTS), size=n, p=GENRE_COUNTS)
    keys = np.log(weights) + rng.gumbel(size=weights.shape)
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    chosen = rank < count[:, None]
    none = rng.random(n) < NO_GENRES_SHARE
    if n >= 100 and not none.any():
        none[rng.integers(n)] = True  # a catalogue of any size has a movie without genres
    names = np.array(GENRE_NAMES)
    return [NO_GENRES if none[i] else "|".join(names[chosen[i]]) for i in range(n)]


# Title vocabulary: English words, names, and foreign titles (GroupLens writes the original
# title after the English one, articles moved to the end: "Misérables, Les").
# fmt: off
_ADJ = (
    "Dark", "Silent", "Last", "Lost", "Broken", "Golden", "Hidden", "Wild", "Crimson", "Little",
    "Big", "Sweet", "Cold", "Burning", "Endless", "Secret", "Strange", "Blue", "Forgotten",
    "Quiet", "Bright", "Savage", "Lonely", "Final", "Midnight", "Perfect", "Dead", "Eternal",
    "Wicked", "Fallen", "Hollow", "Iron", "Velvet", "Electric", "Distant", "Northern", "Sacred",
    "Restless",
)
_NOUN = (
    "Road", "Harbor", "Night", "City", "River", "Garden", "Kingdom", "Mirror", "Storm", "Heart",
    "Shadow", "Summer", "Winter", "Island", "House", "Window", "Train", "Letter", "Game",
    "Machine", "Promise", "Horizon", "Empire", "Secret", "Dream", "Star", "Ocean", "Bridge",
    "Hunter", "Stranger", "Witness", "Journey", "Escape", "Affair", "Legacy", "Frontier", "Voyage",
    "Echo", "Circus", "Ghost", "Saint", "Prophet", "Detective", "Soldier", "Dancer", "Thief",
    "Doctor", "Lady", "Gentleman", "Wolf",
)
_NAME = (
    "Jack", "Mary", "Charlie", "Rosie", "Max", "Harry", "Annie", "Frank", "Lucy", "Billy", "Grace",
    "Sam", "Dorothy", "Eddie", "Joe", "Ruby", "Ben", "Lola", "Vincent", "Ada", "Oscar", "Hazel",
    "Walter", "Iris", "Leo", "Stella", "Hugo", "Nell", "Felix", "Mabel",
)
_SUBTITLE = (
    "The Beginning", "The Return", "Reckoning", "Resurrection", "Part II", "The Final Chapter",
    "Revenge", "Homecoming", "A New Hope", "Origins", "The Last Stand", "Into the Night",
)
_FOREIGN = (
    "Misérables, Les", "Fabuleux destin d'Amélie Poulain, Le", "Himmel über Berlin, Der",
    "Cité des enfants perdus, La", "Niña de tus ojos, La", "Smultronstället", "Tôkyô monogatari",
    "Ça commence aujourd'hui", "Double vie de Véronique, La", "Å köldum klaka", "Øjeblikket",
    "Huitième jour, Le", "Kôkaku kidôtai", "Lola rennt", "¡Átame!", "Sommaren med Monika",
    "Mädchen in Uniform", "Été inoubliable, Un", "Señora Acero", "Nyû Yôku no koppu", "Zhù fú",
    "Jeux interdits", "Vie est un long fleuve tranquille, La", "Tystnaden", "Bokkô",
    "Dernier métro, Le",
)
# fmt: on
# template -> share of titles (about 20% hold a comma, 3% non-ASCII, 1% a double quote)
_TEMPLATES = {
    "{adj} {noun}": 0.30,
    "{noun}": 0.10,
    "{noun}, The": 0.13,
    "{adj} {noun}, A": 0.03,
    "{noun} of the {noun2}": 0.10,
    "{name}'s {noun}": 0.08,
    "{name} and {name2}": 0.05,
    "{adj} {noun} 2": 0.04,
    "{noun}: {subtitle}": 0.06,
    "{adj} {noun}, Part {part}": 0.02,
    "{noun} ({foreign})": 0.025,
    "{foreign}": 0.01,
    "{noun}, The (a.k.a. {adj} {noun2})": 0.02,
    '"{adj} {noun}" {noun2}': 0.006,
    '{name} "{adj}" {noun}': 0.004,
    "{adj} {noun} & {noun2}": 0.035,
    "{noun} in {name}'s {noun2}": 0.035,
}


def _titles(rng: np.random.Generator, year: np.ndarray) -> list[str]:
    n = len(year)
    names = list(_TEMPLATES)
    shares = np.array(list(_TEMPLATES.values()))
    template = rng.choice(len(names), size=n, p=shares / shares.sum())
    if n >= 100:
        # every catalogue of some size shows each quirk: a comma, a quote, a foreign title
        for i, t in zip(rng.choice(n, 3, replace=False), (2, 13, 10), strict=True):
            template[i] = t
    picks = {
        "adj": rng.integers(len(_ADJ), size=n),
        "noun": rng.integers(len(_NOUN), size=n),
        "noun2": rng.integers(len(_NOUN), size=n),
        "name": rng.integers(len(_NAME), size=n),
        "name2": rng.integers(len(_NAME), size=n),
        "subtitle": rng.integers(len(_SUBTITLE), size=n),
        "foreign": rng.integers(len(_FOREIGN), size=n),
        "part": rng.integers(2, 7, size=n),
    }
    out = []
    for i in range(n):
        words = {
            "adj": _ADJ[picks["adj"][i]],
            "noun": _NOUN[picks["noun"][i]],
            "noun2": _NOUN[picks["noun2"][i]],
            "name": _NAME[picks["name"][i]],
            "name2": _NAME[picks["name2"][i]],
            "subtitle": _SUBTITLE[picks["subtitle"][i]],
            "foreign": _FOREIGN[picks["foreign"][i]],
            "part": picks["part"][i],
        }
        out.append(f"{names[template[i]].format(**words)} ({year[i]})")
    return out


# --------------------------------------------------------------------------------------------
# Picking movies


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread hash of uint64 values."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _bucket(universe: Universe, user: np.ndarray, movie: np.ndarray) -> np.ndarray:
    """The pair bucket (0..PAIR_BUCKETS-1) of (user, movie) indices: histories rate pairs of
    the first HISTORY_BUCKETS, each increment day pairs of one other bucket."""
    key = user.astype(np.uint64) * np.uint64(universe.movies) + movie.astype(np.uint64)
    salt = np.uint64(_mix(np.array([universe.seed], dtype=np.uint64))[0])
    return (_mix(key ^ salt) % np.uint64(PAIR_BUCKETS)).astype(np.int64)


def _draw(
    universe: Universe, rng: np.random.Generator, user: np.ndarray, uniform: float
) -> np.ndarray:
    """A movie index per entry of ``user``: a cluster from the user's mix, then a movie by
    popularity within it; a share ``uniform`` of the draws takes any movie (used to fill the
    lists of users who have exhausted the movies they like)."""
    r = rng.random(len(user), dtype=np.float32)
    cluster = np.zeros(len(user), dtype=np.int64)
    for c in range(universe.user_mix_cum.shape[1] - 1):
        cluster += r >= universe.user_mix_cum[user, c]
    at = universe.cluster_start[cluster] + rng.random(len(user)) * universe.cluster_total[cluster]
    pos = np.searchsorted(universe.popularity_cum, at, side="right")
    movie = universe.by_cluster[np.minimum(pos, universe.movies - 1)]
    if uniform > 0:
        flat = rng.random(len(user)) < uniform
        movie[flat] = rng.integers(universe.movies, size=int(flat.sum()))
    return movie


def _pick(
    universe: Universe,
    rng: np.random.Generator,
    users: np.ndarray,
    counts: np.ndarray,
    eligible,
    oversample: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(user, movie) index pairs: ``counts[k]`` distinct movies for ``users[k]`` (fewer when
    the user runs out of eligible movies), each pair passing ``eligible(user, movie)``."""
    got_user, got_movie = [], []
    need = counts.astype(np.int64).copy()
    taken = np.empty(0, dtype=np.int64)
    for attempt in range(8):
        want = need > 0
        if not want.any():
            break
        who, many = users[want], need[want]
        user = np.repeat(who, np.ceil(many * oversample).astype(np.int64) + 4)
        movie = _draw(universe, rng, user, uniform=min(1.0, 0.25 * attempt))
        ok = eligible(user, movie)
        user, movie = user[ok], movie[ok]
        key = user.astype(np.int64) * universe.movies + movie
        keep = _first_occurrences(key) & ~_in_sorted(key, taken)
        user, movie, key = user[keep], movie[keep], key[keep]
        # the first `need` draws of each user, in draw order (draws are grouped by user)
        rank = np.arange(len(user)) - np.searchsorted(user, user, side="left")
        lookup = np.zeros(universe.users, dtype=np.int64)
        lookup[users] = need
        keep = rank < lookup[user]
        user, movie, key = user[keep], movie[keep], key[keep]
        got_user.append(user)
        got_movie.append(movie)
        taken = np.sort(np.concatenate([taken, key]))
        np.subtract.at(lookup, user, 1)
        need = lookup[users]
    user, movie = np.concatenate(got_user), np.concatenate(got_movie)
    order = np.argsort(user, kind="stable")  # by user, each in draw order
    return user[order], movie[order]


def _first_occurrences(key: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value of ``key`` (a stable sort: numpy's hashing
    np.unique is several times slower on millions of int64)."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = np.zeros(len(key), dtype=bool)
    keep[order[first]] = True
    return keep


def _in_sorted(key: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """np.isin(key, ordered) for a sorted ``ordered``, by binary search (np.isin hashes)."""
    if not len(ordered):
        return np.zeros(len(key), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, key), len(ordered) - 1)
    return ordered[at] == key


def _stars(
    universe: Universe, rng: np.random.Generator, user: np.ndarray, movie: np.ndarray
) -> np.ndarray:
    """The rating (index 0..9 into STARS) each user gives each movie."""
    dot = np.zeros(len(user), dtype=np.float32)
    for k in range(universe.user_factors.shape[1]):
        dot += universe.user_factors[user, k] * universe.movie_factors[movie, k]
    m = MODEL
    noise = rng.normal(0, m.noise_sd, size=len(user)).astype(np.float32)
    z = universe.user_bias[user] + universe.movie_bias[movie] + dot + noise
    sd = np.sqrt(m.user_bias_sd**2 + m.movie_bias_sd**2 + m.interaction_sd**2 + m.noise_sd**2)
    star = np.searchsorted(THRESHOLDS, z / sd - m.selection_shift)
    # Users who give whole stars only (odd indices) round a half star up or down; 0.5 -> 1.
    half = universe.whole_stars[user] & (star % 2 == 0)
    star[half] += np.where(rng.random(int(half.sum())) < 0.5, -1, 1)
    return np.abs(star)


# Cut points of a standard normal score into half stars, at the real shares.
THRESHOLDS = np.array(
    [NormalDist().inv_cdf(p) for p in np.cumsum(STAR_SHARES)[:-1]], dtype=np.float32
)


# --------------------------------------------------------------------------------------------
# Histories and increments: chunks of (user, movie, star, timestamp), by user then movie


@dataclass
class Chunk:
    user: np.ndarray  # user index
    movie: np.ndarray  # movie index
    star: np.ndarray  # 0..9 (STARS)
    ts: np.ndarray  # int64 unix seconds
    key: tuple[int, ...]  # what the chunk's randomness depends on (its defects' too)


def _history(universe: Universe, ratings: int, start: int, end: int) -> Iterator[Chunk]:
    """Every user's ratings: MIN_RATINGS each, the rest by activity, over [start, end)."""
    rng = _rng(universe.seed, "history-counts", ratings, start, end)
    cap = max(MIN_RATINGS, int(0.5 * MODEL.history_share * _released_by(universe, end)))
    counts = np.full(universe.users, MIN_RATINGS, dtype=np.int64)
    extra = ratings - counts.sum()
    for _ in range(4):  # heavy users are capped; their surplus goes to the others
        room = counts < cap
        if extra <= 0 or not room.any():
            break
        share = np.where(room, universe.activity, 0)
        counts += rng.multinomial(extra, share / share.sum())
        extra = int(np.maximum(counts - cap, 0).sum())
        counts = np.minimum(counts, cap)
    # chunks of whole users, about CHUNK_RATINGS ratings each
    chunk_of = (np.cumsum(counts) - 1) // CHUNK_RATINGS
    edges = [0, *(np.flatnonzero(np.diff(chunk_of)) + 1).tolist(), universe.users]
    for index, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        key = (ratings, start, end, index)
        rng = _rng(universe.seed, "history", *key)
        users = np.arange(lo, hi)

        def eligible(user, movie):
            history = _bucket(universe, user, movie) < HISTORY_BUCKETS
            return history & (universe.released[movie] < end)

        user, movie = _pick(universe, rng, users, counts[lo:hi], eligible, oversample=1.5)
        ts = _history_times(universe, rng, user, movie, start, end)
        yield _chunk(universe, rng, user, movie, ts, key)


def _released_by(universe: Universe, end: int) -> int:
    return int((universe.released < end).sum())


def _history_times(universe, rng, user, movie, start: int, end: int) -> np.ndarray:
    """Most users rate in one sitting (GroupLens's median user: about an hour); the others
    come back over the rest of the window."""
    n_users = universe.users
    first = start + (rng.random(n_users) * (end - start)).astype(np.int64)
    sitting = rng.random(n_users) < 0.55
    span = np.where(
        sitting,
        rng.exponential(2400, size=n_users),
        rng.random(n_users) * (end - first),
    ).astype(np.int64)
    ts = first[user] + (rng.random(len(user)) * span[user]).astype(np.int64)
    return _after_release(universe, rng, movie, np.minimum(ts, end - 1), end)


def _after_release(universe, rng, movie, ts: np.ndarray, end: int) -> np.ndarray:
    """Move a rating made before its movie's release to a time after it, before ``end``."""
    released = universe.released[movie]
    early = ts < released
    later = released[early] + (rng.random(int(early.sum())) * (end - released[early]))
    ts[early] = later.astype(np.int64)
    return ts


def _increments(universe: Universe, ratings: int, ds: dt.date, days: int) -> Iterator[Chunk]:
    """The ratings of each day of the window: ``ratings / days`` a day, by active users."""
    base, rest = divmod(ratings, days)
    for i in range(days):
        day = ds - dt.timedelta(days=days - 1 - i)
        n = base + (1 if i >= days - rest else 0)
        if n == 0:
            continue
        key = (day.toordinal(), n)
        rng = _rng(universe.seed, "day", *key)
        start, end = _epoch(day), _epoch(day) + DAY_S
        bucket = HISTORY_BUCKETS + day.toordinal() % INCREMENT_BUCKETS
        who = np.searchsorted(np.cumsum(universe.activity), rng.random(n) * (1 - 1e-12))
        users, counts = np.unique(np.minimum(who, universe.users - 1), return_counts=True)

        def eligible(user, movie, bucket=bucket, end=end):
            return (_bucket(universe, user, movie) == bucket) & (universe.released[movie] < end)

        user, movie = _pick(universe, rng, users, counts, eligible, oversample=1.5 * PAIR_BUCKETS)
        # one sitting each: a start in the day, then a rating every minute or two
        first = start + (rng.random(universe.users) * DAY_S).astype(np.int64)
        rank = np.arange(len(user)) - np.searchsorted(user, user, side="left")
        steps = rng.exponential(90, size=len(user)).astype(np.int64)
        ts = np.minimum(first[user] + rank * 60 + steps, end - 1)
        ts = _after_release(universe, rng, movie, ts, end)
        yield _chunk(universe, rng, user, movie, ts, key)


def _chunk(universe, rng, user, movie, ts, key) -> Chunk:
    star = _stars(universe, rng, user, movie)
    order = np.lexsort((universe.movie_id[movie], user))
    return Chunk(user[order], movie[order], star[order], ts[order], key)


# --------------------------------------------------------------------------------------------
# Writing


def _write_movies(path: Path, universe: Universe) -> int:
    """movies.csv as GroupLens writes it: quoted only where needed, UTF-8, ``\\n`` ends."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    writer.writerows(zip(universe.movie_id.tolist(), universe.title, universe.genres, strict=True))
    with replacing(path) as tmp:
        tmp.write_bytes(buf.getvalue().encode("utf-8"))
    return universe.movies


# Ratings as GroupLens writes them: STARS, then the off-scale values injected as defects.
_STAR_TEXT = pa.array([f"{s:.1f}" for s in STARS] + ["0.0", "5.5", "6.0"])
OFF_SCALE = np.arange(len(STARS), len(STARS) + 3)


def _write_ratings(path: Path, universe: Universe, chunks, end: int, defects: bool) -> int:
    """ratings.csv, one chunk at a time; returns its lines (without the header)."""
    lines = 0
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        for number, chunk in enumerate(chunks):
            columns = (chunk.user + 1, universe.movie_id[chunk.movie], chunk.star, chunk.ts)
            malformed = None
            if defects and len(chunk.user):
                columns = _with_defects(universe, columns, chunk.key, end)
                if number == 0:  # one malformed line a delivery, in its first chunk
                    malformed = _malformed_line(universe, columns, chunk.key)
            user, movie, star, ts = columns
            table = pa.table(
                {
                    "userId": pa.array(user, type=pa.int64()),
                    "movieId": pa.array(movie, type=pa.int64()),
                    "rating": _STAR_TEXT.take(pa.array(star)),
                    "timestamp": pa.array(ts, type=pa.int64()),
                }
            )
            at = len(table) if malformed is None else malformed[0]
            for i, part in enumerate((table[:at], table[at:])):
                if i and malformed is not None:
                    f.write(malformed[1])
                if len(part):
                    buf = pa.BufferOutputStream()
                    pa_csv.write_csv(part, buf, options)
                    f.write(buf.getvalue().to_pybytes())
            lines += len(table) + (malformed is not None)
    return lines


def _rows(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Distinct rows for one kind of defect: about ``n * rate``, at least one."""
    return np.sort(rng.choice(n, size=min(n, max(1, round(n * rate))), replace=False))


def _with_defects(universe: Universe, columns: tuple, key: tuple, end: int) -> tuple:
    """(user id, movie id, star, timestamp) of a chunk with the real files' quirks."""
    rng = _rng(universe.seed, "defects", *key)
    user, movie, star, ts = (c.copy() for c in columns)
    n = len(user)
    # in place: ids -1, off-scale ratings, unknown movies, timestamps in the future
    rows = _rows(rng, n, DEFECT_RATES["id_minus_one"])
    on_user = rng.random(len(rows)) < 0.5
    user[rows[on_user]] = -1
    movie[rows[~on_user]] = -1
    rows = _rows(rng, n, DEFECT_RATES["off_scale"])
    star[rows] = rng.choice(OFF_SCALE, size=len(rows))
    rows = _rows(rng, n, DEFECT_RATES["unknown_movie"])
    movie[rows] = universe.movie_id[-1] + 1 + rng.integers(0, 1000, size=len(rows))
    rows = _rows(rng, n, DEFECT_RATES["future_timestamp"])
    ts[rows] = end + rng.integers(DAY_S, 400 * DAY_S, size=len(rows))
    # added after their original line: exact duplicates, and a movie rated again later
    dup = _rows(rng, n, DEFECT_RATES["duplicate_line"])
    again = _rows(rng, n, DEFECT_RATES["rated_again"])
    again_star = (star[again] + rng.integers(1, len(STARS), size=len(again))) % len(STARS)
    room = np.maximum(end - 1 - ts[again], 0)
    again_ts = ts[again] + 1 + (rng.random(len(again)) * room).astype(np.int64)
    source = np.concatenate([np.arange(n), dup, again])
    order = np.argsort(np.concatenate([np.arange(n), dup + 0.25, again + 0.5]), kind="stable")
    return (
        user[source][order],
        movie[source][order],
        np.concatenate([star, star[dup], again_star])[order],
        np.concatenate([ts, ts[dup], np.minimum(again_ts, max(end - 1, 0))])[order],
    )


def _malformed_line(universe: Universe, columns: tuple, key: tuple) -> tuple[int, bytes]:
    """(row, line): a line with a field missing, to write before that row."""
    rng = _rng(universe.seed, "malformed", *key)
    at = int(rng.integers(0, len(columns[0]) + 1))
    user, movie = columns[0][min(at, len(columns[0]) - 1)], columns[1][0]
    return at, f"{user},{movie},4.0\n".encode()
