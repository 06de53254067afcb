"""The lake behaves the same on a local folder and on a real S3-compatible server."""

from __future__ import annotations

import pytest

from mlcore.lake import LakeError, LocalLake, open_lake


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return open_lake(request.getfixturevalue("s3_settings"))


def test_write_read_list_exists(lake):
    lake.write_text("raw/src/ds=2024-01-01/a.jsonl", '{"a": 1}\n')
    lake.write_bytes("raw/src/ds=2024-01-01/sub/b.bin", b"\x00\x01")
    lake.write_text("raw/src/ds=2024-01-02/a.jsonl", "x")
    assert lake.exists("raw/src/ds=2024-01-01/a.jsonl")
    assert not lake.exists("raw/src/ds=2024-01-01/missing.jsonl")
    assert lake.list("raw/src/ds=2024-01-01") == [
        "raw/src/ds=2024-01-01/a.jsonl",
        "raw/src/ds=2024-01-01/sub/b.bin",
    ]
    # A prefix matches whole path segments: ds=2024-01-0 is not a prefix of ds=2024-01-01.
    assert lake.list("raw/src/ds=2024-01-0") == []
    assert lake.read_text("raw/src/ds=2024-01-01/a.jsonl") == '{"a": 1}\n'
    assert lake.read_bytes("raw/src/ds=2024-01-01/sub/b.bin") == b"\x00\x01"


def test_missing_key_is_a_clear_error(lake):
    with pytest.raises(LakeError, match="not in the lake"):
        lake.read_bytes("nope/file.txt")


def test_replace_prefix_swaps_the_partition(lake, tmp_path):
    lake.write_text("outputs/t/ds=2024-01-01/part-0.parquet", "old")
    lake.write_text("outputs/t/ds=2024-01-01/stale.parquet", "stale")
    new = tmp_path / "new"
    new.mkdir()
    (new / "part-0.parquet").write_text("new")
    keys = lake.replace_prefix("outputs/t/ds=2024-01-01", new)
    assert keys == ["outputs/t/ds=2024-01-01/part-0.parquet"]
    assert lake.list("outputs/t/ds=2024-01-01") == keys
    assert lake.read_text(keys[0]) == "new"


def test_local_dir_gives_readable_files(lake):
    lake.write_text("features/p/ds=2024-01-01/x.csv", "a\n1\n")
    with lake.local_dir("features/p/ds=2024-01-01") as d:
        assert (d / "x.csv").read_text() == "a\n1\n"


def test_local_lake_refuses_keys_that_escape_the_root(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(LakeError, match="escapes"):
        lake.write_text("../outside.txt", "x")
