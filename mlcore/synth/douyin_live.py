"""Synthetic Douyin live-room exports: per-minute metrics of e-commerce live rooms.

A delivery is one CSV per room, ``<out>/raw/douyin_live/ds=<ds>/room=<room_id>/
live_metrics_<room_id>_<ds>.csv``, formatted as the platform's pandas export (see
``../shared/data/README.md``, douyin-live, and its ``predict.csv``): an unnamed index column first
(the header begins with a comma), two Python dict literals of viewers per traffic channel
(single quotes, the real Chinese channel names in the real order, quoted by csv), then the counts:
COMMENT_CNT and ONLINE_USER_CNT written as ints (``19``), the others as floats (``19.0``), and
``date_time`` as ``YYYY-MM-DD HH:MM:SS`` in China time. One row per minute while the room is live,
none while it is offline. Room ids are 19 digits, as Douyin's are.

How the data are made:

* A room (its id, size, schedule, audience and shop) depends only on ``(seed, room index)``; the
  minutes of one calendar day depend only on the room, the seed and that day (its own random
  streams), and slow state (trend, level) is a function of the day's ordinal, not of the window
  asked. So the delivery of day D+1 with ``days=1`` continues the one of day D with ``days=28``
  minute for minute, and overlapping deliveries agree.
* Schedules: evening rooms (about 19:00-23:00), two-session rooms (morning and afternoon/evening),
  daytime rooms, late rooms whose session runs past midnight (into the next day's file rows), and
  rooms live nearly around the clock with a few breaks. Starts jitter by tens of minutes from day
  to day, sometimes by hours; rooms skip days (more often at the Spring Festival, business rooms at
  weekends) and have rare dead days (live, almost no viewers).
* WATCH_UCNT (viewers entering per minute) is negative binomial (Poisson of a gamma-shocked
  intensity). The log intensity adds: the room's size (a few viewers a minute to thousands), a slow
  trend (two sinusoids of periods weeks to years), level shifts (a new audience level at random
  days, about one per two months), the day type (days off per China's calendar from ``holidays``:
  weekend effect per room, statutory holidays lift the daytime and lower the evening, the Spring
  Festival lowers everything), shopping festivals (11.11 with its run-up from October 20th, 6.18,
  12.12, National Day week), the time of day (night trough, noon bump, evening peak), the session
  shape (ramp-up after the start, a wind-down, short peaks such as flash sales), a smooth AR(1)
  noise and paid campaigns (an hour or so of paid traffic in the paid channels, which the room's
  WATCH_UCNT includes).
* The channel dicts are drawn around the same shocked intensity, split by the room's channel mix
  (关注 and 直播推荐 dominate, as in the sample), so their totals track WATCH_UCNT without equalling
  it; 全部自然流量 and 全部付费流量 are the sums of the other keys of their dict, as in the sample.
  ONLINE_USER_CNT is a noisy snapshot of the viewers present (entries decaying with the room's mean
  stay of a few minutes), LEAVE_UCNT the leavers; comments, new fans and fan-club joins follow the
  audience, orders the viewers present, PAY_ORDER_GMV (in fen, whole yuan) sums the prices of the
  room's few products, and UV_VALUE = GMV // ONLINE_USER_CNT, as in the sample. A session's first
  minute is often all zeros, as the sample's is. About one room in seven exports only WATCH_UCNT,
  with everything else zero.
* ``defects=True`` adds the real export's quirks (rates in ``DEFECT_RATES``): files not sorted by
  time (blocks of rows out of order; the index column still counts 0..n-1 down the file),
  missing minutes inside sessions (isolated minutes, short gaps, rare outages of up to 1.5 hours),
  now and then a minute twice (identical or with other values), and in the whole delivery a
  handful of rows with a negative count or a truncated dict literal. The missing and repeated
  minutes come from per-day streams, so overlapping deliveries share them.

Minutes are drawn one room-day at a time with vectorised numpy, and a room's lines are built by
Arrow string kernels on a second thread while the next room is drawn: 200 rooms over 60 days
(about 5M rows, 1.9 GB) take about 30 CPU-seconds, shared by two cores. The same arguments give
byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import holidays
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.signal import lfilter

from mlcore.synth import replacing

log = logging.getLogger(__name__)

SOURCE = "douyin_live"
DAY_MIN = 1440
LOG_EVERY = 25  # rooms between progress lines

# The export's channel keys, in the real order. The totals are the sums of the other keys.
NATURAL = (
    "短视频引流", "抖音商城推荐", "直播推荐", "搜索", "个人主页&店铺&橱窗", "其他", "头条西瓜",
    "活动页", "全部自然流量", "关注",
)  # fmt: skip
PAID = ("千川PC版", "其他广告", "千川品牌广告", "全部付费流量", "品牌广告", "小店随心推")
NATURAL_TOTAL = NATURAL.index("全部自然流量")
PAID_TOTAL = PAID.index("全部付费流量")
# Share of natural viewers per channel (all but the total) in the real sample.
NATURAL_SHARES = np.array([0.0056, 0.0002, 0.2958, 0.0517, 0.0109, 0.0642, 0.0029, 0.0075, 0.5613])
# Paid channels (all but the total): Qianchuan PC and Xiaodian Suixintui carry most paid traffic.
PAID_SHARES = np.array([0.55, 0.04, 0.05, 0.06, 0.30])

HEADER = (
    ",natural_flow_trend_index,pay_flow_trend_index,UV_VALUE,COMMENT_CNT,date_time,INCR_FANS_CNT,"
    "LEAVE_UCNT,FANS_CLUB_UCNT,PAY_ORDER_GMV,ONLINE_USER_CNT,WATCH_UCNT,PAY_CNT,PAY_UCNT\n"
)
# Columns of a room's value matrix: the 10 natural channels, the 6 paid ones, then the counts.
PAID_AT = len(NATURAL)
(UV, COMMENT, FANS, LEAVE, CLUB, GMV, ONLINE, WATCH, PAY_CNT, PAY_UCNT) = range(16, 26)
N_VALUES = 26
# The counts in file order after date_time, with whether pandas wrote them as floats.
TAIL = ((FANS, True), (LEAVE, True), (CLUB, True), (GMV, True), (ONLINE, False), (WATCH, True))
TAIL += ((PAY_CNT, True), (PAY_UCNT, True))

# Schedules: (share of rooms, nominal session (start, length) ranges in minutes).
SCHEDULES = {
    "evening": (0.36, (((18 * 60, 20 * 60 + 30), (180, 300)),)),
    "two": (0.20, (((7 * 60 + 30, 10 * 60), (150, 240)), ((15 * 60, 19 * 60 + 30), (240, 420)))),
    "day": (0.14, (((8 * 60 + 30, 10 * 60 + 30), (360, 540)),)),
    "late": (0.15, (((21 * 60, 22 * 60 + 30), (150, 270)),)),
    "allday": (0.15, (((5 * 60, 7 * 60), (1320, 1410)),)),
}
WATCH_ONLY_EVERY = 7  # one room in 7 (14%) exports only WATCH_UCNT
LEVEL_BLOCK = 21  # days; each block may hold one level shift
LEVEL_SHIFT_P = 0.35
LEVEL_LOOKBACK = 12  # blocks searched back for the last shift

# Log effect of the time of day on viewers, at each hour's middle (China's live-commerce audience:
# night trough, morning climb, noon bump, afternoon dip, evening peak at 20-22).
HOURLY = np.array(
    [-0.35, -0.65, -0.95, -1.15, -1.25, -1.15, -0.85, -0.55, -0.3, -0.15, -0.1, 0.0]
    + [0.1, 0.05, -0.1, -0.15, -0.1, -0.05, 0.05, 0.2, 0.3, 0.3, 0.15, -0.1]
)

# Defect rates (defects=True).
DEFECT_RATES = {
    "unsorted_file": 0.4,  # files whose rows come in blocks out of time order (at least one)
    "missing_minute": 0.004,  # isolated minutes lost, per live minute
    "gap": 0.25,  # a gap of 1-4 minutes, per session-day
    "outage": 0.03,  # a 15-90 minute hole in the export, per room-day
    "duplicate_minute": 0.002,  # per row; half identical, half other values
    "negative_rows": (1, 3),  # per delivery: rows with one negative count
    "truncated_dict_rows": (1, 3),  # per delivery: rows with a cut natural_flow_trend_index
}


def write_delivery(
    out: str | Path,
    ds: dt.date | str,
    *,
    seed: int = 0,
    rooms: int = 20,
    days: int = 28,
    defects: bool = False,
    history: bool = True,
) -> dict[str, int]:
    """Write one delivery to ``<out>/raw/douyin_live/ds=<ds>/``; return data rows per file.

    Each room's file holds its live minutes of the days ``ds - days + 1`` to ``ds`` inclusive (a
    late session of the day before the window shows only from midnight on). The result maps each
    file's path relative to the delivery folder (``"room=<id>/live_metrics_<id>_<ds>.csv"``) to
    its rows, defects included. ``history`` is part of the contract's signature and changes
    nothing: a history and a one-day increment are both just their window's minutes. Each file is
    written under a temporary name and renamed when complete.
    """
    del history  # a delivery of days=1 and the last day of a history are the same rows
    ds = dt.date.fromisoformat(ds) if isinstance(ds, str) else ds
    if rooms < 1 or days < 1:
        raise ValueError(f"rooms and days must be >= 1, got rooms={rooms}, days={days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    folder = Path(out) / "raw" / SOURCE / f"ds={ds.isoformat()}"
    window = [ds - dt.timedelta(days=days - 1 - i) for i in range(days)]
    plan = _delivery_defects(seed, ds, days, rooms) if defects else None
    counts: dict[str, int] = {}
    # A room's file is formatted and written on a second thread while the next room is drawn:
    # Arrow's kernels and file writes release the GIL, so two cores share the work. Files are
    # independent, so the bytes do not depend on the overlap.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: deque[tuple[str, Future[int]]] = deque()
        for index in range(rooms + 1):
            if index < rooms:
                room = build_room(seed, index)
                name = f"room={room.room_id}/live_metrics_{room.room_id}_{ds.isoformat()}.csv"
                rows = _room_rows(room, window, plan)
                pending.append((name, writer.submit(_write_file, folder / name, window, *rows)))
            while pending and (len(pending) > 1 or index == rooms):  # one file in flight
                done, future = pending.popleft()
                counts[done] = future.result()
                if len(counts) % LOG_EVERY == 0 or len(counts) == rooms:
                    log.info(
                        "douyin_live ds=%s: %d/%d rooms written, %d rows",
                        ds, len(counts), rooms, sum(counts.values()),
                    )  # fmt: skip
    return counts


def _write_file(
    path: Path,
    window: list[dt.date],
    day_index: np.ndarray,
    minute: np.ndarray,
    values: np.ndarray,
    bad: np.ndarray,
) -> int:
    """Write a room's file (header and rows); return its rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(HEADER.encode())
        for piece in _lines(window, day_index, minute, values, bad):
            f.write(piece)
    return int(minute.size)


