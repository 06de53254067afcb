"""Synthetic deliveries of the "Pozytywka" music service (the `music_skip` pipeline's source).

A delivery is five JSONL files under ``<out>/raw/pozytywka/ds=<ds>/`` with the field names, JSON
types and value formats of the real v1 delivery (see ``../shared/data/README.md``):
``artists``, ``tracks``, ``users``, ``sessions`` and ``track_storage``.

How the data are made:

* The world (genres, artists, tracks, users and their tastes) depends only on ``(seed, users,
  tracks)``; the events of one calendar day depend only on the world, the seed and that day. So a
  delivery for the next day with ``days=1`` continues the same world, and its events are the ones a
  longer delivery holds for that day.
* A session is a run of PLAY events. After a PLAY the user listens in full (the next PLAY comes
  after the track's duration) or skips (a SKIP for the same track a few seconds to minutes later,
  at the same instant as the next PLAY). LIKEs happen during a play, more often on full listens;
  non-premium users hear an ADVERTISEMENT between tracks and sometimes BUY_PREMIUM after it.
* Whether a play is skipped follows a logistic model (`SKIP_MODEL`) of what is known before the
  play: genre overlap between the user's favourites and the artist, the user's skip propensity, the
  track's popularity and appeal, the position in the session, a skip just before, the hour of day
  and an ad just before. It is calibrated to the real 34% skip rate, with enough noise that a good
  model reaches about 80% accuracy and a ROC-AUC near 0.85, not 100%.
* ``defects=True`` adds the defects of the real v1 delivery at their real rates.

Sessions are simulated and written one day at a time, vectorised over users, and serialised with
Arrow string kernels: 30M events (users=100_000, days=90) take under a minute and about 0.5 GB.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcore.synth import replacing

SOURCE = "pozytywka"
FILES = ("artists.jsonl", "tracks.jsonl", "users.jsonl", "sessions.jsonl", "track_storage.jsonl")
FIRST_USER_ID = 101  # the real delivery numbers its users from 101
MAX_TRACKS = 21_608  # the size of the real catalogue

DAY_MS = 86_400_000
SESSION_CHUNK_ROWS = 1_000_000  # events serialised at once
EVENT_TYPES = ("PLAY", "SKIP", "LIKE", "ADVERTISEMENT", "BUY_PREMIUM")
PLAY, SKIP, LIKE, AD, BUY = range(5)

# Behaviour of the service, calibrated so that an average user makes about 3.3 events a day
# (users=100_000, days=90 gives about 30M events).
SESSIONS_PER_DAY = 0.61  # for a user of average activity
WEEKEND_FACTOR = 1.15
CONTINUE_P = 0.74  # chance of another track after one played in full ...
CONTINUE_AFTER_SKIP_P = 0.66  # ... and after a skip (skippers leave sooner)
MAX_PLAYS_PER_SESSION = 60
AD_P = 0.3  # chance of an ad between two tracks for a non-premium user
BUY_AFTER_AD_P = 0.06
PREMIUM_SHARE = 0.55
SESSION_GAP_S = (20 * 60, 3 * 3600)  # between two sessions of a user: minimum + exponential mean
# When a user's first session of the day starts, by hour (UTC): quiet nights, busy evenings.
DIURNAL = np.array(
    [2, 1.5, 1, 1, 1, 1.5, 3, 5, 6, 5, 4.5, 4.5, 5, 5, 4.5, 4.5, 5, 6, 7, 7.5, 7, 6, 4.5, 3]
)


@dataclass(frozen=True)
class SkipModel:
    """Logistic model of P(skip) for one play: the generator's ground truth, for reference."""

    intercept: float = -0.53
    user_sd: float = 1.4  # per-user skip propensity ~ N(0, user_sd)
    track_appeal_sd: float = 0.5  # per-track appeal beyond popularity ~ N(0, track_appeal_sd)
    overlap: tuple[float, float, float] = (0.0, -1.8, -2.5)  # 0, 1, 2+ shared genres
    popularity: float = -0.035  # per popularity point above the catalogue's play-weighted mean
    position: float = 0.45  # times log(position in session)
    previous_skipped: float = 1.1
    ad_before: float = 1.0
    long_track: float = 0.35  # per minute beyond 5 minutes, up to 3 minutes
    # Hour of day (UTC): restless nights and morning commutes, patient evenings.
    hour: tuple[float, ...] = (
        *(0.5, 0.5, 0.55, 0.55, 0.45, 0.3, 0.1, 0.25, 0.3, 0.2, 0.0, 0.0),
        *(-0.05, -0.05, 0.0, 0.05, 0.15, 0.2, 0.0, -0.2, -0.3, -0.3, -0.15, 0.2),
    )


SKIP_MODEL = SkipModel()

# Defect rates of the real v1 delivery (affected rows / rows there).
DEFECT_RATES = {
    "artist_id_minus_one": 494 / 10_657,
    "artist_genres_null": 544 / 10_657,
    "artist_duplicate_name": 14 / 10_657,
    "session_event_type_null": 167 / 3_626,
    "session_track_id_null": 163 / 3_626,
    "session_user_id_null": 195 / 3_626,
    "user_favourite_genres_null": 5 / 50,
    "user_premium_null": 1 / 50,
    "track_duplicate": 185 / 21_608,
}


