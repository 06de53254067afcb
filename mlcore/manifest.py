"""The run manifest: what a training run did, in one typed record the whole platform reads.

A trainer returns a :class:`RunManifest`; the core writes it last, as
``models/<pipeline>/<version>/manifest.json`` (a run whose manifest exists is complete). The
gate (:mod:`mlcore.registry`), the steps, the bench, ``nightshift metrics`` and the plots read
it back with :meth:`RunManifest.from_dict`, which checks its shape and fails in one line.

Vocabulary:

- **models**: the run's candidates for the published *slots* (music_skip has two, one per A/B
  arm). The gate promotes or rejects each; a promoted model becomes the slot's champion.
- **baselines**: models measured on the same evaluation rows to beat (the gate's ``must_beat``);
  the ``naive`` one (a constant, a seasonal naive forecast, the most popular items) is the bar
  a model must clear to serve at all.
- **challengers**: models trained and measured on the same rows beside the slots' candidates
  (music_skip's sequence model), reported every night but serving no slot: promoting one
  means giving it a slot. The gate records them with status ``challenger`` and a verdict.
- **champions**: the current champion of each slot, re-scored on this run's evaluation rows.
- **scored**: which (model, version) pairs have scores for tonight's rows (``scores_key``): the
  new candidates, the champions, and the baselines that may serve as a fallback.
- **evaluation**: where the evaluation rows are and how to read them for this ``kind``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from mlcore.contract import KINDS


class ManifestError(ValueError):
    """A manifest is missing a field or holds one of the wrong shape (the message says which)."""


COUNT_KEYS = ("input_rows", "train_rows", "evaluation_rows", "scored_rows")
"""The counts every manifest carries (a pipeline may add its own beside them)."""


@dataclass
class ModelEntry:
    """One fitted model of a run: its evaluation metrics and where it lies in the lake."""

    metrics: dict[str, Any]
    artifact: str | None = None  # lake key of the model file; None for a constant
    inputs: list[str] = field(default_factory=list)  # the feature columns it reads
    fit: dict[str, Any] = field(default_factory=dict)  # epochs, history, rows
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a constant baseline's value


@dataclass
class ChampionEntry:
    """The current champion of a slot, scored on this run's evaluation rows."""

    version: str
    metrics: dict[str, Any]


@dataclass
class GateRule:
    """How the gate judges this run's models (see :func:`mlcore.registry.decide`)."""

    metric: str
    greater_is_better: bool = True
    must_beat: list[str] = field(default_factory=list)
    # The baseline any serving model must beat outright; defaults to the first of must_beat.
    naive: str | None = None
    baseline_tolerance: float = 0.0
    # Baselines matched within baseline_tolerance; the others must be beaten outright.
    tolerance_applies_to: list[str] | None = None
    # When nothing beats the naive baseline, it serves (degraded, the reason says so) instead
    # of failing the run: a seasonal naive forecast is a forecast ops can use; a constant
    # probability or the most popular items would hide the failure, so the default is False.
    naive_may_serve: bool = False

    def __post_init__(self) -> None:
        if self.naive is None and self.must_beat:
            self.naive = self.must_beat[0]


@dataclass
class Evaluation:
    """Where a run's evaluation rows are, and which columns mean what, for its kind.

    - binary: ``key`` holds one row per evaluation example, ``columns["label"]`` the 0/1 truth
      and ``scores`` maps each model (baselines, and ``champion_<slot>``) to its P(1) column;
    - ranking / recall: ``key`` holds one row per query × recommended item
      (``columns``: query, item, rank, model), ``truth_key`` one row per query × relevant item;
      ``k`` is the cut-off (the gate's), ``ks`` more cut-offs to report. A recall run may add
      ``pairs_key``: scored (query, item) pairs, one row each, ``columns["pair"]`` saying which
      (``positive``, ``negative``: a held-out rating below the bar, ``unrated``: a random item
      the query never rated), ``scores`` each model's score column and ``ratings`` each rating
      model's predicted-rating column against ``columns["rating"]`` (see
      :func:`mlcore.metrics.pair_metrics`);
    - forecast: ``key`` holds one row per series × time × model (``columns``: series, time,
      actual, forecast, lower, upper, model, scale).
    """

    key: str
    columns: dict[str, str] = field(default_factory=dict)
    scores: dict[str, str] = field(default_factory=dict)
    truth_key: str | None = None
    k: int | None = None
    ks: list[int] = field(default_factory=list)
    pairs_key: str | None = None
    ratings: dict[str, str] = field(default_factory=dict)