def _rng(seed: int, purpose: str, *extra: int) -> np.random.Generator:
    """An independent generator per purpose (and room, day), so streams never shift each other."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, zlib.crc32(purpose.encode()), *extra])
    )


# --------------------------------------------------------------------------------------------
# Rooms


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: rooms are cached
class Room:
    """One live room: who watches it, when it is live, what it sells."""

    seed: int
    index: int
    room_id: str
    schedule: str
    sessions: tuple[tuple[float, float], ...]  # nominal (start minute, length)
    jitter: float  # sd of a session's start, minutes
    skip_p: float  # chance of a day without a session
    dead_p: float  # chance of a live day with almost no viewers
    log_base: float  # log viewers entering per minute at an ordinary hour
    watch_only: bool  # the export carries WATCH_UCNT only
    off_effect: float  # log effect of a day off (weekends, holidays)
    holiday_effect: float  # extra log effect of a statutory holiday
    festival_sens: float  # scale of the shopping festivals' lift
    trend: tuple[float, ...]  # amplitude, period (days) and phase of two sinusoids
    level_sd: float  # sd of the audience level after a shift
    ramp_tau: float  # minutes for the audience to build up after a start
    dispersion: float  # gamma shape of the per-minute shock (negative binomial)
    ar_sd: float  # sd of the smooth minute-to-minute noise
    natural_shares: np.ndarray
    paid_shares: np.ndarray
    ads: bool  # buys paid traffic
    campaign_rate: float  # campaigns per four live hours
    stay: float  # mean minutes a viewer stays
    online_k: float  # gamma shape of the online snapshot's noise
    comment_rate: float  # comments per viewer present per minute
    fans_rate: float  # new followers per entering viewer
    club_rate: float  # fan-club joins per entering viewer
    buy_rate: float  # buyers per viewer present per minute
    prices: np.ndarray  # the room's product prices, fen (whole yuan)
    price_p: np.ndarray


@functools.lru_cache(maxsize=1024)
def build_room(seed: int, index: int) -> Room:
    """The room at ``index`` for ``seed``: the same whatever the number of rooms asked."""
    rng = _rng(seed, "room", index)
    # 19 digits, led by 6 (older rooms) or 7, as Douyin's room ids are.
    room_id = str(int(rng.integers(6, 8)) * 10**18 + int(rng.integers(10**17, 10**18)))
    names = list(SCHEDULES)
    shares = np.array([SCHEDULES[n][0] for n in names])
    schedule = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    sessions = tuple(
        (float(rng.uniform(*starts)), float(rng.uniform(*lengths)))
        for starts, lengths in SCHEDULES[schedule][1]
    )
    if schedule == "two":  # the second session starts an hour or more after the first ends
        (s1, l1), (s2, l2) = sessions
        sessions = ((s1, l1), (max(s2, s1 + l1 + 60), l2))
    natural = NATURAL_SHARES * np.exp(rng.normal(0, 0.6, NATURAL_SHARES.size))
    paid = PAID_SHARES * np.exp(rng.normal(0, 1.0, PAID_SHARES.size))
    if rng.random() < 0.4:  # many rooms buy through one channel only, as the sample's
        paid = np.eye(PAID_SHARES.size)[0 if rng.random() < 0.6 else 4]
    n_prices = int(rng.integers(3, 9))
    prices = np.round(np.exp(rng.normal(np.log(150), 0.9, n_prices))).clip(5, 20_000) * 100
    price_p = 1 / np.arange(1, n_prices + 1) ** 0.8
    weekend = rng.uniform(0.12, 0.45) * (1 if rng.random() < 0.65 else -1)
    return Room(
        seed=seed,
        index=index,
        room_id=room_id,
        schedule=schedule,
        sessions=sessions,
        jitter=float(rng.uniform(8, 40)) if schedule != "allday" else 15.0,
        skip_p=float(rng.uniform(0.02, 0.06) if schedule == "allday" else rng.uniform(0.05, 0.2)),
        dead_p=float(rng.uniform(0.01, 0.04)),
        log_base=float(np.log(np.clip(np.exp(rng.normal(np.log(15), 1.3)), 1.5, 2500))),
        watch_only=(index + seed) % WATCH_ONLY_EVERY == WATCH_ONLY_EVERY - 1,
        off_effect=float(weekend),
        holiday_effect=float(rng.normal(0, 0.2)),
        festival_sens=float(rng.uniform(0.6, 1.4)),
        trend=(
            float(rng.uniform(0.05, 0.35)),
            float(rng.uniform(180, 720)),
            float(rng.uniform(0, 2 * np.pi)),
            float(rng.uniform(0.0, 0.1)),
            float(rng.uniform(30, 90)),
            float(rng.uniform(0, 2 * np.pi)),
        ),
        level_sd=float(rng.uniform(0.15, 0.4)),
        ramp_tau=float(rng.uniform(4, 20)),
        dispersion=float(rng.uniform(12, 40)),
        ar_sd=float(rng.uniform(0.08, 0.2)),
        natural_shares=natural / natural.sum(),
        paid_shares=paid / paid.sum(),
        ads=bool(rng.random() < 0.6),
        campaign_rate=float(rng.uniform(0.3, 1.5)),
        stay=float(np.exp(rng.normal(np.log(3), 0.4))),
        online_k=float(rng.uniform(6, 15)),
        comment_rate=float(np.exp(rng.normal(np.log(0.09), 0.5))),
        fans_rate=float(np.exp(rng.normal(np.log(0.008), 0.5))),
        club_rate=float(np.exp(rng.normal(np.log(0.012), 0.5))),
        buy_rate=float(np.exp(rng.normal(np.log(0.0009), 0.7))),
        prices=prices,
        price_p=price_p / price_p.sum(),
    )


# --------------------------------------------------------------------------------------------
# Calendar


@dataclass(frozen=True)
class DayInfo:
    """What a calendar day is in China, as far as live-room audiences care."""

    off: bool  # not a working day: weekend or statutory day off (working weekends are not)
    holiday: bool  # a statutory day off, substituted ones included
    spring: bool  # in the Spring Festival break
    festival: float  # log lift of a shopping festival (before the room's sensitivity)
    peak: bool  # a festival's own day: longer sessions, no skipped or dead day


@functools.cache
def _china() -> holidays.HolidayBase:
    # One instance that fills in years as they are asked (expand=True), English names.
    return holidays.China(language="en_US")


@functools.lru_cache(maxsize=8192)
def day_info(day: dt.date) -> DayInfo:
    """The day's type from China's calendar and the shopping-festival calendar."""
    calendar = _china()
    holiday = day in calendar
    spring = holiday and any(
        "Chinese New Year" in (calendar.get(day + dt.timedelta(days=k)) or "") for k in range(-6, 7)
    )
    festival, peak = _festival(day)
    return DayInfo(
        off=not calendar.is_working_day(day),
        holiday=holiday,
        spring=spring,
        festival=festival,
        peak=peak,
    )


def _festival(day: dt.date) -> tuple[float, bool]:
    """Log lift of the shopping festivals: 11.11 (run-up from 10.20), 6.18, 12.12, National Day."""
    m, d = day.month, day.day
    if (m, d) == (11, 11):
        return 0.8, True
    if (m, d) == (11, 10):  # the night before: pre-sales open
        return 0.45, True
    if (m == 10 and d >= 20) or (m == 11 and d < 10):
        return 0.08 + 0.25 * (day - dt.date(day.year, 10, 20)).days / 20, False
    if (m, d) == (11, 12):
        return 0.15, False
    if (m, d) == (6, 18):
        return 0.6, True
    if m == 6 and d < 18:
        return 0.05 + 0.2 * (d - 1) / 17, False
    if (m, d) == (12, 12):
        return 0.45, True
    if m == 12 and 8 <= d < 12:
        return 0.1, False
    if m == 10 and d <= 7:  # National Day golden week sales
        return 0.15, False
    return 0.0, False


@functools.lru_cache(maxsize=16)
def _time_of_day(off: bool, holiday: bool) -> np.ndarray:
    """Log effect per minute of the day: the hourly profile, shifted on days off (people are free
    in the daytime; on holidays they are out with family in the evening)."""
    minute = np.arange(DAY_MIN)
    hours = np.concatenate([[-0.5], np.arange(24) + 0.5, [24.5]])
    effect = np.interp(minute / 60, hours, np.concatenate([[HOURLY[-1]], HOURLY, [HOURLY[0]]]))
    daytime = (minute >= 9 * 60) & (minute < 18 * 60)
    evening = minute >= 19 * 60
    if holiday:
        effect = effect + 0.3 * daytime - 0.1 * evening
    elif off:
        effect = effect + 0.12 * daytime
    return effect


# --------------------------------------------------------------------------------------------
# Slow state: a function of the day's ordinal, so any window sees the same values


def _trend(room: Room, ordinal: int) -> float:
    a1, p1, f1, a2, p2, f2 = room.trend
    return a1 * np.sin(2 * np.pi * ordinal / p1 + f1) + a2 * np.sin(2 * np.pi * ordinal / p2 + f2)


@functools.lru_cache(maxsize=1 << 16)
def _level_block(seed: int, index: int, block: int, sd: float) -> tuple[bool, int, float]:
    """Whether a block of days holds a level shift, on which day, and the new level."""
    rng = _rng(seed, "level", index, block)
    return (
        bool(rng.random() < LEVEL_SHIFT_P),
        int(rng.integers(LEVEL_BLOCK)),
        float(rng.normal(0, sd)),
    )


def _level(room: Room, ordinal: int) -> float:
    """The room's audience level: that of the last shift on or before the day."""
    block, offset = divmod(ordinal, LEVEL_BLOCK)
    for b in range(block, block - LEVEL_LOOKBACK, -1):
        shifted, day, value = _level_block(room.seed, room.index, b, room.level_sd)
        if shifted and (b < block or day <= offset):
            return value
    return 0.0


