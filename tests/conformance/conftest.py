"""Every registered pipeline, run for two small nights through the steps (no Airflow).

The conformance tests read what these runs leave (marts, lake, manifests); they take their
cases from the registries, so a new pipeline is held to them without new test code.
"""

from __future__ import annotations

import datetime as dt

import pytest

from mlcore import pipelines, steps
from mlcore.config import load_settings
from mlcore.sources import get_source

D1 = dt.date(2024, 1, 30)
D2 = D1 + dt.timedelta(days=1)
SEED = 3


@pytest.fixture(scope="session")
def pipeline_runs(tmp_path_factory):
    """{pipeline: (settings, {ds: {step: summary}})} after two nights of each pipeline."""
    out = {}
    for name, spec in pipelines.PIPELINES.items():
        root = tmp_path_factory.mktemp(f"conformance-{name}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NIGHTSHIFT_LAKE", str(root / "lake"))
            mp.setenv("NIGHTSHIFT_WAREHOUSE", str(root / "warehouse.duckdb"))
            settings = load_settings()
            results = {}
            for night, ds in enumerate((D1, D2)):
                for source in spec.sources:
                    src = get_source(source)
                    src.load_synth()(root / "lake", ds, seed=SEED, **src.test_nights[night])
                day, done = ds.isoformat(), {}
                for source in spec.sources:
                    done[f"ingest {source}"] = steps.ingest(source, day, settings)
                    done[f"validate {source}"] = steps.validate(source, day, settings)
                    done[f"stage {source}"] = steps.stage(source, day, settings)
                for step in ("build_features", "train", "gate", "publish"):
                    done[step] = getattr(steps, step)(name, day, settings)
                results[ds] = done
        out[name] = (settings, results)
    return out
