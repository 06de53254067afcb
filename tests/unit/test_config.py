import datetime as dt
from pathlib import Path

import pytest

from mlcore.config import ConfigError, load_settings, parse_ds


def test_laptop_defaults():
    s = load_settings({})
    assert s.lake == "./lake"
    assert s.warehouse == Path("./warehouse/nightshift.duckdb")
    assert s.train_backend == "local"
    assert not s.lake_is_s3


def test_environment_overrides_and_secrets_stay_out_of_repr():
    s = load_settings(
        {
            "NIGHTSHIFT_LAKE": "s3://bucket/prefix/",
            "NIGHTSHIFT_TRAIN_BACKEND": "Kubernetes",
            "NIGHTSHIFT_S3_ENDPOINT": "http://127.0.0.1:9000",
            "NIGHTSHIFT_S3_ACCESS_KEY_ID": "AKIA-SECRET-ID",
            "NIGHTSHIFT_S3_SECRET_ACCESS_KEY": "very-secret",
            "NIGHTSHIFT_CHAMPION_TOLERANCE": "0.01",
        }
    )
    assert s.lake == "s3://bucket/prefix" and s.lake_is_s3
    assert s.train_backend == "kubernetes"
    assert s.champion_tolerance == 0.01
    assert "very-secret" not in repr(s) and "AKIA-SECRET-ID" not in repr(s)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"NIGHTSHIFT_TRAIN_BACKEND": "slurm"}, "TRAIN_BACKEND must be one of"),
        ({"NIGHTSHIFT_LAKE": "s3:/bucket"}, "s3://bucket/prefix"),
        ({"NIGHTSHIFT_MAX_BAD_ROW_SHARE": "lots"}, "must be a number"),
    ],
)
def test_bad_values_are_clear_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_a_pipelines_own_settings_come_from_its_prefix_and_keep_an_old_alias():
    from mlcore.config import ConfigError
    from mlcore.pipelines import get

    spec = get("music_skip")
    assert spec.load_settings({}).cache_budget is None
    assert spec.load_settings({"NIGHTSHIFT_MUSIC_SKIP_CACHE_BUDGET": "12.5"}).cache_budget == 12.5
    assert spec.load_settings({"NIGHTSHIFT_CACHE_BUDGET": "3"}).cache_budget == 3.0
    with pytest.raises(ConfigError, match="NIGHTSHIFT_MUSIC_SKIP_CACHE_BUDGET must be a float"):
        spec.load_settings({"NIGHTSHIFT_MUSIC_SKIP_CACHE_BUDGET": "lots"})


BAD_DS = ["20240131", "2024-W05-3", "2024-1-31", "2024-02-30", " 2024-01-31", "../2024-01-31"]


@pytest.mark.parametrize("text", BAD_DS)
def test_a_ds_has_one_spelling(text):
    import argparse

    from mlcore import cli

    with pytest.raises(ValueError, match="ds must be a date like 2024-01-31"):
        parse_ds(text)
    with pytest.raises(argparse.ArgumentTypeError):
        cli._date(text)


def test_a_ds_parses_from_its_one_spelling_or_a_date():
    assert parse_ds("2024-01-31") == dt.date(2024, 1, 31)
    assert parse_ds(dt.date(2024, 1, 31)) == dt.date(2024, 1, 31)
    with pytest.raises(ValueError, match="datetime"):
        parse_ds(dt.datetime(2024, 1, 31, 12))