def write_delivery(
    out: str | Path,
    ds: dt.date,
    *,
    users: int = 200,
    days: int = 30,
    seed: int = 0,
    defects: bool = False,
    tracks: int | None = None,
) -> dict[str, int]:
    """Write one Pozytywka delivery to <out>/raw/pozytywka/ds=<ds ISO>/; return rows per file.

    Sessions cover the days ``ds - days + 1`` to ``ds`` inclusive. ``tracks`` defaults to
    ``default_track_count(users)``; with ``defects=True`` the tracks and track_storage files hold
    about 0.9% more rows (duplicates under new ids). The result maps each file name
    (``"sessions.jsonl"``, ...) to its number of rows. Each file is written under a temporary
    name and renamed when complete.
    """
    if users < 1 or days < 1:
        raise ValueError(f"users and days must be >= 1, got users={users}, days={days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    n_tracks = default_track_count(users) if tracks is None else tracks
    if n_tracks < 2:
        raise ValueError(f"tracks must be >= 2, got {n_tracks}")
    folder = Path(out) / "raw" / SOURCE / f"ds={ds.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)

    world = build_world(seed, users, n_tracks)
    source, track_ids = _catalog_rows(world, defects)
    first_day = ds - dt.timedelta(days=days - 1)
    counts = {
        "artists.jsonl": _write_json_lines(
            folder / "artists.jsonl", _artist_records(world, defects)
        ),
        "tracks.jsonl": _write_json_lines(
            folder / "tracks.jsonl", _track_records(world, source, track_ids)
        ),
        "users.jsonl": _write_json_lines(folder / "users.jsonl", _user_records(world, defects)),
        "sessions.jsonl": _write_sessions(
            folder / "sessions.jsonl",
            world,
            [first_day + dt.timedelta(days=i) for i in range(days)],
            defects=defects,
        ),
        "track_storage.jsonl": _write_json_lines(
            folder / "track_storage.jsonl", _storage_records(world, source, track_ids)
        ),
    }
    return counts


def default_track_count(users: int) -> int:
    """Catalogue size for a user base: 20 tracks a user, between 2,000 and the real 21,608."""
    return max(2_000, min(MAX_TRACKS, users * 20))


def _rng(seed: int, purpose: str, *extra: int) -> np.random.Generator:
    """An independent generator per purpose (and day), so that streams never shift one another."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, zlib.crc32(purpose.encode()), *extra])
    )


# --------------------------------------------------------------------------------------------
# Vocabulary. Genre families list their head genres first (most common first); a long tail of
# regional genres ("polish rock") is added to each family, as in the real catalogue.

GENRE_FAMILIES: dict[str, tuple[float, str, tuple[str, ...]]] = {
    # family: (share of artists, stem for the regional tail, head genres)
    "rock": (0.17, "rock", (
        "rock", "classic rock", "album rock", "soft rock", "folk rock", "hard rock", "art rock",
        "pop rock", "blues rock", "alternative rock", "roots rock", "psychedelic rock",
        "indie rock", "progressive rock", "garage rock", "southern rock", "heartland rock",
        "punk", "post-punk", "grunge",
    )),
    "pop": (0.15, "pop", (
        "pop", "dance pop", "mellow gold", "adult standards", "europop", "new wave pop",
        "brill building pop", "new romantic", "new wave", "classic swedish pop", "synthpop",
        "electropop", "indie pop", "teen pop", "chamber pop", "bubblegum pop",
    )),
    "latin": (0.12, "latin", (
        "latin", "rock en espanol", "tropical", "latin rock", "latin pop", "ranchera",
        "latin alternative", "argentine rock", "rock nacional", "mpb", "bolero", "salsa",
        "cumbia", "reggaeton", "bachata", "bossa nova", "mariachi", "samba",
    )),
    "soul": (0.07, "soul", (
        "soul", "quiet storm", "funk", "motown", "urban contemporary", "r&b", "disco",
        "classic soul", "neo soul", "northern soul", "new jack swing", "southern soul",
    )),
    "jazz": (0.06, "jazz", (
        "jazz", "cool jazz", "lounge", "vocal jazz", "bebop", "hard bop", "swing", "big band",
        "easy listening", "jazz fusion", "smooth jazz",
    )),
    "hip hop": (0.06, "hip hop", (
        "hip hop", "rap", "gangster rap", "east coast hip hop", "trap", "southern hip hop",
        "conscious hip hop", "old school hip hop", "west coast rap", "pop rap",
        "underground hip hop",
    )),
    "electronic": (0.05, "electronic", (
        "edm", "house", "electro house", "deep house", "techno", "trance", "big room",
        "drum and bass", "dubstep", "downtempo", "trip hop", "ambient", "eurodance",
    )),
    "metal": (0.04, "metal", (
        "metal", "alternative metal", "heavy metal", "nu metal", "thrash metal", "glam metal",
        "death metal", "power metal", "speed metal", "metalcore", "symphonic metal",
    )),
    "country": (0.05, "country", (
        "country", "country rock", "classic country", "outlaw country", "contemporary country",
        "bluegrass", "americana", "country road", "honky tonk",
    )),
    "folk": (0.05, "folk", (
        "folk", "singer-songwriter", "indie folk", "traditional folk", "stomp and holler",
        "celtic", "new americana", "folk-pop",
    )),
    "asian pop": (0.05, "indie", (
        "j-pop", "c-pop", "mandopop", "k-pop", "cantopop", "taiwan pop", "j-rock", "anime",
        "city pop", "hong kong pop", "k-indie",
    )),
    "indian": (0.03, "indie pop", (
        "desi pop", "modern bollywood", "filmi", "sufi", "indian indie", "hindi indie",
        "classic bollywood", "punjabi pop", "indian rock", "new delhi indie", "ghazal",
    )),
    "classical": (0.03, "classical", (
        "classical", "orchestral", "early music", "baroque", "opera", "romantic era",
        "soundtrack", "choral", "contemporary classical", "chamber music", "classical piano",
    )),
    "reggae": (0.02, "reggae", (
        "reggae", "roots reggae", "dancehall", "ska", "afrobeat", "afropop", "highlife", "dub",
        "lovers rock",
    )),
    "european": (0.03, "schlager", (
        "schlager", "chanson", "italian pop", "french pop", "german rock", "polish rock",
        "disco polo", "turkish pop", "greek pop", "russian rock", "rap francais",
        "canzone napoletana",
    )),
    "blues": (0.02, "blues", (
        "blues", "electric blues", "chicago blues", "gospel", "christian music", "worship",
        "ccm", "delta blues", "soul blues",
    )),
}  # fmt: skip
REGIONS = (
    "polish", "swedish", "brazilian", "mexican", "german", "italian", "french", "dutch",
    "finnish", "danish", "norwegian", "australian", "canadian", "irish", "scottish", "spanish",
    "argentine", "chilean", "colombian", "japanese", "korean", "turkish", "greek", "czech",
    "hungarian", "ukrainian", "belgian", "austrian", "swiss", "portuguese",
)  # fmt: skip
# Audio profile per family: energy, acousticness, danceability, speechiness,
# P(instrumental), P(explicit), duration factor.
AUDIO_PROFILES = {
    "rock": (0.70, 0.20, 0.50, 0.045, 0.10, 0.02, 1.05),
    "pop": (0.62, 0.30, 0.62, 0.045, 0.03, 0.03, 0.95),
    "latin": (0.62, 0.35, 0.66, 0.055, 0.03, 0.03, 1.0),
    "soul": (0.55, 0.35, 0.65, 0.055, 0.05, 0.02, 1.05),
    "jazz": (0.35, 0.70, 0.52, 0.050, 0.30, 0.00, 1.15),
    "hip hop": (0.65, 0.15, 0.75, 0.220, 0.02, 0.45, 1.0),
    "electronic": (0.80, 0.05, 0.68, 0.065, 0.45, 0.05, 1.2),
    "metal": (0.90, 0.02, 0.42, 0.075, 0.15, 0.05, 1.15),
    "country": (0.55, 0.40, 0.58, 0.040, 0.02, 0.01, 0.95),
    "folk": (0.38, 0.65, 0.52, 0.040, 0.08, 0.01, 1.0),
    "asian pop": (0.62, 0.30, 0.60, 0.050, 0.03, 0.01, 1.05),
    "indian": (0.58, 0.40, 0.62, 0.060, 0.04, 0.01, 1.2),
    "classical": (0.20, 0.90, 0.30, 0.050, 0.75, 0.00, 1.5),
    "reggae": (0.60, 0.20, 0.75, 0.100, 0.05, 0.05, 1.05),
    "european": (0.58, 0.35, 0.60, 0.050, 0.03, 0.02, 0.95),
    "blues": (0.50, 0.45, 0.52, 0.050, 0.06, 0.01, 1.05),
}
# How often each pitch class is a track's key (C, C#, D, ...), as in large catalogues.
KEY_SHARES = np.array([13.5, 6.6, 11.4, 3.6, 8.5, 8.9, 5.0, 12.7, 5.8, 11.3, 6.3, 6.4])
# Release decades 1920s..2020s: the catalogue leans to recent decades.
DECADE_SHARES = np.array([0.7, 1.2, 1.6, 5.0, 8.5, 11.7, 15.6, 20.9, 16.3, 16.2, 2.3])

ARTIST_FIRST = (
    "Anna", "Carlos", "Marta", "John", "Lucia", "Peter", "Sofia", "David", "Elena", "Frank",
    "Ines", "Kenji", "Laura", "Miguel", "Nina", "Oscar", "Paula", "Ray", "Stina", "Tomas",
    "Ulla", "Victor", "Wanda", "Yuki", "Zoe", "Ahmed", "Bruno", "Chloe", "Diego", "Emma",
    "Felix", "Greta", "Hugo", "Iris", "Jorge", "Karin", "Leon", "Maya", "Nils", "Olga",
    "Pablo", "Rosa", "Sam", "Tina", "Umberto", "Vera", "Walter", "Xavier", "Yara", "Zbigniew",
    "Arjun", "Mei", "Hiro", "Priya", "Lars", "Ingrid", "Mateo", "Camila", "Louis", "Ella",
)  # fmt: skip
ARTIST_LAST = (
    "Anthony", "Barrios", "Mazar", "Nordenstam", "Scocco", "Meneguzzi", "Laven", "Greene",
    "Farlow", "Dolores", "Santos", "Keller", "Moreau", "Rossi", "Novak", "Berg", "Kowalski",
    "Silva", "Tanaka", "Kim", "Chen", "Singh", "Larsen", "Murphy", "Walsh", "Fischer",
    "Costa", "Ruiz", "Vega", "Blanco", "Castro", "Ortega", "Lindqvist", "Holm", "Virtanen",
    "Jansen", "Visser", "Dubois", "Lambert", "Ferrari", "Romano", "Esposito", "Marino",
    "Nakamura", "Sato", "Park", "Lee", "Wong", "Kapoor", "Sharma", "Haddad", "Okafor", "Mensah",
    "Brooks", "Hayes", "Parker", "Reed", "Fletcher", "Monroe", "Jennings", "Carter", "Dawson",
    "Ellis", "Foster", "Gibson", "Harper", "Irving", "Jarvis", "Kemp", "Lowell", "Mercer",
    "Nash", "Owens", "Porter", "Quinn", "Rhodes", "Sterling", "Tate", "Underwood", "Vance",
)  # fmt: skip
ADJECTIVES = (
    "Velvet", "Local", "Electric", "Silent", "Golden", "Broken", "Crimson", "Wild", "Lonely",
    "Neon", "Blue", "Black", "Crystal", "Midnight", "Burning", "Frozen", "Hidden", "Little",
    "Lost", "Lucky", "Magic", "Mad", "Northern", "Pale", "Purple", "Quiet", "Restless",
    "Rolling", "Sacred", "Savage", "Secret", "Silver", "Sleepy", "Smoking", "Solar", "Sonic",
    "Stone", "Strange", "Sweet", "Tender", "Thunder", "Twin", "Urban", "Wandering", "White",
    "Young", "Dizzy", "Happy", "Holy", "Iron",
)  # fmt: skip
NOUNS = (
    "Train", "Underground", "Cat", "People", "Angels", "Hearts", "Riders", "Dreams", "Kings",
    "Wolves", "Sparrows", "Shadows", "Flowers", "Machines", "Brothers", "Sisters", "Ghosts",
    "Lovers", "Strangers", "Saints", "Pilots", "Monkeys", "Tigers", "Rebels", "Echoes",
    "Rivers", "Mountains", "Oceans", "Stars", "Birds", "Orchestra", "Band", "Collective",
    "Club", "Choir", "Quartet", "Trio", "Gang", "Crew", "Syndicate", "Horses", "Bees",
    "Foxes", "Owls", "Clouds", "Sailors", "Doctors", "Poets", "Ramblers", "Drifters",
)  # fmt: skip
TITLE_WORDS = (
    "Love", "Night", "Heart", "Dream", "Fire", "Rain", "Summer", "Sky", "Road", "Home", "Light",
    "Dance", "Time", "Moon", "Sun", "River", "Song", "Blues", "Tears", "Kiss", "Angel",
    "Paradise", "Memories", "Morning", "Highway", "Shadow", "Freedom", "Thunder", "Ocean",
    "Stranger", "Corazón", "Noche", "Amor", "Vida", "Luna", "Cielo", "Sueño", "Fuego", "Mar",
    "Miłość", "Noc", "Serce", "Lato", "Deszcz", "Niebo", "Droga", "Gwiazdy", "Wiatr", "Sen",
)  # fmt: skip
TITLE_TEMPLATES = (
    (0.15, "{word}{suffix}"), (0.15, "{adj} {word}{suffix}"), (0.1, "{word} of {word2}{suffix}"),
    (0.08, "My {word}{suffix}"), (0.08, "{word} and {word2}{suffix}"),
    (0.06, "No More {word}{suffix}"), (0.08, "The {word} Song{suffix}"),
    (0.08, "{word} in the {word2}{suffix}"), (0.06, "Sweet {word}{suffix}"),
    (0.06, "{word} Tonight{suffix}"), (0.05, "Without {word}{suffix}"),
    (0.05, "{word} Again{suffix}"),
)  # fmt: skip
# Most titles carry no version suffix.
TITLE_SUFFIXES = ("",) * 24 + (
    " - Remastered", " - Live", " - 2011 Remaster", " - Radio Edit", " - Acoustic",
    " - Single Version", " - Mono", " - Remix",
)  # fmt: skip
ARTIST_TEMPLATES = (
    (0.20, "{first} {last}"), (0.10, "The {adj} {noun}"), (0.08, "{adj} {noun}"),
    (0.15, "{first} {last} & The {noun}"), (0.17, "{first} {last} {last2}"),
    (0.12, "{first} & The {adj} {noun}"), (0.10, "{last} & {last2}"),
    (0.08, "{last} and the {noun}"),
)  # fmt: skip
FEMALE_NAMES = (
    "Kalina", "Melania", "Kamila", "Lidia", "Krystyna", "Adrianna", "Anna", "Maria",
    "Katarzyna", "Małgorzata", "Agnieszka", "Barbara", "Ewa", "Zofia", "Julia", "Zuzanna",
    "Aleksandra", "Natalia", "Joanna", "Magdalena", "Monika", "Weronika", "Oliwia", "Hanna",
    "Dorota", "Elżbieta", "Beata", "Iwona", "Paulina", "Łucja",
)  # fmt: skip
MALE_NAMES = (
    "Nikodem", "Fabian", "Norbert", "Grzegorz", "Leonard", "Arkadiusz", "Piotr", "Krzysztof",
    "Andrzej", "Tomasz", "Paweł", "Michał", "Marcin", "Jakub", "Adam", "Łukasz", "Mateusz",
    "Kacper", "Szymon", "Wojciech", "Bartosz", "Dawid", "Jan", "Stanisław", "Zbigniew",
    "Jerzy", "Kamil", "Oskar", "Ignacy", "Wiktor",
)  # fmt: skip
SURNAMES = (
    "Irla", "Kazek", "Odrzywołek", "Radko", "Pitura", "Słoboda", "Bartel", "Staniewicz",
    "Żurawik", "Szczypek", "Pacyga", "Worach", "Nowak", "Kowalski", "Wiśniewski", "Wójcik",
    "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński", "Szymański", "Woźniak", "Dąbrowski",
    "Kozłowski", "Jankowski", "Mazur", "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski",
    "Pawlak", "Michalski", "Król", "Wieczorek", "Jabłoński", "Wróbel", "Nowakowski",
    "Majewski", "Olszewski", "Stępień", "Jaworski", "Malinowski", "Adamczyk", "Dudek",
    "Nowicki", "Górski", "Witkowski", "Walczak", "Sikora", "Baran", "Rutkowski", "Michalak",
    "Szewczyk", "Ostrowski", "Tomaszewski", "Pietrzak", "Zalewski", "Wróblewski", "Jasiński",
    "Marczak",
)  # fmt: skip
CITIES = (
    ("Warszawa", 6), ("Kraków", 3), ("Wrocław", 2.5), ("Poznań", 2.2), ("Gdańsk", 2),
    ("Szczecin", 1.6), ("Łódź", 2.5), ("Lublin", 1.3), ("Bydgoszcz", 1.2), ("Katowice", 1.2),
    ("Białystok", 1), ("Radom", 0.8),
)  # fmt: skip
STREET_PREFIXES = ("ul.", "ulica", "al.", "aleja", "pl.", "plac")
STREETS = (
    "Zaciszna", "Północna", "Wodna", "Wiązowa", "Staszica", "Szafirowa", "Truskawkowa",
    "Łanowa", "Klonowa", "Grunwaldzka", "Turystyczna", "Bursztynowa", "Lipowa", "Polna",
    "Leśna", "Słoneczna", "Krótka", "Szkolna", "Ogrodowa", "Kwiatowa", "Kościuszki",
    "Mickiewicza", "Sienkiewicza", "Piłsudskiego", "Długa", "Brzozowa", "Kolejowa",
    "Parkowa", "Wiśniowa", "Różana", "Spacerowa", "Akacjowa", "Jasna", "Cicha", "Miodowa",
    "Zielona", "Źródlana", "Morska", "Górska", "Widokowa",
)  # fmt: skip


@dataclass(frozen=True)
class Genres:
    """The genre vocabulary: names in alphabetical order, grouped in families."""

    names: np.ndarray  # str, sorted, so that sorted ids give alphabetical genre lists
    family_names: tuple[str, ...]
    family_share: np.ndarray  # share of artists whose main family it is
    family_ptr: np.ndarray  # family f's genres are family_genres[ptr[f]:ptr[f+1]] ...
    family_genres: np.ndarray  # ... most common first
    family_weight: np.ndarray  # Zipf weight of each entry of family_genres


@functools.cache
def _genres() -> Genres:
    """Build the (constant) genre vocabulary with its head genres and regional long tail."""
    family_names = tuple(GENRE_FAMILIES)
    ordered: list[tuple[str, int]] = []  # (genre, family) in popularity order within family
    seen: set[str] = set()
    for f, (_, stem, heads) in enumerate(GENRE_FAMILIES.values()):
        for name in (*heads, *(f"{region} {stem}" for region in REGIONS)):
            if name not in seen:
                seen.add(name)
                ordered.append((name, f))
    names = np.array(sorted(seen))
    genre_id = {name: i for i, name in enumerate(names)}
    per_family: list[list[int]] = [[] for _ in family_names]
    for name, f in ordered:
        per_family[f].append(genre_id[name])
    weights = [1.0 / (np.arange(len(ids)) + 1.0) ** 1.1 for ids in per_family]
    share = np.array([v[0] for v in GENRE_FAMILIES.values()])
    return Genres(
        names=names,
        family_names=family_names,
        family_share=share / share.sum(),
        family_ptr=np.concatenate([[0], np.cumsum([len(ids) for ids in per_family])]),
        family_genres=np.concatenate([np.array(ids) for ids in per_family]),
        family_weight=np.concatenate(weights),
    )


# --------------------------------------------------------------------------------------------
# Sampling helpers


class SegmentSampler:
    """Weighted draws of one item from a chosen segment, vectorised over many draws.

    Items of segment s are ``items[ptr[s]:ptr[s+1]]`` with positive ``weights``. The cumulative
    weights are normalised per segment and offset by the segment number, so that one
    searchsorted serves all segments at once.
    """

    def __init__(self, ptr: np.ndarray, items: np.ndarray, weights: np.ndarray) -> None:
        self.ptr, self.items = ptr, items
        lengths = np.diff(ptr)
        segment = np.repeat(np.arange(len(lengths)), lengths)
        total = np.concatenate([[0.0], np.cumsum(weights)])
        start, end = total[ptr[:-1]], total[ptr[1:]]
        span = np.where(end > start, end - start, 1.0)
        self.cum = segment + (total[1:] - start[segment]) / span[segment]
        self.empty = lengths == 0

    def draw(self, segments: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per (segment, uniform in [0, 1)) pair; -1 where the segment is empty."""
        pos = np.searchsorted(self.cum, segments + u, side="right")
        # Rounding can land one past the segment's end: clip back into it.
        pos = np.clip(pos, self.ptr[segments], np.maximum(self.ptr[segments + 1] - 1, 0))
        item = self.items[np.minimum(pos, len(self.items) - 1)]
        return np.where(self.empty[segments], -1, item)


def _base62_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random 22-character base62 ids, the shape of Spotify's track and artist ids."""
    alphabet = np.frombuffer(
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
    )
    codes = alphabet[rng.integers(0, 62, size=(n, 22))]
    return codes.view("S22").ravel().astype(str)


def _fill(rng: np.random.Generator, k: int, templates, **pools: tuple[str, ...]) -> list[str]:
    """k strings from weighted (weight, template) pairs; fields name a word pool.

    Each pool ``p`` fills ``{p}`` and, with an independent draw, ``{p2}``.
    """
    weights = np.array([w for w, _ in templates])
    which = rng.choice(len(templates), size=k, p=weights / weights.sum()).tolist()
    words = {}
    for name, pool in pools.items():
        words[name] = np.array(pool)[rng.integers(0, len(pool), k)].tolist()
        words[name + "2"] = np.array(pool)[rng.integers(0, len(pool), k)].tolist()
    return [
        templates[t][1].format(**{field: values[i] for field, values in words.items()})
        for i, t in enumerate(which)
    ]


def _distinct_names(
    rng: np.random.Generator, groups: np.ndarray, draw: Callable[[np.random.Generator, int], list]
) -> list[str]:
    """One name per row from ``draw(rng, k)``, unique within each group (rows of equal key).

    Rows whose name is taken are drawn again; the rare ones still taken get a number.
    """
    names = [""] * len(groups)
    keys = groups.tolist()
    seen: set[tuple[int, str]] = set()
    todo = list(range(len(keys)))
    for _ in range(20):
        taken = []
        for i, name in zip(todo, draw(rng, len(todo)), strict=True):
            if (keys[i], name) in seen:
                taken.append(i)
            else:
                seen.add((keys[i], name))
                names[i] = name
        todo = taken
        if not todo:
            break
    for i in todo:
        base, number = draw(rng, 1)[0], 2
        while (keys[i], f"{base} {number}") in seen:
            number += 1
        seen.add((keys[i], f"{base} {number}"))
        names[i] = f"{base} {number}"
    return names


def _significant(values: np.ndarray, digits: int) -> list[float]:
    """Round to significant digits, as the real catalogue prints small audio features."""
    return [float(f"{v:.{digits}g}") for v in values.tolist()]


def _zipf(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf probabilities over n items in random order."""
    weights = 1.0 / (np.arange(n) + 1.0) ** exponent
    return rng.permutation(weights / weights.sum())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------------------------
# The world: artists, tracks and users, with the hidden traits that drive the events


@dataclass(frozen=True)
class Artists:
    id: np.ndarray  # 22-character ids
    name: list[str]
    family: np.ndarray  # main genre family
    genre_ptr: np.ndarray  # genres of artist a: genres[genre_ptr[a]:genre_ptr[a + 1]]
    genres: np.ndarray  # genre ids, ascending within an artist (so names are alphabetical)


@dataclass(frozen=True)
class Tracks:
    id: np.ndarray
    name: list[str]
    artist: np.ndarray  # artist index
    popularity: np.ndarray
    duration_ms: np.ndarray
    explicit: np.ndarray
    release_date: list[str]
    audio: dict[str, list]  # feature -> values, in the real field order
    appeal: np.ndarray  # hidden effect on skips beyond popularity


@dataclass(frozen=True)
class Users:
    name: list[str]
    city: list[str]
    street: list[str]
    favourites: np.ndarray  # (users, 3) genre ids
    premium: np.ndarray
    activity: np.ndarray  # relative number of sessions a day
    favourite_share: np.ndarray  # share of plays picked from the favourite genres
    skip_bias: np.ndarray
    like_bias: np.ndarray


@dataclass(frozen=True)
class World:
    """Everything but the events; depends only on (seed, users, tracks)."""

    seed: int
    genres: Genres
    artists: Artists
    tracks: Tracks
    users: Users
    by_genre: SegmentSampler  # tracks listed under each genre, weighted like play_cum
    play_cum: np.ndarray  # cumulative chance of each track being picked outside favourites
    artist_genre_keys: np.ndarray  # sorted artist * n_genres + genre, to look up overlaps
    # Mean popularity of what gets played: popularity counts relative to it, so that the skip
    # rate stays near 34% whatever the catalogue's size.
    popularity_centre: float


def build_world(seed: int, users: int, tracks: int) -> World:
    """Build the catalogue and the user base for a seed and sizes."""
    genres = _genres()
    artists = _make_artists(_rng(seed, "artists", tracks), genres, max(1, tracks // 2))
    catalog = _make_tracks(_rng(seed, "tracks", tracks), genres, artists, tracks)
    people = _make_users(_rng(seed, "users", users), genres, users)

    # Plays pick tracks by popularity rank, Zipf-like, so that hits repeat across users.
    rank = np.empty(tracks, dtype=np.int64)
    rank[np.argsort(-catalog.popularity, kind="stable")] = np.arange(tracks)
    weight = 1.0 / (rank + 20.0)

    # Every track is listed under each genre of its artist, most popular first.
    n_genres = len(genres.names)
    per_artist = np.diff(artists.genre_ptr)
    listed = per_artist[catalog.artist]
    pair_track = np.repeat(np.arange(tracks), listed)
    within = np.arange(len(pair_track)) - np.repeat(np.cumsum(listed) - listed, listed)
    pair_genre = artists.genres[np.repeat(artists.genre_ptr[catalog.artist], listed) + within]
    order = np.lexsort((rank[pair_track], pair_genre))
    genre_ptr = np.concatenate([[0], np.cumsum(np.bincount(pair_genre, minlength=n_genres))])
    by_genre = SegmentSampler(genre_ptr, pair_track[order], weight[pair_track[order]])

    owner = np.repeat(np.arange(len(per_artist)), per_artist)
    return World(
        seed=seed,
        genres=genres,
        artists=artists,
        tracks=catalog,
        users=people,
        by_genre=by_genre,
        play_cum=np.cumsum(weight) / weight.sum(),
        artist_genre_keys=np.unique(owner * n_genres + artists.genres),
        popularity_centre=float(np.average(catalog.popularity, weights=weight)),
    )


def _make_artists(rng: np.random.Generator, genres: Genres, n: int) -> Artists:
    """Artists with a main genre family and 1..17 genres, mostly from that family."""
    sampler = SegmentSampler(genres.family_ptr, genres.family_genres, genres.family_weight)
    n_families = len(genres.family_names)
    family = rng.choice(n_families, size=n, p=genres.family_share)
    count = np.minimum(rng.geometric(0.32, size=n), 17)
    owner = np.repeat(np.arange(n), count)
    # The first genre is from the main family, the others mostly (crossover artists exist).
    slot_family = np.where(
        rng.random(len(owner)) < 0.88,
        family[owner],
        rng.choice(n_families, size=len(owner), p=genres.family_share),
    )
    slot_genre = sampler.draw(slot_family, rng.random(len(owner)))
    slot_genre[np.cumsum(count) - count] = sampler.draw(family, rng.random(n))
    # Unique pairs sorted by genre id: genre lists come out alphabetical, as in the real file.
    owner, genre = np.divmod(np.unique(owner * len(genres.names) + slot_genre), len(genres.names))
    names = _distinct_names(
        rng,
        np.zeros(n, dtype=np.int64),
        lambda r, k: _fill(
            r, k, ARTIST_TEMPLATES, first=ARTIST_FIRST, last=ARTIST_LAST, adj=ADJECTIVES, noun=NOUNS
        ),
    )
    return Artists(
        id=_base62_ids(rng, n),
        name=names,
        family=family,
        genre_ptr=np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]),
        genres=genre,
    )


def _make_tracks(rng: np.random.Generator, genres: Genres, artists: Artists, n: int) -> Tracks:
    """Tracks whose popularity, dates, durations and audio features look like the real ones."""
    n_artists = len(artists.id)
    # Every artist has a track; the others go to prolific artists (Zipf), in no particular order.
    extra = rng.choice(n_artists, size=n - n_artists, p=_zipf(n_artists, 1.1, rng))
    artist = np.concatenate([np.arange(n_artists), extra])[rng.permutation(n)]
    profile = np.array([AUDIO_PROFILES[f] for f in genres.family_names])[artists.family[artist]]

    # An artist has an era; popularity ~ N(29, 18) like the real quantiles, higher for newer
    # tracks and shared by an artist's tracks.
    era = rng.choice(len(DECADE_SHARES), size=n_artists, p=DECADE_SHARES / DECADE_SHARES.sum())
    artist_year = 1920 + 10 * era + rng.integers(0, 10, size=n_artists)
    year = np.clip(artist_year[artist] + np.round(rng.normal(0, 3, n)), 1920, 2021).astype(int)
    artist_pop = rng.normal(0, 1, n_artists)
    z = 0.5 * (year - 1990) / 22 + 0.6 * artist_pop[artist] + 0.62 * rng.normal(0, 1, n)
    popularity = np.clip(np.round(29 + 18 * z), 0, 100).astype(int)
    month, day = rng.integers(1, 13, n), rng.integers(1, 29, n)
    precision = rng.random(n) + np.where(year < 1970, 0.3, 0.0)  # old records: often year only
    release_date = [
        f"{y}" if p > 0.8 else f"{y}-{m:02d}" if p > 0.795 else f"{y}-{m:02d}-{d:02d}"
        for y, m, d, p in zip(
            year.tolist(), month.tolist(), day.tolist(), precision.tolist(), strict=True
        )
    ]

    duration = np.exp(rng.normal(np.log(212_000), 0.3, n)) * profile[:, 6]
    long_ones = rng.random(n) < 0.003  # live sets and symphonies
    duration = np.where(long_ones, duration * rng.uniform(3, 15, n), duration)

    energy = np.clip(profile[:, 0] + rng.normal(0, 0.2, n), 0.001, 1.0)
    danceability = np.clip(profile[:, 2] + rng.normal(0, 0.14, n), 0.05, 0.98)
    acoustic = profile[:, 1] - 0.6 * (energy - profile[:, 0]) + rng.normal(0, 0.18, n)
    instrumental = np.where(
        rng.random(n) < profile[:, 4],
        rng.beta(3, 1.2, n),
        np.where(rng.random(n) < 0.45, 0.0, 10 ** rng.uniform(-6.5, -2.5, n)),
    )
    loudness = np.clip(-21 + 16 * energy + rng.normal(0, 2.5, n), -60, 2.5)
    valence = np.clip(0.56 + 0.7 * (danceability - 0.56) + rng.normal(0, 0.21, n), 0.02, 0.99)
    audio = {
        "danceability": np.round(danceability, 3).tolist(),
        "energy": np.round(energy, 3).tolist(),
        "key": rng.choice(12, size=n, p=KEY_SHARES / KEY_SHARES.sum()).tolist(),
        "loudness": np.round(loudness, 3).tolist(),
        "speechiness": _significant(
            np.clip(profile[:, 3] * rng.lognormal(0, 0.5, n), 0.0222, 0.96), 3
        ),
        "acousticness": _significant(np.clip(acoustic, 1e-6, 0.996), 3),
        "instrumentalness": _significant(instrumental, 3),
        "liveness": _significant(np.clip(rng.lognormal(np.log(0.14), 0.6, n), 0.0119, 0.99), 3),
        "valence": np.round(valence, 3).tolist(),
        "tempo": np.round(np.clip(rng.normal(120, 29, n), 40, 218), 3).tolist(),
    }
    # Titles repeat across artists (covers, standards) but not within one: that is a defect.
    names = _distinct_names(
        rng,
        artist,
        lambda r, k: _fill(
            r, k, TITLE_TEMPLATES, word=TITLE_WORDS, adj=ADJECTIVES, suffix=TITLE_SUFFIXES
        ),
    )
    return Tracks(
        id=_base62_ids(rng, n),
        name=names,
        artist=artist,
        popularity=popularity,
        duration_ms=np.clip(np.round(duration), 4_000, 4_200_000).astype(np.int64),
        explicit=(rng.random(n) < profile[:, 5]).astype(int),
        release_date=release_date,
        audio=audio,
        appeal=rng.normal(0, SKIP_MODEL.track_appeal_sd, n),
    )


def _make_users(rng: np.random.Generator, genres: Genres, n: int) -> Users:
    """Polish users with three favourite genres from one or two families, and hidden habits."""
    female = (rng.random(n) < 0.5).tolist()
    first_f = np.array(FEMALE_NAMES)[rng.integers(0, len(FEMALE_NAMES), n)].tolist()
    first_m = np.array(MALE_NAMES)[rng.integers(0, len(MALE_NAMES), n)].tolist()
    surname = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)].tolist()
    names = [
        f"{f} {_feminine(s)}" if fem else f"{m} {s}"
        for f, m, s, fem in zip(first_f, first_m, surname, female, strict=True)
    ]
    city_names, city_weights = zip(*CITIES, strict=True)
    weights = np.array(city_weights) / sum(city_weights)
    city = np.array(city_names)[rng.choice(len(city_names), size=n, p=weights)].tolist()
    prefix = np.array(STREET_PREFIXES)[rng.integers(0, len(STREET_PREFIXES), n)].tolist()
    street = np.array(STREETS)[rng.integers(0, len(STREETS), n)].tolist()
    style, a, b = rng.integers(0, 3, n), rng.integers(1, 200, n), rng.integers(1, 100, n)
    numbers = [
        (f"{x}", f"{x:03d}", f"{x % 100:02d}/{y:02d}")[s]
        for s, x, y in zip(style.tolist(), a.tolist(), b.tolist(), strict=True)
    ]
    streets = [f"{p} {s} {no}" for p, s, no in zip(prefix, street, numbers, strict=True)]
    return Users(
        name=names,
        city=city,
        street=streets,
        favourites=_favourite_genres(rng, genres, n),
        premium=rng.random(n) < PREMIUM_SHARE,
        activity=rng.gamma(2.0, 0.5, n),
        favourite_share=rng.beta(6, 3, n),
        skip_bias=rng.normal(0, SKIP_MODEL.user_sd, n),
        like_bias=rng.normal(0, 0.6, n),
    )


def _favourite_genres(rng: np.random.Generator, genres: Genres, n: int) -> np.ndarray:
    """Three distinct genres per user: mostly from a main family, head genres preferred."""
    sampler = SegmentSampler(genres.family_ptr, genres.family_genres, genres.family_weight**1.5)
    n_families = len(genres.family_names)
    main = rng.choice(n_families, size=n, p=genres.family_share)
    second = rng.choice(n_families, size=n, p=genres.family_share)
    favourites = np.empty((n, 3), dtype=np.int64)
    for slot in range(3):
        todo = np.arange(n)
        for _ in range(20):  # draw again where the genre is already a favourite
            family = np.where(rng.random(len(todo)) < 0.7, main[todo], second[todo])
            favourites[todo, slot] = sampler.draw(family, rng.random(len(todo)))
            todo = todo[(favourites[todo, :slot] == favourites[todo, slot, None]).any(axis=1)]
            if not len(todo):
                break
        for u in todo:  # vanishingly rare: the first genre not taken
            taken = set(favourites[u, :slot].tolist())
            favourites[u, slot] = next(g for g in range(len(genres.names)) if g not in taken)
    return favourites


def _feminine(surname: str) -> str:
    """Polish surnames in -ski/-cki/-dzki take -ska/-cka/-dzka for women."""
    return surname[:-1] + "a" if surname.endswith(("ski", "cki", "dzki")) else surname


# --------------------------------------------------------------------------------------------
# One day of events


@dataclass(frozen=True)
class DayEvents:
    """A day's events ordered by user, session and time; times in ms since midnight UTC."""

    t_ms: np.ndarray
    user: np.ndarray  # user index (user_id - 101)
    track: np.ndarray  # track index, -1 for ads and premium purchases
    event: np.ndarray  # index into EVENT_TYPES
    session_id: np.ndarray

    def rows(self, rows: slice) -> DayEvents:
        return DayEvents(
            self.t_ms[rows], self.user[rows], self.track[rows], self.event[rows],
            self.session_id[rows],
        )  # fmt: skip


def simulate_day(world: World, day: dt.date) -> DayEvents:
    """Simulate every user's sessions on one day.

    The sessions of a user's day form a chain; each pass of the loop plays one track in every
    chain still running, so the loop runs as often as the busiest user plays tracks that day.
    A chain stops before anything would happen after midnight, so every event lies in the day.
    """
    rng = _rng(world.seed, "events", day.toordinal())
    users = world.users
    rate = SESSIONS_PER_DAY * users.activity * (WEEKEND_FACTOR if day.weekday() >= 5 else 1.0)
    sessions_planned = rng.poisson(rate)
    user = np.flatnonzero(sessions_planned > 0)
    chain = np.arange(len(user))  # the chain's rank among the day's active users
    left = sessions_planned[user]  # sessions still to come in each chain
    hour = rng.choice(24, size=len(user), p=DIURNAL / DIURNAL.sum())
    t = (hour * 3600 + rng.integers(0, 3600, len(user))) * 1000  # sessions start on a second
    position = np.ones(len(user), dtype=np.int64)
    session = np.zeros(len(user), dtype=np.int64)  # the session's number within the chain
    prev_skip = np.zeros(len(user), dtype=bool)
    ad_before = np.zeros(len(user), dtype=bool)
    bought = np.zeros(len(user), dtype=bool)

    emitted: list[tuple[np.ndarray, ...]] = []
    step = 0
    while len(user):
        k = len(user)
        track = _pick_tracks(world, rng, user)
        overlap = _genre_overlap(world, user, track)
        logit = _skip_logit(world, user, track, overlap, position, prev_skip, ad_before, t)
        skip = rng.random(k) < _sigmoid(logit)
        duration = world.tracks.duration_ms[track]
        heard = np.where(skip, np.maximum(1_000, duration * rng.beta(1.1, 1.5, k)), duration)
        end = t + heard.astype(np.int64)
        # LIKEs come during the play, more often on full plays of favourite genres: about one
        # LIKE per four PLAYs, as in the real data.
        like = rng.random(k) < _sigmoid(
            -1.25 + 0.5 * (overlap > 0) - 1.3 * skip + users.like_bias[user]
        )
        like_t = t + (rng.random(k) * heard).astype(np.int64)

        # Between two tracks of a session: maybe an ad (non-premium), maybe a purchase after it.
        go_on = rng.random(k) < np.where(skip, CONTINUE_AFTER_SKIP_P, CONTINUE_P)
        go_on &= position < MAX_PLAYS_PER_SESSION
        ad = go_on & ~users.premium[user] & ~bought & (rng.random(k) < AD_P)
        buy = ad & (rng.random(k) < BUY_AFTER_AD_P)
        buy_t = end + rng.integers(5, 31, k) * 1000
        after_ad = np.where(buy, buy_t, end) + rng.integers(5, 26, k) * 1000
        gap_s = SESSION_GAP_S[0] + rng.exponential(SESSION_GAP_S[1], k).astype(np.int64)
        next_t = np.where(go_on, np.where(ad, after_ad, end), (end // 1000 + gap_s) * 1000)

        # A play counts only if its outcome falls inside the day; an ad only if a track follows.
        played = end < DAY_MS
        ad &= next_t < DAY_MS
        buy &= ad
        for mask, time, slot, kind in (
            (played, t, 0, PLAY),
            (played & like, like_t, 1, LIKE),
            (played & skip, end, 2, SKIP),
            (played & ad, end, 3, AD),
            (played & buy, buy_t, 4, BUY),
        ):
            i = np.flatnonzero(mask)
            tracks = track[i] if kind in (PLAY, LIKE, SKIP) else np.full(len(i), -1)
            order = np.full(len(i), step * 8 + slot)  # ties (SKIP then PLAY) keep this order
            emitted.append((chain[i], session[i], order, time[i], tracks, np.full(len(i), kind)))

        ends_session = ~go_on
        left = left - ends_session
        alive = played & (left > 0) & (next_t < DAY_MS)
        position = np.where(ends_session, 1, position + 1)
        session = session + ends_session
        prev_skip, ad_before, bought = skip & go_on, ad & go_on, bought | buy
        user, chain, left, t = user[alive], chain[alive], left[alive], next_t[alive]
        position, session = position[alive], session[alive]
        prev_skip, ad_before, bought = prev_skip[alive], ad_before[alive], bought[alive]
        step += 1
    return _collect_day(emitted, np.flatnonzero(sessions_planned > 0), day)


def _pick_tracks(world: World, rng: np.random.Generator, user: np.ndarray) -> np.ndarray:
    """Mostly a popular track of one of the user's favourite genres, else a popular track."""
    k = len(user)
    popular = np.searchsorted(world.play_cum, rng.random(k), side="right")
    popular = np.minimum(popular, len(world.play_cum) - 1)
    genre = world.users.favourites[user, rng.integers(0, 3, k)]
    favourite = world.by_genre.draw(genre, rng.random(k))
    use_favourite = (rng.random(k) < world.users.favourite_share[user]) & (favourite >= 0)
    return np.where(use_favourite, favourite, popular)


def _genre_overlap(world: World, user: np.ndarray, track: np.ndarray) -> np.ndarray:
    """How many of the user's favourite genres the track's artist has (0..3)."""
    keys = world.artist_genre_keys
    base = world.tracks.artist[track] * len(world.genres.names)
    overlap = np.zeros(len(user), dtype=np.int64)
    for slot in range(3):
        key = base + world.users.favourites[user, slot]
        overlap += keys[np.minimum(np.searchsorted(keys, key), len(keys) - 1)] == key
    return overlap


def _skip_logit(
    world: World,
    user: np.ndarray,
    track: np.ndarray,
    overlap: np.ndarray,
    position: np.ndarray,
    prev_skip: np.ndarray,
    ad_before: np.ndarray,
    t_ms: np.ndarray,
) -> np.ndarray:
    """Log-odds of skipping, from what is known when the play starts (see `SkipModel`)."""
    m = SKIP_MODEL
    tracks = world.tracks
    minutes_over = np.clip((tracks.duration_ms[track] - 300_000) / 60_000, 0, 3)
    return (
        m.intercept
        + world.users.skip_bias[user]
        + np.array(m.overlap)[np.minimum(overlap, 2)]
        + m.popularity * (tracks.popularity[track] - world.popularity_centre)
        + tracks.appeal[track]
        + m.position * np.log(position)
        + m.previous_skipped * prev_skip
        + m.ad_before * ad_before
        + np.array(m.hour)[t_ms // 3_600_000]
        + m.long_track * minutes_over
    )


def _collect_day(
    emitted: list[tuple[np.ndarray, ...]], active_users: np.ndarray, day: dt.date
) -> DayEvents:
    """Order a day's events by user, session and time, and number its sessions."""
    if not emitted:
        empty = np.zeros(0, dtype=np.int64)
        return DayEvents(empty, empty, empty, empty, empty)
    chain, session, order, t, track, event = (np.concatenate(c) for c in zip(*emitted, strict=True))
    sort = np.lexsort((order, chain))
    chain, session, t, track, event = (a[sort] for a in (chain, session, t, track, event))
    starts = np.ones(len(chain), dtype=bool)
    starts[1:] = (chain[1:] != chain[:-1]) | (session[1:] != session[:-1])
    counter = np.cumsum(starts)
    if len(counter) and counter[-1] >= 10_000_000:
        raise ValueError("more than 10 million sessions in a day: session ids would collide")
    # Unique across days: the day's ordinal, then the session's number within the day.
    return DayEvents(t, active_users[chain], track, event, day.toordinal() * 10_000_000 + counter)


# --------------------------------------------------------------------------------------------
# Catalogue and user records, with the defects of the real delivery on request


def _artist_records(world: World, defects: bool) -> Iterator[dict]:
    """Artists; with defects some ids are the integer -1, genres null, names repeated."""
    artists = world.artists
    n = len(artists.id)
    ids: list = artists.id.tolist()
    names = list(artists.name)
    genre_lists: list = [
        world.genres.names[artists.genres[a:b]].tolist()
        for a, b in zip(artists.genre_ptr[:-1], artists.genre_ptr[1:], strict=True)
    ]
    if defects:
        rng = _rng(world.seed, "artist-defects")
        for i in _pick(rng, n, DEFECT_RATES["artist_id_minus_one"]):
            ids[i] = -1
        for i in _pick(rng, n, DEFECT_RATES["artist_genres_null"]):
            genre_lists[i] = None
        if n > 1:
            for i in _pick(rng, n, DEFECT_RATES["artist_duplicate_name"], at_least=1):
                names[i] = names[(i + int(rng.integers(1, n))) % n]  # another artist's name
    for i in range(n):
        yield {"id": ids[i], "name": names[i], "genres": genre_lists[i]}


def _user_records(world: World, defects: bool) -> Iterator[dict]:
    """Users from id 101; with defects null favourites and premium flags, one extra `id: -1`."""
    users = world.users
    n = len(users.name)
    favourites: list = world.genres.names[users.favourites].tolist()
    premium: list = users.premium.tolist()
    extra_id_row = -1
    if defects:
        rng = _rng(world.seed, "user-defects")
        at_least = 1 if n >= 10 else 0
        for i in _pick(rng, n, DEFECT_RATES["user_favourite_genres_null"], at_least):
            favourites[i] = None
        for i in _pick(rng, n, DEFECT_RATES["user_premium_null"], at_least):
            premium[i] = None
        extra_id_row = int(rng.integers(0, n))
    for i in range(n):
        record = {
            "user_id": FIRST_USER_ID + i,
            "name": users.name[i],
            "city": users.city[i],
            "street": users.street[i],
            "favourite_genres": favourites[i],
            "premium_user": premium[i],
        }
        if i == extra_id_row:
            record["id"] = -1
        yield record


def _catalog_rows(world: World, defects: bool) -> tuple[np.ndarray, list[str]]:
    """The track each catalogue row shows, and the row's id.

    With defects, some tracks appear again under a new id with the same (id_artist, name), as
    re-releases do in the real catalogue; sessions only ever play the original ids.
    """
    ids = world.tracks.id.tolist()
    source = np.arange(len(ids))
    if not defects:
        return source, ids
    rng = _rng(world.seed, "track-defects")
    surplus = max(1, round(len(ids) * DEFECT_RATES["track_duplicate"]))
    source = np.concatenate([source, rng.integers(0, len(ids), surplus)])
    ids = ids + _base62_ids(rng, surplus).tolist()
    order = rng.permutation(len(source))
    return source[order], [ids[i] for i in order.tolist()]


def _track_records(world: World, source: np.ndarray, ids: list[str]) -> Iterator[dict]:
    """Catalogue rows, fields in the real order."""
    tracks = world.tracks
    artist_ids = world.artists.id[tracks.artist].tolist()
    popularity, duration = tracks.popularity.tolist(), tracks.duration_ms.tolist()
    explicit = tracks.explicit.tolist()
    for i, track_id in zip(source.tolist(), ids, strict=True):
        record = {
            "id": track_id,
            "name": tracks.name[i],
            "popularity": popularity[i],
            "duration_ms": duration[i],
            "explicit": explicit[i],
            "id_artist": artist_ids[i],
            "release_date": tracks.release_date[i],
        }
        for feature, values in tracks.audio.items():
            record[feature] = values[i]
        yield record


def _storage_records(world: World, source: np.ndarray, ids: list[str]) -> Iterator[dict]:
    """Storage class by popularity, and a daily cost per ms of audio, as in the real data."""
    popularity = world.tracks.popularity.tolist()
    duration = world.tracks.duration_ms.tolist()
    for i, track_id in zip(source.tolist(), ids, strict=True):
        storage_class, cost_per_ms = _storage_class(popularity[i])
        yield {
            "track_id": track_id,
            "storage_class": storage_class,
            "daily_cost": duration[i] * cost_per_ms,
        }


def _storage_class(popularity: int) -> tuple[str, float]:
    """The real rule: popularity up to 70 SLOW, up to 89 MEDIUM, else FAST; cost grows 2x, 10x."""
    if popularity >= 90:
        return "FAST", 5e-07
    if popularity > 70:
        return "MEDIUM", 1e-07
    return "SLOW", 5e-08


def _pick(rng: np.random.Generator, n: int, rate: float, at_least: int = 0) -> np.ndarray:
    """round(n * rate) distinct rows (at least `at_least`), for defects counted per file."""
    count = min(n, max(at_least, round(n * rate)))
    return np.sort(rng.choice(n, size=count, replace=False))


# --------------------------------------------------------------------------------------------
# Writing


def _write_json_lines(path: Path, records: Iterable[dict]) -> int:
    """Write records as JSON lines formatted like the real files (json.dumps defaults)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="ascii") as f:
        count = 0
        for record in records:
            f.write(json.dumps(record) + "\n")
            count += 1
    return count


def _write_sessions(path: Path, world: World, days: list[dt.date], *, defects: bool) -> int:
    """Simulate and write the sessions one day at a time, so memory holds one day only."""
    track_ids = pa.array([*world.tracks.id.tolist(), ""], type=pa.string())  # track -1 -> ""
    count = 0
    with replacing(path) as tmp, open(tmp, "wb") as f:
        for day in days:
            events = simulate_day(world, day)
            n = len(events.t_ms)
            null = _session_nulls(world.seed, day, n) if defects else {}
            # Chunks keep Arrow's 32-bit string offsets and the text buffers small.
            for start in range(0, n, SESSION_CHUNK_ROWS):
                rows = slice(start, start + SESSION_CHUNK_ROWS)
                chunk = events.rows(rows)
                chunk_null = {column: mask[rows] for column, mask in null.items()}
                f.write(_session_lines(chunk, day, track_ids, chunk_null))
            count += n
    return count


def _session_nulls(seed: int, day: dt.date, n: int) -> dict[str, np.ndarray]:
    """Rows of a day whose user_id, track_id or event_type the real delivery would lose."""
    rng = _rng(seed, "session-defects", day.toordinal())
    return {
        column: rng.random(n) < DEFECT_RATES[f"session_{column}_null"]
        for column in ("event_type", "track_id", "user_id")
    }


def _session_lines(
    events: DayEvents, day: dt.date, track_ids: pa.Array, null: dict[str, np.ndarray]
) -> memoryview:
    """A day's events as JSON lines, built by Arrow string kernels instead of a Python loop."""
    n = len(events.t_ms)
    if n == 0:
        return memoryview(b"")
    timestamp = pc.binary_join_element_wise(
        day.isoformat() + "T",
        _clock_texts().take(pa.array(events.t_ms // 1000)),
        _fraction_texts().take(pa.array(events.t_ms % 1000)),
        "",
    )
    track = track_ids.take(pa.array(np.where(events.track < 0, len(track_ids) - 1, events.track)))
    columns = {
        "timestamp": _json_string(timestamp),
        "user_id": _json_int(pa.array(events.user + FIRST_USER_ID, mask=null.get("user_id"))),
        "track_id": _json_string(track, null.get("track_id")),
        "event_type": _json_string(
            pa.array(EVENT_TYPES).take(pa.array(events.event)), null.get("event_type")
        ),
        "session_id": _json_int(pa.array(events.session_id)),
    }
    parts: list = []
    for i, (name, text) in enumerate(columns.items()):
        parts += [("{" if i == 0 else ", ") + json.dumps(name) + ": ", text]
    lines = pc.binary_join_element_wise(*parts, "}\n", "")
    # The lines lie back to back in the string array's data buffer: write that buffer as is.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[n]]


@functools.cache
def _clock_texts() -> pa.Array:
    """'HH:MM:SS' for every second of a day, so that timestamps are formatted by lookup."""
    return pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)])


@functools.cache
def _fraction_texts() -> pa.Array:
    """Python's isoformat fraction per millisecond: none on a whole second, else 6 digits."""
    return pa.array(["", *(f".{ms:03d}000" for ms in range(1, 1000))])


def _json_string(values: pa.Array, null: np.ndarray | None = None) -> pa.Array:
    """JSON text of strings that need no escaping (ids, event names, timestamps), or null."""
    text = pc.binary_join_element_wise('"', values, '"', "")
    if null is not None:
        text = pc.if_else(pa.array(null), pa.scalar(None, pa.string()), text)
    return text.fill_null("null")


def _json_int(values: pa.Array) -> pa.Array:
    """JSON text of integers, or null."""
    return values.cast(pa.string()).fill_null("null")