# --------------------------------------------------------------------------------------------
# Sessions and minutes


@dataclass(frozen=True)
class Session:
    """One live session, in minutes from the midnight of the day it starts."""

    start: int
    end: int  # exclusive; past 1440 when it runs into the next day
    lift: float  # log level of this session
    dead: float  # log factor of a dead day (0 on ordinary days)


@functools.lru_cache(maxsize=4096)
def _sessions(room: Room, ordinal: int) -> tuple[Session, ...]:
    """The sessions a room starts on a day, from that day's own stream."""
    info = day_info(dt.date.fromordinal(ordinal))
    rng = _rng(room.seed, "schedule", room.index, ordinal)
    skip_p = room.skip_p
    if info.spring:  # logistics stop: most shops pause for the Spring Festival
        skip_p = 0.6 if room.schedule != "allday" else 0.3
    elif room.schedule == "day" and info.off:
        skip_p = 0.5
    elif info.holiday:
        skip_p = min(1.0, 1.5 * skip_p)
    if info.peak:
        skip_p = 0.02
    skip, dead_u, dead_size, shift_u = rng.random(4)
    shift = rng.normal(0, 90) if shift_u < 0.1 else 0.0  # now and then hours off its habit
    if skip < skip_p:
        return ()
    dead = np.log(0.02 + 0.06 * dead_size) if dead_u < room.dead_p and not info.peak else 0.0
    out: list[Session] = []
    cursor = 0
    for k, (nominal, length) in enumerate(room.sessions):
        start = nominal + shift + rng.normal(0, room.jitter)
        length = length * rng.uniform(0.8, 1.2)
        if info.peak:  # festival nights run long, starting earlier
            start -= rng.uniform(0, 60)
            length += rng.uniform(60, 150)
        dropped = k > 0 and rng.random() < 0.15  # two-session rooms sometimes hold one
        start = int(np.clip(round(start), cursor, DAY_MIN - 1))
        end = int(min(start + max(30, round(length)), DAY_MIN + 360))
        lift = float(rng.normal(0, 0.12))
        if dropped or start >= DAY_MIN - 1:
            continue
        if room.schedule == "allday":  # a few breaks split the day into sessions
            cuts = np.sort(rng.uniform(start + 60, end - 60, int(rng.integers(0, 4))))
            gaps = rng.uniform(10, 90, cuts.size)
            bounds = [start]
            for c, g in zip(cuts.round().astype(int), gaps.round().astype(int), strict=True):
                if c > bounds[-1] + 30:
                    bounds += [c, c + g]
            bounds.append(end)
            for s, e in zip(bounds[::2], bounds[1::2], strict=True):
                out.append(Session(s, e, lift + float(rng.normal(0, 0.05)), dead))
        else:
            out.append(Session(start, end, lift, dead))
        cursor = end + 30
    return tuple(out)


