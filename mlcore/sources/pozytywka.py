"""pozytywka: the Pozytywka music service's deliveries (JSONL): catalogue snapshots and sessions.

Staged by ``sql/pozytywka/`` into ``staging.pozytywka_*`` for every pipeline that reads it
(music_skip today). Real samples: ``../shared/data/pozytywka`` (``v1``, the first delivery with
its real defects; ``v2-variant01``, a larger delivery of 10,229 plays), both with the corrected
catalogue's tracks (``catalog/tracks.jsonl``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlcore.sources import Option, SourceSpec, TableSpec

NAME = "pozytywka"
SAMPLE_VARIANTS = ("v1", "v2-variant01")

_AUDIO = {
    c: "double"
    for c in [
        "danceability",
        "energy",
        "loudness",
        "speechiness",
        "acousticness",
        "instrumentalness",
        "liveness",
        "valence",
        "tempo",
    ]
}

SOURCE = SourceSpec(
    name=NAME,
    doc="Pozytywka music service: catalogue snapshots and the listening sessions since the "
    "last delivery (JSONL).",
    tables=(
        TableSpec(
            "artists",
            "artists.jsonl",
            # ids are strings, but the v1 delivery writes the integer -1 for unknown artists:
            # reading them as text keeps those rows so that validation can count them.
            {"id": "varchar", "name": "varchar", "genres": "varchar[]"},
            key=("id",),
        ),
        TableSpec(
            "tracks",
            "tracks.jsonl",
            {
                "id": "varchar",
                "name": "varchar",
                "popularity": "integer",
                "duration_ms": "integer",
                "explicit": "integer",
                "id_artist": "varchar",
                "release_date": "varchar",  # YYYY, YYYY-MM or YYYY-MM-DD
                "key": "integer",
                **_AUDIO,
            },
            key=("id",),
        ),
        TableSpec(
            "users",
            "users.jsonl",
            {
                "user_id": "integer",
                "name": "varchar",
                "city": "varchar",
                "street": "varchar",
                "favourite_genres": "varchar[]",
                "premium_user": "boolean",
            },
            key=("user_id",),
        ),
        TableSpec(
            "sessions",
            "sessions.jsonl",
            {
                "timestamp": "timestamp",
                "user_id": "integer",
                "track_id": "varchar",
                "event_type": "varchar",
                "session_id": "bigint",
            },
            key=("session_id", "timestamp", "event_type", "track_id"),
            kind="event",
        ),
        TableSpec(
            "track_storage",
            "track_storage.jsonl",
            {"track_id": "varchar", "storage_class": "varchar", "daily_cost": "double"},
            key=("track_id",),
        ),
    ),
    synth="mlcore.synth.pozytywka:write_delivery",
    synth_options=(
        Option("users", int, 200, "listeners"),
        Option("days", int, 30, "days of sessions up to --ds"),
        Option("defects", bool, False, "inject the real v1 defects"),
    ),
    sample="mlcore.sources.pozytywka:stage_sample",
    sample_ds="2023-03-27",
    sample_options=(
        Option("variant", str, "v1", f"which real delivery: {', '.join(SAMPLE_VARIANTS)}"),
    ),
    # A month of history with the real defects, then one more night.
    test_nights=(
        {"users": 80, "days": 21, "defects": True},
        {"users": 80, "days": 1, "defects": True},
    ),
    demo_nights=(
        {"users": 300, "days": 30, "defects": True},
        {"users": 300, "days": 1, "defects": True},
    ),
)
POZYTYWKA = SOURCE


def stage_sample(lake, ds: dt.date, data: Path, *, variant: str = "v1") -> list[str]:
    """Put a real Pozytywka delivery (``data/pozytywka/<variant>``) in the lake as ``ds``.

    Every variant is delivered with the corrected catalogue's tracks (its README says so).
    """
    from mlcore.lake import raw_prefix

    if variant not in SAMPLE_VARIANTS:
        raise ValueError(
            f"pozytywka sample variant must be one of {SAMPLE_VARIANTS}, got {variant!r}"
        )
    folder = Path(data) / NAME / variant
    files = sorted(folder.glob("*.jsonl"))
    files.append(Path(data) / NAME / "catalog" / "tracks.jsonl")
    missing = [str(f) for f in files if not f.exists()]
    if missing or len(files) < 2:
        raise FileNotFoundError(f"pozytywka sample incomplete: missing {missing or folder}")
    keys = []
    for f in files:
        key = f"{raw_prefix(NAME, ds)}/{f.name}"
        lake.put_file(f, key)
        keys.append(lake.url(key))
    return keys