@dataclass
class ScoredModel:
    model: str
    version: str


@dataclass
class RunManifest:
    pipeline: str
    kind: str
    version: str
    ds: str
    data_fingerprint: str
    params: dict[str, Any]
    gate: GateRule
    models: dict[str, ModelEntry]
    baselines: dict[str, ModelEntry]
    evaluation: Evaluation
    champions: dict[str, ChampionEntry] = field(default_factory=dict)
    challengers: dict[str, ModelEntry] = field(default_factory=dict)
    scored: list[ScoredModel] = field(default_factory=list)
    scores_key: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    split_time: str | None = None
    runtime: dict[str, str] = field(default_factory=dict)
    created_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"manifest of {self.pipeline} {self.version}"
        if self.kind not in KINDS:
            raise ManifestError(f"{where}: kind {self.kind!r} is not one of {KINDS}")
        if not self.models:
            raise ManifestError(f"{where}: no model")
        missing = [c for c in COUNT_KEYS if c not in self.counts]
        if missing:
            raise ManifestError(f"{where}: counts lack {', '.join(missing)}")
        for name in self.gate.must_beat + ([self.gate.naive] if self.gate.naive else []):
            if name not in self.baselines:
                raise ManifestError(f"{where}: the gate names baseline {name!r}, not in the run")
        groups = {
            "models": self.models,
            "baselines": self.baselines,
            "challengers": self.challengers,
        }
        seen: dict[str, str] = {}
        for group, entries in groups.items():
            for name in entries:
                if name in seen:
                    raise ManifestError(f"{where}: {name!r} is in both {seen[name]} and {group}")
                seen[name] = group

    # ---- reading -----------------------------------------------------------------------------
    def entry(self, name: str) -> ModelEntry:
        """A model, a baseline or a challenger of this run, by name."""
        for group in (self.models, self.baselines, self.challengers):
            if name in group:
                return group[name]
        raise KeyError(f"{self.pipeline} {self.version} has no model {name!r}")

    def is_scored(self, model: str, version: str) -> bool:
        return any(s.model == model and s.version == version for s in self.scored)

    # ---- (de)serialising ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Indented, key-sorted JSON (diffable between runs)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "manifest") -> RunManifest:
        """Read a manifest back; ManifestError names the first field that is missing or bad."""
        try:
            return cls(
                pipeline=data["pipeline"],
                kind=data["kind"],
                version=data["version"],
                ds=str(data["ds"]),
                data_fingerprint=data["data_fingerprint"],
                params=dict(data.get("params") or {}),
                gate=GateRule(**data["gate"]),
                models={k: ModelEntry(**v) for k, v in data["models"].items()},
                baselines={k: ModelEntry(**v) for k, v in data["baselines"].items()},
                evaluation=Evaluation(**data["evaluation"]),
                champions={k: ChampionEntry(**v) for k, v in (data.get("champions") or {}).items()},
                challengers={
                    k: ModelEntry(**v) for k, v in (data.get("challengers") or {}).items()
                },
                scored=[ScoredModel(**s) for s in data.get("scored") or []],
                scores_key=data.get("scores_key"),
                counts=dict(data.get("counts") or {}),
                timings=dict(data.get("timings") or {}),
                split_time=data.get("split_time"),
                runtime=dict(data.get("runtime") or {}),
                created_at=data.get("created_at") or "",
                extra=dict(data.get("extra") or {}),
            )
        except KeyError as exc:
            raise ManifestError(f"{where} lacks {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ManifestError(f"{where} is malformed: {exc}") from None

    @classmethod
    def from_json(cls, text: str, *, where: str = "manifest") -> RunManifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{where} is not a JSON object")
        return cls.from_dict(data, where=where)