@dataclass
class Segments:
    """A day's live minutes: the minute of day, minutes since the session began, minutes left."""

    minute: np.ndarray
    since: np.ndarray
    left: np.ndarray
    lift: np.ndarray
    dead: np.ndarray
    bounds: list[tuple[int, int]]  # row ranges of the day's segments


def _segments(room: Room, ordinal: int) -> Segments:
    """Live minutes of a day: its own sessions and the tail of yesterday's late one."""
    spans = [(s.start - DAY_MIN, s) for s in _sessions(room, ordinal - 1) if s.end > DAY_MIN]
    spans += [(s.start, s) for s in _sessions(room, ordinal)]
    parts: list[tuple[np.ndarray, int, Session]] = []
    cursor = 0
    for start, session in sorted(spans, key=lambda x: x[0]):
        end = start + (session.end - session.start)
        lo, hi = max(start, cursor, 0), min(end, DAY_MIN)
        if hi > lo:  # yesterday's session running late pushes today's start back
            parts.append((np.arange(lo, hi), start, session))
            cursor = hi
    bounds, row = [], 0
    for m, _, _ in parts:
        bounds.append((row, row + m.size))
        row += m.size
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Segments(empty, empty, empty, empty.astype(float), empty.astype(float), [])
    return Segments(
        minute=np.concatenate([m for m, _, _ in parts]),
        since=np.concatenate([m - start for m, start, _ in parts]),
        left=np.concatenate([start + s.end - s.start - m for m, start, s in parts]),
        lift=np.concatenate([np.full(m.size, s.lift) for m, _, s in parts]),
        dead=np.concatenate([np.full(m.size, s.dead) for m, _, s in parts]),
        bounds=bounds,
    )


