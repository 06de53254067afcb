"""The feature columns of music_skip: the contract between sql/music_skip/ and the trainer.

Every feature is known before the play starts (nothing from during or after it: a LIKE during
the play would leak the label). All are numeric and never null; the SQL imputes.
"""

ID_COLUMNS = ("session_id", "user_id", "track_id", "timestamp")
LABEL = "label_skipped"  # 1 when a SKIP of the same track follows the PLAY before the next PLAY

FEATURES = (
    # the listener's history strictly before this play
    "user_prior_plays",
    "user_prior_skip_rate",  # smoothed towards the global rate when the history is short
    # taste: overlap between the user's favourite genres and the artist's genres
    "genre_overlap",
    "genre_overlap_share",
    # the track
    "track_popularity",
    "track_prior_plays",
    "track_prior_skip_rate",
    "duration_ms",
    "explicit",
    "release_year",
    "danceability",
    "energy",
    "key",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    # the moment
    "hour",
    "weekday",
    "premium",
    "ad_before",
    "position_in_session",
    "prev_skipped",
    # the session so far (sql/music_skip/01)
    "like_before",
    "session_prior_skips",
    "secs_since_prev_event",  # -1: the session's first event
    "prev_played_share",  # -1: no previous play; about 1 when it was heard in full
    # the listener's history, in time order (03): no play sees its own label or a later one
    "artist_prior_skip_rate",
    "user_genre_prior_skip_rate",
    "user_recent_skip_rate",  # the last 5 plays
    "user_prior_sessions",
    "user_tenure_days",
    # taste: nearer to what this user skips (> 0) or to what they hear in full (< 0)
    "taste_danceability",
    "taste_valence",
    "taste_energy",
    "taste_acousticness",
    "taste_speechiness",
    "taste_duration_ms",
)
