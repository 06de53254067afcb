"""Shared fixtures: isolated settings, the real data samples, an S3-compatible server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.util
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
# livestream_forecast on the tests' small nights (two rooms, eight days): a 3-day backtest
# after 3 days of training, and a small LSTM budget (its defaults, a week and a week, 40,000
# windows × 4 epochs, are sized for a night of 200 rooms); the same code path in seconds.
os.environ.setdefault("NIGHTSHIFT_LIVESTREAM_FORECAST_BACKTEST_DAYS", "3")
os.environ.setdefault("NIGHTSHIFT_LIVESTREAM_FORECAST_MIN_TRAIN_DAYS", "3")
os.environ.setdefault("NIGHTSHIFT_LIVESTREAM_FORECAST_LSTM_MAX_WINDOWS", "2000")
os.environ.setdefault("NIGHTSHIFT_LIVESTREAM_FORECAST_LSTM_EPOCHS", "1")
os.environ.setdefault("NIGHTSHIFT_LIVESTREAM_FORECAST_SHORT_HORIZON_ROWS", "3000")


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

    # One bucket per test: the readable start of its name, and a hash of the whole of it (two
    # parametrizations of one test share the start: movielens_recall's and music_skip's).
    digest = hashlib.sha256(request.node.name.encode()).hexdigest()[:8]
    bucket = "lake-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    bucket += f"-{digest}"
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


# ---- every registered pipeline, two small nights (the conformance runs) --------------------------
NIGHTS = (dt.date(2024, 1, 30), dt.date(2024, 1, 31))
NIGHTS_SEED = 3


def _kill_at():
    """tests/faults/kill_at.py, which counts a step's writes (and kills before one of them)."""
    spec = importlib.util.spec_from_file_location(
        "kill_at", REPO / "tests" / "faults" / "kill_at.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class PipelineNights:
    """What two nights of one pipeline left: its settings and each step's summary per ds;
    ``night_before`` holds the lake and warehouse as they were after D1 (with D2 delivered),
    and ``writes`` how many writes each D2 step made (tests/faults/kill_at.py counts them)."""

    settings: object
    results: dict
    night_before: Path
    writes: dict


class _LazyNights(dict):
    """{pipeline: PipelineNights}, each pipeline's nights run on first use: a test worker
    (``make test`` runs two) runs only the pipelines its tests read."""

    def __init__(self, run):
        super().__init__()
        self._run = run

    def __missing__(self, name: str) -> PipelineNights:
        self[name] = self._run(name)
        return self[name]


@pytest.fixture(scope="session")
def pipeline_runs(tmp_path_factory):
    """{pipeline: PipelineNights}, run through the steps in-process (no Airflow).

    The conformance tests read what these runs leave (marts, lake, manifests), the fault suite
    starts from the night before and compares its reruns with D2; they take their cases from
    the registries, so a new pipeline is held to them without new test code.
    """
    return _LazyNights(lambda name: _two_nights(name, tmp_path_factory))


def _two_nights(name: str, tmp_path_factory) -> PipelineNights:
    from mlcore import pipelines, steps
    from mlcore.config import load_settings
    from mlcore.sources import get_source

    kill_at = _kill_at()
    spec = pipelines.get(name)
    root = tmp_path_factory.mktemp(f"conformance-{name}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIGHTSHIFT_LAKE", str(root / "lake"))
        mp.setenv("NIGHTSHIFT_WAREHOUSE", str(root / "warehouse.duckdb"))
        settings = load_settings()
        results, writes = {}, {}
        for night, ds in enumerate(NIGHTS):
            for source in spec.sources:
                src = get_source(source)
                src.load_synth()(root / "lake", ds, seed=NIGHTS_SEED, **src.test_nights[night])
            if night == 1:
                before = tmp_path_factory.mktemp(f"night-before-{name}")
                shutil.copytree(root / "lake", before / "lake")
                shutil.copyfile(root / "warehouse.duckdb", before / "warehouse.duckdb")
            day, done = ds.isoformat(), {}
            chain = [
                (step, source, f"{step} {source}")
                for source in spec.sources
                for step in ("ingest", "validate", "stage")
            ] + [(step, name, step) for step in ("build_features", "train", "gate", "publish")]
            for step, target, label in chain:
                with kill_at.counting(kill_at._Counter(None)) as counter:
                    done[label] = getattr(steps, step)(target, day, settings)
                if night == 1:
                    writes[(step, target)] = counter.seen
            results[ds] = done
    return PipelineNights(settings, results, before, writes)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Groups for ``make test``'s two workers (pytest-xdist, ``--dist loadgroup``).

    The tests that read one pipeline's ``pipeline_runs`` (conformance, kills, concurrency,
    S3 faults: parametrized by ``name``) run on one worker, so that pipeline's two nights are
    computed once; every other file stays whole on one worker, so its module-scoped fixtures
    (an end-to-end run through Airflow, a trained model) run once too.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue  # the test names its own group
        if "pipeline_runs" in item.fixturenames:
            group = f"pipeline_runs-{item.callspec.params['name']}"
        else:
            group = item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("loadgroup", False):
        _suffix_groups(items)


def _suffix_groups(items) -> None:
    """Put each test's group in its node id (``…::test@group``), which is all that
    ``--dist loadgroup`` schedules by. xdist 3.8 writes it to ``item._nodeid``, which pytest
    9.2 no longer reads (the id is ``item._id``): every group was split over both workers, and
    each worker paid every module fixture and every pipeline's nights (measured: the same
    70-second training twice in one ``make test``). Done here until xdist follows."""
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # an older pytest: xdist's own suffix works
        return
    for item in items:
        if "@" in item.nodeid:
            continue  # suffixed already (a fixed xdist)
        names = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