def day_values(room: Room, ordinal: int) -> tuple[np.ndarray, np.ndarray]:
    """(minute of day, values) of a room's live minutes on a day, from that day's streams.

    ``values`` has ``N_VALUES`` int64 columns: the natural channels, the paid ones, then
    UV_VALUE .. PAY_UCNT (the module's column constants).
    """
    seg = _segments(room, ordinal)
    n = seg.minute.size
    values = np.zeros((n, N_VALUES), dtype=np.int64)
    if n == 0:
        return seg.minute, values
    info = day_info(dt.date.fromordinal(ordinal))
    rng = _rng(room.seed, "minutes", room.index, ordinal)
    festival = info.festival * room.festival_sens
    day_effect = (
        _level(room, ordinal)
        + _trend(room, ordinal)
        + festival
        + room.off_effect * info.off
        + room.holiday_effect * info.holiday
        - 0.5 * info.spring
    )
    log_lam = (
        room.log_base
        + day_effect
        + _time_of_day(info.off, info.holiday)[seg.minute]
        + seg.lift
        + seg.dead
        + np.log(0.12 + 0.88 * (1 - np.exp(-seg.since / room.ramp_tau)))
        + np.log(0.4 + 0.6 * np.clip(seg.left / 12, 0, 1))
    )
    # Peaks: flash sales and lucky draws lift the audience for a few minutes.
    k = rng.poisson(n / 100)
    at, height, width = rng.integers(0, n, k), rng.uniform(0.2, 0.7, k), rng.uniform(4, 15, k)
    rows = np.arange(n)
    log_lam += (height * np.exp(-0.5 * ((rows[:, None] - at) / width) ** 2)).sum(axis=1)
    phi = 0.9
    log_lam += lfilter([room.ar_sd * np.sqrt(1 - phi**2)], [1, -phi], rng.standard_normal(n))
    natural = np.exp(log_lam)
    # Paid campaigns: an hour or so of bought traffic, ramping up and fading after the end.
    paid = np.zeros(n)
    if room.ads:
        k = rng.poisson(room.campaign_rate * n / 240 * (1 + 1.5 * festival))
        begin, length = rng.integers(0, n, k), rng.uniform(30, 90, k)
        height = rng.uniform(0.3, 2.5, k)
        t = rows[:, None] - begin
        shape = np.where(
            t < 0,
            0.0,
            np.where(t < length, np.minimum(1, (t + 1) / 3), np.exp(-(t - length) / 8)),
        )
        boost = (height * shape).sum(axis=1)
        # A day with a campaign also brings a trickle of paid viewers (a small standing budget:
        # the sample's paid minutes are scattered over hours around one dense run).
        paid = natural * boost + 0.3 * (k > 0)
        natural = natural * (1 + 0.15 * boost)  # the recommender follows the paid crowd
    shock = rng.gamma(room.dispersion, 1 / room.dispersion, n)
    natural, paid = natural * shock, paid * shock
    watch = rng.poisson(natural + paid)
    values[:, WATCH] = watch
    if not room.watch_only:
        _audience(room, rng, seg, natural, paid, watch, festival, values)
    # The export's first minute of a session is often all zeros (the sample's is).
    starts = np.flatnonzero(seg.since == 0)
    values[starts[rng.random(starts.size) < 0.6]] = 0
    return seg.minute, values


