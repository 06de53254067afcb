"""The listener's last plays, as the sequence model reads them: built from the features files.

The GRU (``mlcore.models.sequence.build_session_gru``) sees, for a play about to start (or a
candidate track at tomorrow's first session), the user's last ``length`` plays strictly before
that moment, oldest first and left-padded, each with:

- tokens: its track, artist and genre (the artist's first genre), hashed into fixed buckets so
  that a new id needs no vocabulary (0 is the padding token);
- numbers (``STEP_FEATURES``): a flag that the step is real, whether it was skipped (known: it
  ended before this play starts), whether it was in the same session, the hours since it
  started (log1p), and its track's audio attributes.

Everything comes from ``plays.parquet`` (one row per play, with its label) and ``tracks.parquet``
(the catalogue, for a track's artist and genre), so training and scoring build the inputs from
the same rows with the same code: :meth:`History.inputs` for plays in the holdout or the
training period, and for tonight's candidates (session unknown: -1, time: the next midnight).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The track's attributes that each history step carries, beside the flags below.
TRACK_ATTRIBUTES = (
    "danceability",
    "energy",
    "valence",
    "acousticness",
    "speechiness",
    "instrumentalness",
    "liveness",
    "loudness",
    "tempo",
    "duration_ms",
    "track_popularity",
)
STEP_FEATURES = ("present", "skipped", "same_session", "log_hours_ago", *TRACK_ATTRIBUTES)
TOKEN_KINDS = ("track", "artist", "genre")
NO_SESSION = -1  # a candidate's session: not started yet, so no history step shares it


@dataclass(frozen=True)
class HistorySpec:
    """How long a history the model reads and how ids are hashed; part of the version hash."""

    length: int = 20
    track_buckets: int = 4096
    artist_buckets: int = 2048
    genre_buckets: int = 512
    # Plays older than this before the training period are not read: they would only fill
    # the first steps of the earliest training rows, and bound the memory on long histories.
    lookback_days: int = 28

    def buckets(self, kind: str) -> int:
        return {"track": self.track_buckets, "artist": self.artist_buckets}.get(
            kind, self.genre_buckets
        )


def hash_tokens(values, buckets: int) -> np.ndarray:
    """Stable ids in ``[1, buckets)`` for any strings (None → the token of ""); 0 is padding.

    pandas' hash_array uses a fixed key, so a track gets the same token in every process and
    on every machine, which a saved model's embeddings rely on.
    """
    if buckets < 2:
        raise ValueError(f"buckets must be at least 2, got {buckets}")
    arr = pd.Series(values, dtype="object").fillna("").astype(str).to_numpy(dtype=object)
    return (pd.util.hash_array(arr) % np.uint64(buckets - 1) + np.uint64(1)).astype(np.int32)


def _seconds(ts) -> np.ndarray:
    """Timestamps (any datetime64 unit, tz-naive) as float64 seconds since the epoch."""
    return pd.to_datetime(pd.Series(ts)).to_numpy("datetime64[us]").astype(np.int64) / 1e6


class History:
    """Every play of the lookback window, sorted by user and time, ready to be gathered."""

    def __init__(self, plays: pd.DataFrame, tracks: pd.DataFrame, spec: HistorySpec):
        """``plays``: user_id, session_id, track_id, timestamp, label_skipped and the
        TRACK_ATTRIBUTES; ``tracks``: track_id, artist_id, genre (the catalogue)."""
        self.spec = spec
        catalogue = tracks.drop_duplicates("track_id").set_index("track_id")
        self._artist = catalogue["artist_id"]
        self._genre = catalogue["genre"]
        order = np.lexsort((_seconds(plays["timestamp"]), plays["user_id"].to_numpy()))
        p = plays.iloc[order].reset_index(drop=True)
        self.user = p["user_id"].to_numpy(np.int64)
        self.session = p["session_id"].to_numpy(np.int64)
        self.time = _seconds(p["timestamp"])
        self.tokens = self._tokens(p["track_id"])  # (n, 3)
        steps = np.zeros((len(p), len(STEP_FEATURES)), dtype=np.float32)
        steps[:, 0] = 1.0
        steps[:, 1] = p["label_skipped"].to_numpy(np.float32)
        steps[:, 4:] = p[list(TRACK_ATTRIBUTES)].to_numpy(np.float32)
        self.steps = steps  # same_session and log_hours_ago depend on the query: filled later
        # One sortable key per (user, time): users by rank, times by rank among all times.
        self._times = np.unique(self.time)
        self._users = np.unique(self.user)
        self._key = self._query_key(self.user, self.time)

    @classmethod
    def read(cls, plays_path: Path, tracks_path: Path, spec: HistorySpec, since=None) -> History:
        """From the features files; only the plays at or after ``since`` (a timestamp)."""
        columns = ["user_id", "session_id", "track_id", "timestamp", "label_skipped"]
        filters = None if since is None else pc.field("timestamp") >= since
        plays = pq.read_table(
            plays_path, columns=[*columns, *TRACK_ATTRIBUTES], filters=filters
        ).to_pandas()
        tracks = pq.read_table(tracks_path, columns=["track_id", "artist_id", "genre"]).to_pandas()
        return cls(plays, tracks, spec)

    def _tokens(self, track_ids: pd.Series) -> np.ndarray:
        track_ids = pd.Series(track_ids).reset_index(drop=True)
        values = {
            "track": track_ids,
            "artist": track_ids.map(self._artist),
            "genre": track_ids.map(self._genre),
        }
        return np.stack([hash_tokens(values[k], self.spec.buckets(k)) for k in TOKEN_KINDS], axis=1)

    def _query_key(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        """A key that sorts like (user, time): plays of a user at or after ``time`` sort after."""
        user_rank = np.searchsorted(self._users, users)
        # A user we have never seen gets a rank no play has (its history is empty).
        unknown = (user_rank >= len(self._users)) | (
            self._users[np.minimum(user_rank, len(self._users) - 1)] != users
        )
        time_rank = np.searchsorted(self._times, times, side="left")
        key = user_rank.astype(np.int64) * (len(self._times) + 2) + time_rank
        return np.where(unknown, -1, key)

    def inputs(self, users, times, sessions, track_ids) -> dict[str, np.ndarray]:
        """The model's history inputs for queries (user, moment, session, track about to play).

        Returns ``history_tokens`` (n, length, 3) int32, ``history_steps`` (n, length, F)
        float32, oldest step first, padded on the left with zeros; and ``query_tokens`` (n, 3).
        Only plays strictly before each moment are used: a play never sees itself or a later one.
        """
        users = np.asarray(users, dtype=np.int64)
        times = (
            _seconds(times)
            if not np.issubdtype(np.asarray(times).dtype, np.floating)
            else (np.asarray(times, dtype=np.float64))
        )
        sessions = np.asarray(sessions, dtype=np.int64)
        n, length = len(users), self.spec.length
        key = self._query_key(users, times)
        known = key >= 0
        user_rank = np.searchsorted(self._users, users)
        start_key = user_rank.astype(np.int64) * (len(self._times) + 2)
        end = np.searchsorted(self._key, key, side="left")  # first play at or after the moment
        begin = np.searchsorted(self._key, start_key, side="left")  # the user's first play
        # Step j of a query (0 = oldest) is the play at end - length + j, when it is the user's.
        idx = end[:, None] - length + np.arange(length)[None, :]
        valid = known[:, None] & (idx >= begin[:, None]) & (idx < end[:, None])
        safe = np.where(valid, idx, 0)
        tokens = np.where(valid[..., None], self.tokens[safe], 0).astype(np.int32)
        steps = np.where(valid[..., None], self.steps[safe], 0.0).astype(np.float32)
        same = (self.session[safe] == sessions[:, None]) & (sessions[:, None] != NO_SESSION)
        steps[..., 2] = np.where(valid, same, 0.0)
        hours = np.maximum(times[:, None] - self.time[safe], 0.0) / 3600.0
        steps[..., 3] = np.where(valid, np.log1p(hours), 0.0)
        return {
            "history_tokens": tokens,
            "history_steps": steps,
            "query_tokens": self._tokens(pd.Series(track_ids)) if n else np.zeros((0, 3), np.int32),
        }
