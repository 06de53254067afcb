"""The sequence model's inputs on hand-made sessions: the right plays, in order, and no leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcore.pipelines.music_skip.history import (
    NO_SESSION,
    STEP_FEATURES,
    TRACK_ATTRIBUTES,
    History,
    HistorySpec,
    hash_tokens,
)

STEP = {name: i for i, name in enumerate(STEP_FEATURES)}
T0 = pd.Timestamp("2023-03-01 10:00:00")


def _plays(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user_id, session_id, track_id, minutes after T0, skipped)."""
    df = pd.DataFrame(rows, columns=["user_id", "session_id", "track_id", "minutes", "label"])
    out = pd.DataFrame(
        {
            "user_id": df["user_id"],
            "session_id": df["session_id"],
            "track_id": df["track_id"],
            "timestamp": T0 + pd.to_timedelta(df["minutes"], unit="min"),
            "label_skipped": df["label"],
        }
    )
    for i, name in enumerate(TRACK_ATTRIBUTES):
        out[name] = np.arange(len(df), dtype=float) + i / 100  # row-identifying values
    return out


TRACKS = pd.DataFrame(
    {
        "track_id": ["a", "b", "c", "d"],
        "artist_id": ["x", "x", "y", None],
        "genre": ["rock", "rock", None, "jazz"],
    }
)


def _history(plays: pd.DataFrame, length: int = 4) -> History:
    return History(plays, TRACKS, HistorySpec(length=length))


def _query(history: History, plays: pd.DataFrame, row: int) -> dict:
    p = plays.iloc[[row]]
    return history.inputs(p["user_id"], p["timestamp"], p["session_id"], p["track_id"])


def test_history_is_the_earlier_plays_oldest_first_left_padded():
    plays = _plays(
        [
            (1, 10, "a", 0, 1),
            (1, 10, "b", 3, 0),
            (1, 11, "c", 120, 1),  # a later session of the same user
            (2, 20, "a", 1, 0),  # another user, in between
        ]
    )
    x = _query(_history(plays), plays, 2)
    steps, tokens = x["history_steps"][0], x["history_tokens"][0]
    assert x["history_steps"].shape == (1, 4, len(STEP_FEATURES))
    # two padding steps, then a (oldest), then b
    assert steps[:2].tolist() == np.zeros((2, len(STEP_FEATURES))).tolist()
    assert tokens[:2].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert steps[2:, STEP["present"]].tolist() == [1.0, 1.0]
    assert steps[2:, STEP["skipped"]].tolist() == [1.0, 0.0]
    assert steps[2:, STEP["same_session"]].tolist() == [0.0, 0.0]  # session 11 is new
    hours = np.expm1(steps[2:, STEP["log_hours_ago"]])
    np.testing.assert_allclose(hours, [120 / 60, 117 / 60], rtol=1e-5)
    # the track attributes are the earlier plays' own (rows 0 and 1), not user 2's
    np.testing.assert_allclose(steps[2:, STEP["danceability"]], [0.0, 1.0])
    assert tokens[2].tolist() == [
        hash_tokens(["a"], 4096)[0],
        hash_tokens(["x"], 2048)[0],
        hash_tokens(["rock"], 512)[0],
    ]
    assert x["query_tokens"][0].tolist() == [
        hash_tokens(["c"], 4096)[0],
        hash_tokens(["y"], 2048)[0],
        hash_tokens([None], 512)[0],  # an artist without genre: the token of ""
    ]


def test_same_session_flag_and_truncation_to_the_last_plays():
    plays = _plays([(1, 10 if i < 4 else 11, "a", i, i % 2) for i in range(7)])
    x = _query(_history(plays, length=4), plays, 6)
    steps = x["history_steps"][0]
    np.testing.assert_allclose(steps[:, STEP["danceability"]], [2, 3, 4, 5])  # plays 2..5
    assert steps[:, STEP["same_session"]].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert steps[:, STEP["skipped"]].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_no_play_sees_its_own_label_or_a_later_one():
    plays = _plays([(1, 10, "abcd"[i % 4], i, i % 2) for i in range(8)])
    before = _history(plays, length=8)
    flipped = plays.copy()
    flipped.loc[5:, "label_skipped"] = 1 - flipped.loc[5:, "label_skipped"]
    flipped.loc[5:, list(TRACK_ATTRIBUTES)] = -99.0
    after = _history(flipped, length=8)
    for row in range(6):  # plays 0..5 only ever see plays 0..4
        a, b = _query(before, plays, row), _query(after, flipped, row)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        assert a["history_steps"][0, :, STEP["present"]].sum() == row


def test_plays_at_the_same_moment_do_not_see_each_other():
    plays = _plays([(1, 10, "a", 0, 1), (1, 10, "b", 5, 1), (1, 10, "c", 5, 0)])
    history = _history(plays)
    for row in (1, 2):
        x = _query(history, plays, row)
        assert x["history_steps"][0, :, STEP["present"]].sum() == 1  # only the play at 0


def test_candidates_of_unknown_users_and_new_sessions():
    plays = _plays([(1, 10, "a", 0, 1), (1, 10, "b", 3, 0)])
    x = _history(plays).inputs(
        [1, 99], [T0 + pd.Timedelta(days=1)] * 2, [NO_SESSION] * 2, ["c", "zzz"]
    )
    assert x["history_steps"][0, :, STEP["present"]].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert x["history_steps"][0, :, STEP["same_session"]].sum() == 0  # a session not begun
    assert not x["history_steps"][1].any() and not x["history_tokens"][1].any()  # unknown
    assert (x["query_tokens"][1] > 0).all()  # a track not in the catalogue still gets tokens


def test_hash_tokens_are_stable_in_range_and_never_padding():
    tokens = hash_tokens(["a", "b", None, "", "a"], 7)
    assert tokens.dtype == np.int32
    assert ((tokens >= 1) & (tokens < 7)).all()
    assert tokens[0] == tokens[4] and tokens[2] == tokens[3]
    # pinned: a saved model's embeddings depend on these ids staying the same everywhere
    assert hash_tokens(["2PmGtDUyJIpYBEtI1hQIVp", "rock"], 4096).tolist() == [160, 2386]
    with pytest.raises(ValueError, match="at least 2"):
        hash_tokens(["a"], 1)


def test_the_hindsight_ceiling_reads_only_the_holdout():
    from mlcore.pipelines.music_skip.ceiling import ATTRIBUTES, hindsight_ceiling

    n = 100
    rng = np.random.default_rng(0)
    plays = pd.DataFrame(
        {
            "user_id": np.tile([1, 2], n // 2),
            "timestamp": T0 + pd.to_timedelta(np.arange(n), unit="min"),
            **{a: rng.random(n) for a in ATTRIBUTES},
        }
    )
    # in the holdout (the last 20 plays) user 1 always skips and user 2 never does; before it,
    # the other way round: a reference that read the training period would score 0 accuracy
    late = np.arange(n) >= 80
    plays["label_skipped"] = np.where(late, plays["user_id"] == 1, plays["user_id"] == 2)
    plays["label_skipped"] = plays["label_skipped"].astype(int)
    ceiling = hindsight_ceiling(plays, test_share=0.2)
    assert ceiling["user_rate_in_hindsight"]["n"] == 20
    assert ceiling["user_rate_in_hindsight"]["accuracy"] == 1.0
    assert ceiling["user_rate_in_hindsight"]["roc_auc"] == 1.0
    assert set(ceiling) == {
        "user_rate_in_hindsight",
        "user_x_random_in_hindsight",
        *(f"user_x_{a}_in_hindsight" for a in ATTRIBUTES),
    }