def _audience(room, rng, seg, natural, paid, watch, festival, values) -> None:
    """Fill the channel dicts and the counts that follow the audience (not for WATCH-only)."""
    n = watch.size
    others = [i for i in range(len(NATURAL)) if i != NATURAL_TOTAL]
    nat = rng.poisson(natural[:, None] * room.natural_shares)
    values[:, others] = nat
    values[:, NATURAL_TOTAL] = nat.sum(axis=1)
    if room.ads:
        others = [PAID_AT + i for i in range(len(PAID)) if i != PAID_TOTAL]
        bought = rng.poisson(paid[:, None] * room.paid_shares)
        values[:, others] = bought
        values[:, PAID_AT + PAID_TOTAL] = bought.sum(axis=1)
    # Viewers present: entries decaying with the mean stay, restarted at each session's start
    # (a session begun yesterday starts today at its steady state).
    a = 1 - 1 / room.stay
    present = np.empty(n)
    before = np.empty(n)
    for lo, hi in seg.bounds:
        steady = (natural[lo] + paid[lo]) * room.stay if seg.since[lo] > 0 else 0.0
        present[lo:hi] = lfilter([1], [1, -a], watch[lo:hi], zi=[a * steady])[0]
        before[lo] = steady
        before[lo + 1 : hi] = present[lo : hi - 1]
    values[:, LEAVE] = rng.poisson(before / room.stay)
    online = rng.poisson(present * rng.gamma(room.online_k, 1 / room.online_k, n))
    values[:, ONLINE] = online
    values[:, COMMENT] = rng.poisson(room.comment_rate * online * rng.gamma(1.0, 1.0, n))
    values[:, FANS] = rng.poisson(room.fans_rate * watch)
    values[:, CLUB] = rng.poisson(room.club_rate * watch)
    buyers = rng.poisson(room.buy_rate * online * (1 + festival))
    orders = buyers + rng.poisson(0.25 * buyers)
    values[:, PAY_UCNT] = buyers
    values[:, PAY_CNT] = orders
    price = room.prices[rng.choice(room.prices.size, size=int(orders.sum()), p=room.price_p)]
    gmv = np.bincount(np.repeat(np.arange(n), orders), weights=price, minlength=n)
    values[:, GMV] = gmv.astype(np.int64)
    values[:, UV] = np.where(online > 0, values[:, GMV] // np.maximum(online, 1), 0)


# --------------------------------------------------------------------------------------------
# A room's file: its days, defects, lines


@dataclass(frozen=True)
class DeliveryDefects:
    """Defects drawn once per delivery: which rooms' files are out of order, and where the rare
    negative counts and cut dicts land (room, position as a share of the file's rows)."""

    seed: int
    key: int  # (ds, days) of the delivery, for the per-file streams
    unsorted: frozenset[int]
    negative: tuple[tuple[int, float, int], ...]  # (room, position, column)
    truncated: tuple[tuple[int, float], ...]


def _delivery_defects(seed: int, ds: dt.date, days: int, rooms: int) -> DeliveryDefects:
    rng = _rng(seed, "delivery-defects", ds.toordinal(), days)
    unsorted = set(np.flatnonzero(rng.random(rooms) < DEFECT_RATES["unsorted_file"]).tolist())
    unsorted.add(int(rng.integers(rooms)))  # at least one, so the quirk always shows
    columns = (WATCH, LEAVE, ONLINE, COMMENT)
    n_neg = int(
        rng.integers(DEFECT_RATES["negative_rows"][0], DEFECT_RATES["negative_rows"][1] + 1)
    )
    lo, hi = DEFECT_RATES["truncated_dict_rows"]
    n_cut = int(rng.integers(lo, hi + 1))
    return DeliveryDefects(
        seed=seed,
        key=ds.toordinal() * 1000 + days,
        unsorted=frozenset(unsorted),
        negative=tuple(
            (int(rng.integers(rooms)), float(rng.random()), int(columns[rng.integers(4)]))
            for _ in range(n_neg)
        ),
        truncated=tuple((int(rng.integers(rooms)), float(rng.random())) for _ in range(n_cut)),
    )


def _room_rows(
    room: Room, window: list[dt.date], plan: DeliveryDefects | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(day index in the window, minute of day, values, cut-dict mask) of a room's file rows."""
    days, minutes, values = [], [], []
    for i, day in enumerate(window):
        minute, value = day_values(room, day.toordinal())
        if plan is not None:
            minute, value = _day_defects(room, day.toordinal(), minute, value)
        days.append(np.full(minute.size, i))
        minutes.append(minute)
        values.append(value)
    day_index = np.concatenate(days)
    minute = np.concatenate(minutes)
    value = np.concatenate(values)
    bad = np.zeros(minute.size, dtype=bool)
    n = minute.size
    if plan is None or n == 0:
        return day_index, minute, value, bad
    for r, position, column in plan.negative:
        if r == room.index:
            row = int(position * n)
            value[row, column] = -max(1, value[row, column])
    for r, position in plan.truncated:
        if r == room.index:
            bad[int(position * n)] = True
    if room.index in plan.unsorted and n > 1:
        order = _block_shuffle(_rng(plan.seed, "order", room.index, plan.key), n)
        day_index, minute, value, bad = day_index[order], minute[order], value[order], bad[order]
    return day_index, minute, value, bad


def _block_shuffle(rng: np.random.Generator, n: int) -> np.ndarray:
    """A row order of 2-8 blocks out of sequence, as a paged export concatenated unsorted."""
    blocks = int(rng.integers(2, 9))
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(blocks - 1, n - 1), replace=False))
    pieces = np.split(np.arange(n), cuts)
    perm = rng.permutation(len(pieces))
    if np.all(perm == np.arange(len(pieces))):
        perm = perm[::-1]
    return np.concatenate([pieces[p] for p in perm])


