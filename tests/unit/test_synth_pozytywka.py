"""The synthetic Pozytywka generator: real schema, determinism, day-by-day continuity, defects
at their real rates, a 34% skip rate and a skip label that depends on the user's taste."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from mlcore.synth.pozytywka import DEFECT_RATES, FILES, write_delivery

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pozytywka"
DS = dt.date(2023, 3, 31)
USERS, DAYS, SEED = 200, 30, 7
ID22 = re.compile(r"^[0-9A-Za-z]{22}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$")
RELEASE_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
EVENTS = {"PLAY", "SKIP", "LIKE", "ADVERTISEMENT", "BUY_PREMIUM"}


def folder(root: Path, ds: dt.date = DS) -> Path:
    return root / "raw" / "pozytywka" / f"ds={ds.isoformat()}"


def read(root: Path, name: str, ds: dt.date = DS) -> list[dict]:
    with open(folder(root, ds) / name, encoding="ascii") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("clean")
    return root, write_delivery(root, DS, users=USERS, days=DAYS, seed=SEED)


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("defective")
    return root, write_delivery(root, DS, users=USERS, days=DAYS, seed=SEED, defects=True)


@pytest.fixture(scope="module")
def tables(clean) -> dict[str, list[dict]]:
    root, _ = clean
    return {name.removesuffix(".jsonl"): read(root, name) for name in FILES}


@pytest.fixture(scope="module")
def bad_tables(defective) -> dict[str, list[dict]]:
    root, _ = defective
    return {name.removesuffix(".jsonl"): read(root, name) for name in FILES}


def play_labels(sessions: list[dict]) -> list[tuple[dict, bool]]:
    """(PLAY event, skipped) by the README's rule: a SKIP of the same track in the same session
    follows the play before the next PLAY. Events are in file order within a session."""
    labels: list[list] = []
    current: dict[int, list] = {}  # session -> [play, skipped] of its latest PLAY
    for event in sessions:
        if event["event_type"] == "PLAY":
            current[event["session_id"]] = [event, False]
            labels.append(current[event["session_id"]])
        elif event["event_type"] == "SKIP":
            last = current.get(event["session_id"])
            if last and last[0]["track_id"] == event["track_id"]:
                last[1] = True
    return [(play, skipped) for play, skipped in labels]


def test_writes_the_five_files_and_returns_their_row_counts(clean):
    root, counts = clean
    assert sorted(p.name for p in folder(root).iterdir()) == sorted(FILES)
    for name in FILES:
        assert counts[name] == len((folder(root) / name).read_text().splitlines())
    assert counts["users.jsonl"] == USERS
    assert counts["tracks.jsonl"] == counts["track_storage.jsonl"] == 4_000  # 20 per user
    assert counts["artists.jsonl"] == 2_000
    # About 3.3 events per user and day.
    assert 2.8 < counts["sessions.jsonl"] / (USERS * DAYS) < 3.8


def test_fields_types_and_formats_match_the_real_files(tables):
    artist = tables["artists"][0]
    assert list(artist) == ["id", "name", "genres"]
    track = tables["tracks"][0]
    assert list(track) == [
        *("id", "name", "popularity", "duration_ms", "explicit", "id_artist", "release_date"),
        *("danceability", "energy", "key", "loudness", "speechiness", "acousticness"),
        *("instrumentalness", "liveness", "valence", "tempo"),
    ]
    for a in tables["artists"]:
        assert ID22.match(a["id"]) and a["name"] and a["genres"] == sorted(a["genres"])
    for t in tables["tracks"]:
        assert ID22.match(t["id"]) and ID22.match(t["id_artist"])
        assert RELEASE_DATE.match(t["release_date"])
        assert isinstance(t["popularity"], int) and 0 <= t["popularity"] <= 100
        assert isinstance(t["duration_ms"], int) and t["explicit"] in (0, 1)
        assert isinstance(t["key"], int) and 0 <= t["key"] <= 11
        for feature in ("danceability", "energy", "loudness", "valence", "tempo"):
            assert isinstance(t[feature], float)
    assert {len(t["release_date"]) for t in tables["tracks"]} == {4, 7, 10}

    users = tables["users"]
    assert list(users[0]) == [
        "user_id",
        "name",
        "city",
        "street",
        "favourite_genres",
        "premium_user",
    ]
    assert [u["user_id"] for u in users] == list(range(101, 101 + USERS))
    assert all(len(u["favourite_genres"]) == 3 for u in users)
    assert {u["premium_user"] for u in users} == {True, False}

    storage = tables["track_storage"]
    assert list(storage[0]) == ["track_id", "storage_class", "daily_cost"]
    assert [s["track_id"] for s in storage] == [t["id"] for t in tables["tracks"]]
    assert {s["storage_class"] for s in storage} <= {"SLOW", "MEDIUM", "FAST"}
    assert all(isinstance(s["daily_cost"], float) and s["daily_cost"] > 0 for s in storage)

    sessions = tables["sessions"]
    assert list(sessions[0]) == ["timestamp", "user_id", "track_id", "event_type", "session_id"]
    stamps = [e["timestamp"] for e in sessions]
    assert all(TIMESTAMP.match(s) for s in stamps)
    assert {len(s) for s in stamps} == {19, 26}  # with and without microseconds, as real
    assert {e["event_type"] for e in sessions} == EVENTS
    assert all(isinstance(e["user_id"], int) and isinstance(e["session_id"], int) for e in sessions)


def test_key_order_and_json_types_equal_the_real_sample(tables):
    if not SAMPLE.exists():
        pytest.skip(f"real data sample not available: {SAMPLE} is absent")
    real_files = {
        "artists": SAMPLE / "v1" / "artists.jsonl",
        "tracks": SAMPLE / "catalog" / "tracks.jsonl",
        "users": SAMPLE / "v1" / "users.jsonl",
        "sessions": SAMPLE / "v1" / "sessions.jsonl",
        "track_storage": SAMPLE / "v1" / "track_storage.jsonl",
    }
    for table, path in real_files.items():
        real = [json.loads(line) for line in path.read_text().splitlines()[:2000]]
        assert list(tables[table][0]) == list(real[0]), table
        for key in real[0]:
            real_types = {type(r[key]).__name__ for r in real if r.get(key) is not None}
            ours = {type(r[key]).__name__ for r in tables[table][:2000]}
            assert ours <= real_types, (table, key, ours, real_types)


def test_clean_delivery_is_consistent_and_has_no_defects(tables):
    artists, tracks, users = tables["artists"], tables["tracks"], tables["users"]
    sessions = tables["sessions"]
    assert len({a["id"] for a in artists}) == len(artists)
    assert len({a["name"] for a in artists}) == len(artists)
    assert all(a["genres"] for a in artists)
    assert len({t["id"] for t in tracks}) == len(tracks)
    assert len({(t["id_artist"], t["name"]) for t in tracks}) == len(tracks)
    assert {t["id_artist"] for t in tracks} == {a["id"] for a in artists}
    assert all(u["favourite_genres"] and u["premium_user"] is not None for u in users)
    assert all("id" not in u for u in users)
    assert all(None not in e.values() for e in sessions)
    track_ids = {t["id"] for t in tracks}
    for e in sessions:
        if e["event_type"] in ("ADVERTISEMENT", "BUY_PREMIUM"):
            assert e["track_id"] == ""
        else:
            assert e["track_id"] in track_ids
    # Tracks repeat across users: the popular ones are played by many.
    listeners = Counter(track for track, _ in {(e["track_id"], e["user_id"]) for e in sessions})
    assert listeners.most_common(1)[0][1] >= 20


def test_sessions_lie_in_the_window_follow_the_event_model_and_have_unique_ids(tables):
    sessions = tables["sessions"]
    first = DS - dt.timedelta(days=DAYS - 1)
    days = {e["timestamp"][:10] for e in sessions}
    assert min(days) >= first.isoformat() and max(days) <= DS.isoformat()
    owner: dict[int, tuple[int, str]] = {}
    last: dict[int, dict] = {}
    play: dict[int, dict] = {}
    for e in sessions:
        sid = e["session_id"]
        # A session belongs to one user and one day; its events are in time order.
        assert owner.setdefault(sid, (e["user_id"], e["timestamp"][:10])) == (
            e["user_id"],
            e["timestamp"][:10],
        )
        if sid in last:
            assert e["timestamp"] >= last[sid]["timestamp"]
        else:
            assert e["event_type"] == "PLAY"  # sessions open with a track
        if e["event_type"] == "PLAY":
            play[sid] = e
        elif e["event_type"] in ("SKIP", "LIKE"):
            assert play[sid]["track_id"] == e["track_id"]  # during the current play
        last[sid] = e
    # Session ids are unique across days and users: one (user, day) per id.
    assert len(owner) == len({e["session_id"] for e in sessions})


def test_writing_twice_gives_identical_bytes(clean, tmp_path):
    root, _ = clean
    write_delivery(tmp_path, DS, users=USERS, days=DAYS, seed=SEED)
    for name in FILES:
        assert (folder(tmp_path) / name).read_bytes() == (folder(root) / name).read_bytes(), name


def test_another_seed_gives_another_world(clean, tmp_path):
    root, _ = clean
    write_delivery(tmp_path, DS, users=USERS, days=1, seed=SEED + 1)
    assert (folder(tmp_path) / "users.jsonl").read_bytes() != (
        folder(root) / "users.jsonl"
    ).read_bytes()


@pytest.mark.parametrize("defects", [False, True])
@pytest.mark.parametrize("day", [DS, DS - dt.timedelta(days=11)])
def test_a_one_day_delivery_equals_that_day_of_a_longer_one(
    clean, defective, tmp_path, defects, day
):
    root, _ = defective if defects else clean
    write_delivery(tmp_path, day, users=USERS, days=1, seed=SEED, defects=defects)
    for name in FILES:
        if name != "sessions.jsonl":  # the same world, whatever the date and window
            assert (folder(tmp_path, day) / name).read_bytes() == (folder(root) / name).read_bytes()
    prefix = f'{{"timestamp": "{day.isoformat()}T'.encode()
    longer = [line for line in (folder(root) / "sessions.jsonl").read_bytes().splitlines()]
    one_day = (folder(tmp_path, day) / "sessions.jsonl").read_bytes().splitlines()
    assert one_day and one_day == [line for line in longer if line.startswith(prefix)]


def test_the_next_day_continues_the_same_world(clean, tmp_path):
    root, _ = clean
    next_day = DS + dt.timedelta(days=1)
    write_delivery(tmp_path, next_day, users=USERS, days=1, seed=SEED)
    for name in ("artists.jsonl", "tracks.jsonl", "users.jsonl", "track_storage.jsonl"):
        assert (folder(tmp_path, next_day) / name).read_bytes() == (
            folder(root) / name
        ).read_bytes()
    earlier = {e["session_id"] for e in read(root, "sessions.jsonl")}
    later = read(tmp_path, "sessions.jsonl", next_day)
    assert {e["timestamp"][:10] for e in later} == {next_day.isoformat()}
    assert earlier.isdisjoint(e["session_id"] for e in later)


def test_skip_rate_is_near_the_real_34_percent(tables):
    labels = play_labels(tables["sessions"])
    rate = sum(skipped for _, skipped in labels) / len(labels)
    assert 0.29 < rate < 0.39, rate


def test_skips_depend_on_genre_overlap_and_on_a_skip_just_before(tables):
    artist_genres = {a["id"]: set(a["genres"]) for a in tables["artists"]}
    track_genres = {t["id"]: artist_genres[t["id_artist"]] for t in tables["tracks"]}
    favourites = {u["user_id"]: set(u["favourite_genres"]) for u in tables["users"]}
    by_overlap: dict[bool, list[bool]] = {False: [], True: []}
    after: dict[bool, list[bool]] = {False: [], True: []}
    previous: dict[int, bool] = {}
    for play, skipped in play_labels(tables["sessions"]):
        shared = bool(favourites[play["user_id"]] & track_genres[play["track_id"]])
        by_overlap[shared].append(skipped)
        if play["session_id"] in previous:
            after[previous[play["session_id"]]].append(skipped)
        previous[play["session_id"]] = skipped

    def rate(values: list[bool]) -> float:
        return sum(values) / len(values)

    assert min(len(v) for v in by_overlap.values()) > 1_000
    assert rate(by_overlap[False]) > rate(by_overlap[True]) + 0.15
    assert rate(after[True]) > rate(after[False]) + 0.15


def test_defects_are_those_of_the_real_delivery_at_their_rates(bad_tables):
    artists, tracks, users = bad_tables["artists"], bad_tables["tracks"], bad_tables["users"]
    sessions, storage = bad_tables["sessions"], bad_tables["track_storage"]
    n = len(artists)
    assert sum(a["id"] == -1 for a in artists) == round(n * DEFECT_RATES["artist_id_minus_one"])
    assert sum(a["genres"] is None for a in artists) == round(
        n * DEFECT_RATES["artist_genres_null"]
    )
    assert 1 <= n - len({a["name"] for a in artists}) <= 5

    assert 1 <= sum(u["favourite_genres"] is None for u in users) == round(USERS * 0.1)
    assert 1 <= sum(u["premium_user"] is None for u in users) == round(USERS * 0.02)
    assert [u.get("id") for u in users if "id" in u] == [-1]

    pairs = Counter((t["id_artist"], t["name"]) for t in tracks)
    surplus = sum(c - 1 for c in pairs.values())
    assert surplus == round(4_000 * DEFECT_RATES["track_duplicate"]) == len(tracks) - 4_000
    assert len({t["id"] for t in tracks}) == len(tracks)  # duplicates carry new ids
    assert [s["track_id"] for s in storage] == [t["id"] for t in tracks]

    rows = len(sessions)
    for column in ("event_type", "track_id", "user_id"):
        share = sum(e[column] is None for e in sessions) / rows
        assert abs(share - DEFECT_RATES[f"session_{column}_null"]) < 0.008, (column, share)
    assert any(e["track_id"] == "" for e in sessions)  # ads keep their legitimate ""


def test_defects_leave_the_events_as_they_were(clean, defective):
    """Defects damage the delivery, not the behaviour: the same events, some fields nulled."""
    clean_sessions = read(clean[0], "sessions.jsonl")
    bad_sessions = read(defective[0], "sessions.jsonl")
    assert len(clean_sessions) == len(bad_sessions)
    for good, bad in zip(clean_sessions, bad_sessions, strict=True):
        assert all(bad[k] is None or bad[k] == good[k] for k in good)


def test_rejects_nonsense_arguments(tmp_path):
    with pytest.raises(ValueError, match="users and days"):
        write_delivery(tmp_path, DS, users=0)
    with pytest.raises(ValueError, match="seed"):
        write_delivery(tmp_path, DS, seed=-1)
