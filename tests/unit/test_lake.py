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


def test_s3_failures_are_one_line_lake_errors(s3_endpoint, tmp_path):
    """An endpoint that does not answer and a bucket that does not exist: one LakeError line
    each (the CLI prints it), never a botocore traceback, and no credential in it."""
    import socket

    import boto3
    from botocore.config import Config

    from mlcore.lake import S3Lake

    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "s3cr3t-never-shown"}
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    quick = Config(retries={"max_attempts": 1}, connect_timeout=2)
    down = S3Lake(
        "s3://lake/prefix",
        boto3.client("s3", endpoint_url=dead, region_name="us-east-1", config=quick, **creds),
    )
    for call in (lambda: down.list("raw"), lambda: down.write_text("a", "x")):
        with pytest.raises(LakeError) as failed:
            call()
        message = str(failed.value)
        assert message.startswith("cannot ") and "s3://lake/prefix/" in message
        assert "Could not connect to the endpoint URL" in message
        assert "s3cr3t" not in message and "\n" not in message

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **creds)
    nobucket = S3Lake("s3://no-such-bucket/p", client)
    with pytest.raises(LakeError, match="the bucket 'no-such-bucket' does not exist"):
        nobucket.list("raw")
    with pytest.raises(LakeError, match="the bucket 'no-such-bucket' does not exist"):
        nobucket.put_file(__file__, "raw/x.py")
