"""Shared fixtures: isolated settings, the real data samples, an S3-compatible server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Keep TensorFlow's start-up chatter out of test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_data(*parts: str) -> Path:
    """A path into ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data sample not available: {path} is absent")
    return path


@pytest.fixture
def nightshift_env(tmp_path, monkeypatch):
    """NIGHTSHIFT_* pointing at a fresh lake folder and warehouse file under tmp_path."""
    monkeypatch.setenv("NIGHTSHIFT_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(tmp_path / "warehouse" / "nightshift.duckdb"))
    monkeypatch.setenv("NIGHTSHIFT_TRAIN_BACKEND", "local")
    from mlcore.config import load_settings

    return load_settings()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server (moto's standalone server) on 127.0.0.1, for the session.

    The lake's S3 code talks HTTP to it through boto3, exactly as to S3 or MinIO: no client
    is patched.
    """
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("moto_server is not installed (dev dependency moto[server])")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the S3-compatible test server did not start within 30 s")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


S3_TEST_SECRET = "nightshift-canary-s3cr3t-7f3a"


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path, request):
    """Settings whose lake is a fresh bucket on the test S3 server."""
    import re

    import boto3

    from mlcore.config import Settings

    bucket = "lake-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    # The test server takes any key; a distinctive secret lets tests look for it where it
    # must never be (logs, the warehouse, lake files).
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": S3_TEST_SECRET}
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket=bucket
    )
    return Settings(
        lake=f"s3://{bucket}/nightshift",
        warehouse=tmp_path / "warehouse-s3" / "nightshift.duckdb",
        s3_endpoint=s3_endpoint,
        **creds,
    )
