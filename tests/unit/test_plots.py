"""Every figure is a PNG, including on degenerate input (one class, one series, no bounds)."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd

from mlcore.metrics import ranking_curves
from mlcore.plots import (
    binary_figure_png,
    forecast_figure_png,
    ranking_figure_png,
)

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, which always comes first."""
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])


def binary_frame(n: int = 300, *, single_class: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.zeros(n, dtype=int) if single_class else rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "label": y,
            "p_skip_good": np.clip(0.6 * y + rng.uniform(0, 0.4, n), 0, 1),
            "p_skip_coin": rng.uniform(0, 1, n),
        }
    )


def test_binary_figure_is_a_png():
    frame = binary_frame()
    png = binary_figure_png(
        frame, label="label", scores={"good": "p_skip_good", "coin": "p_skip_coin"}, title="t"
    )
    assert png.startswith(PNG)


def test_binary_figure_with_a_single_class_still_draws():
    frame = binary_frame(single_class=True)
    png = binary_figure_png(frame, label="label", scores={"good": "p_skip_good"}, title="quiet")
    assert png.startswith(PNG)


def test_ranking_figure_is_a_png():
    rng = np.random.default_rng(1)
    predicted = pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(50), 12),
            "article_id": rng.integers(0, 40, 600),
            "rank": np.tile(np.arange(1, 13), 50),
        }
    )
    both = pd.concat([predicted.assign(model="ranker"), predicted.assign(model="popular")])
    truth = pd.DataFrame(
        {"customer_id": rng.integers(0, 60, 200), "article_id": rng.integers(0, 40, 200)}
    )
    curves = ranking_curves(both, truth, query="customer_id", item="article_id")
    assert ranking_figure_png(curves, title="hm").startswith(PNG)
    assert ranking_figure_png({}, title="no models").startswith(PNG)
    assert ranking_figure_png({"m": {12: {"map": 0.1}}}, title="one point").startswith(PNG)


def forecast_frame(n_series: int, *, models: tuple[str, ...] = ("lstm",)) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    t = pd.date_range("2024-03-31", periods=60, freq="min")
    parts = []
    for s in range(n_series):
        level = 100 * (s + 1)
        actual = level + 20 * np.sin(np.arange(60) / 6) + rng.normal(0, 3, 60)
        for m in models:
            f = actual + rng.normal(0, 5, 60)
            parts.append(
                pd.DataFrame(
                    {
                        "room_id": f"room{s}",
                        "minute": t,
                        "viewers": actual,
                        "model": m,
                        "forecast": f,
                        "lo": f - 8,
                        "hi": f + 8,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


COLUMNS = {"series": "room_id", "time": "minute", "actual": "viewers", "forecast": "forecast"}


def test_forecast_figure_with_bounds_and_models():
    frame = forecast_frame(6, models=("lstm", "seasonal_naive"))
    png = forecast_figure_png(frame, **COLUMNS, lower="lo", upper="hi", model="model", title="t")
    _, height = png_size(png)
    # four series panels (max_series) and the error panel, not six
    assert (
        height
        == png_size(
            forecast_figure_png(
                frame[frame["room_id"].isin([f"room{i}" for i in range(4)])],
                **COLUMNS,
                lower="lo",
                upper="hi",
                model="model",
                title="t",
            )
        )[1]
    )
    two = forecast_figure_png(frame, **COLUMNS, model="model", title="t", max_series=2)
    assert png_size(two)[1] < height


def test_forecast_figure_with_one_series_and_no_bounds_or_model_column():
    frame = forecast_frame(1).drop(columns=["model", "lo", "hi"])
    assert forecast_figure_png(frame, **COLUMNS, title="one room").startswith(PNG)


def test_forecast_figure_without_rows_still_draws():
    frame = forecast_frame(1).iloc[:0]
    assert forecast_figure_png(frame, **COLUMNS, model="model", title="empty").startswith(PNG)
