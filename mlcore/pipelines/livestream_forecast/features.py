"""The feature contract between ``sql/livestream_forecast/`` and the trainer."""

from mlcore.models.forecast import CALENDAR, EXOGENOUS, TRAILING

KEY_COLUMNS = ("room_id", "ts", "day", "is_future", "live", "observed", "imputed", "y", "y_filled")
LAG_COLUMNS = ("y_lag_1", "y_lag_5", "y_lag_10", "y_lag_60", "y_lag_1440", "y_lag_10080")
MINUTE_COLUMNS = (*KEY_COLUMNS, *CALENDAR, *EXOGENOUS, *LAG_COLUMNS, *TRAILING)
GAP_COLUMNS = (
    "room_id", "day", "live_minutes", "delivered_minutes", "missing_minutes",
    "longest_gap_minutes", "sessions",
)  # fmt: skip