def _day_defects(
    room: Room, ordinal: int, minute: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Drop and repeat minutes of a day, from the day's own stream (shared by every delivery)."""
    n = minute.size
    if n == 0:
        return minute, values
    rng = _rng(room.seed, "day-defects", room.index, ordinal)
    keep = rng.random(n) >= DEFECT_RATES["missing_minute"]
    new_session = np.flatnonzero(np.diff(minute, prepend=-2) != 1)
    for lo, hi in zip(new_session, [*new_session[1:], n], strict=True):
        if rng.random() < DEFECT_RATES["gap"] and hi - lo > 10:
            at = int(rng.integers(lo + 2, hi - 5))
            keep[at : at + int(rng.integers(1, 5))] = False
    if rng.random() < DEFECT_RATES["outage"] and n > 120:
        at = int(rng.integers(30, n - 60))
        keep[at : at + int(rng.integers(15, 91))] = False
    again = rng.random(n) < DEFECT_RATES["duplicate_minute"]
    changed = rng.random(n) < 0.5
    noise = rng.poisson(1.0, (n, 3))
    minute, values = minute[keep], values[keep]
    again, changed, noise = again[keep], changed[keep], noise[keep]
    if not again.any():
        return minute, values
    # A repeated minute follows its first copy: identical, or re-pulled with other counts.
    repeat = values[again].copy()
    repeat[:, (WATCH, LEAVE, ONLINE)] += noise[again] * changed[again, None]
    order = np.argsort(
        np.concatenate([np.arange(minute.size), np.flatnonzero(again)]), kind="stable"
    )
    return (
        np.concatenate([minute, minute[again]])[order],
        np.concatenate([values, repeat])[order],
    )


@functools.cache
def _clock_texts() -> pa.Array:
    """'HH:MM:00' for every minute of a day, so that times are formatted by lookup."""
    return pa.array([f"{m // 60:02d}:{m % 60:02d}:00" for m in range(DAY_MIN)])


def _lines(
    window: list[dt.date],
    day_index: np.ndarray,
    minute: np.ndarray,
    values: np.ndarray,
    bad: np.ndarray,
) -> list[memoryview | bytes]:
    """The file's rows as CSV text (in pieces to write in turn), built by one Arrow string join
    instead of a Python loop: the text of each number, the fixed text between them merged."""
    n = minute.size
    if n == 0:
        return []
    columns = np.ascontiguousarray(values.T)

    def text(column: int) -> pa.Array:
        return pa.array(columns[column]).cast(pa.string())

    parts: list = [pa.array(np.arange(n)).cast(pa.string()), ',"']
    for keys, offset in ((NATURAL, 0), (PAID, PAID_AT)):
        for i, key in enumerate(keys):
            parts += [("{'" if i == 0 else ", '") + key + "': ", text(offset + i)]
        parts.append('}","' if offset == 0 else '}",')
    parts += [text(UV), ".0,", text(COMMENT), ","]
    parts += [pa.array([d.isoformat() + " " for d in window]).take(pa.array(day_index))]
    parts += [_clock_texts().take(pa.array(minute))]
    for column, is_float in TAIL:
        parts += [",", text(column)] + ([".0"] if is_float else [])
    parts.append("\n")
    merged: list = []
    for part in parts:  # adjacent fixed texts as one piece: fewer arguments to join
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    lines = pc.binary_join_element_wise(*merged, "")
    # The lines lie back to back in the string array's data buffer: write that buffer as is,
    # but for the rare rows whose natural dict is cut short, as a truncated export leaves it.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    data = memoryview(lines.buffers()[2])
    pieces: list[memoryview | bytes] = []
    at = offsets[0]
    for row in np.flatnonzero(bad):
        index, natural, rest = lines[int(row)].as_py().split('"', 2)
        cut = f'{index}"{natural[:40]}"{rest}'
        pieces += [data[at : offsets[row]], cut.encode()]
        at = offsets[row + 1]
    pieces.append(data[at : offsets[n]])
    return pieces
