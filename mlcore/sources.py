"""Declared schemas of the raw deliveries: what each file must hold, typed once, never guessed.

A source is what the business drops under ``lake/raw/<source>/ds=YYYY-MM-DD/``. Each of its
tables lands in ``raw.<source>_<table>`` with the declared columns plus lineage columns:
``_source_file``, ``_line`` (1-based line of the record in its file), ``_ingested_at``, ``ds``
(the delivery date) and, for JSONL, ``_extra_keys`` (keys the schema does not declare).
"""

from __future__ import annotations

from dataclasses import dataclass, field

LINEAGE_COLUMNS = ("_source_file", "_line", "_ingested_at", "ds")


@dataclass(frozen=True)
class TableSpec:
    name: str
    file: str
    columns: dict[str, str]  # column -> DuckDB type
    key: tuple[str, ...]
    kind: str = "snapshot"  # snapshot: each delivery replaces the table; event: keyed by ds
    format: str = "jsonl"  # jsonl | csv
    csv_header: bool = True
    csv_delimiter: str = ","

    def __post_init__(self):
        assert self.kind in ("snapshot", "event"), self.kind
        assert self.format in ("jsonl", "csv"), self.format


@dataclass(frozen=True)
class SourceSpec:
    name: str
    tables: tuple[TableSpec, ...]
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"source {self.name!r} has no table {name!r}")

    def raw_table(self, name: str) -> str:
        return f"raw.{self.name}_{self.table(name).name}"


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

POZYTYWKA = SourceSpec(
    name="pozytywka",
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
)

SOURCES: dict[str, SourceSpec] = {s.name: s for s in (POZYTYWKA,)}


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
