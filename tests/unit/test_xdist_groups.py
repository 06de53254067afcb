"""``make test`` runs on two xdist workers with ``--dist loadgroup``: each test file (and each
pipeline's ``pipeline_runs`` tests) must stay on one worker, or every module fixture (a trained
model, an Airflow run) is paid twice. Checked with the repository's own collection hook, in a
pytest subprocess on a throwaway suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def test_a_files_tests_run_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import importlib.util
            import sys

            spec = importlib.util.spec_from_file_location("repo_conftest", {str(CONFTEST)!r})
            repo = importlib.util.module_from_spec(spec)
            sys.modules["repo_conftest"] = repo  # (its dataclasses look their module up)
            spec.loader.exec_module(repo)
            pytest_collection_modifyitems = repo.pytest_collection_modifyitems
            """
        )
    )
    for name in "abcd":
        (tmp_path / f"test_{name}.py").write_text(
            textwrap.dedent(
                f"""
                import os, time
                import pytest

                @pytest.fixture(scope="module")
                def worker():
                    with open("setups.txt", "a") as f:
                        f.write("{name} " + str(os.getpid()) + "\\n")
                    return os.getpid()

                @pytest.mark.parametrize("k", range(4))
                def test_same_worker(worker, k):
                    time.sleep(0.05)
                    assert os.getpid() == worker
                """
            )
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
        + ["--dist", "loadgroup", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    setups = (tmp_path / "setups.txt").read_text().split("\n")
    files = [line.split()[0] for line in setups if line]
    assert sorted(files) == list("abcd"), setups  # one setup per file: never on both workers
    assert len({line.split()[1] for line in setups if line}) == 2  # both workers were used
