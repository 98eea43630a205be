"""Where the stages put their outputs and find each other's, and readers for them.

Per-dataset stages (prepare, generate, embed, cler, probe) run once per entry of `datasets` in
params.yaml (DVC `foreach`) and write under `data/<dataset>/`, `metrics/<dataset>/`,
`plots/<dataset>/` and `meter/datasets/<dataset>/`. Pipeline-wide stages (cost, report) read
those trees whole and write `metrics/cost.json`, `reports/` and `meter/pipeline/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genbench.datasets.base import DatasetSpec
from genbench.errors import GenBenchError

METRICS = Path("metrics")
REPORTS = Path("reports")
METER_DATASETS = Path("meter/datasets")
METER_PIPELINE = Path("meter/pipeline")


@dataclass(frozen=True)
class DatasetPaths:
    """Every path a per-dataset stage reads or writes for one dataset."""

    dataset: str

    @property
    def prepared(self) -> Path:
        return Path("data") / self.dataset / "prepared"

    @property
    def generated(self) -> Path:
        return Path("data") / self.dataset / "generated"

    @property
    def retrieved(self) -> Path:
        return Path("data") / self.dataset / "retrieved"

    @property
    def inversion(self) -> Path:
        return Path("data") / self.dataset / "inversion"

    @property
    def features(self) -> Path:
        return Path("data") / self.dataset / "features"

    @property
    def metrics(self) -> Path:
        return METRICS / self.dataset

    @property
    def samples(self) -> Path:
        return Path("plots") / self.dataset / "samples.png"

    def meter(self, stage: str) -> Path:
        return METER_DATASETS / self.dataset / f"{stage}.json"

    def read_meta(self) -> dict:
        path = self.prepared / "meta.json"
        if not path.is_file():
            raise GenBenchError(f"{path} not found; run the prepare stage first (dvc repro prepare@{self.dataset})")
        return json.loads(path.read_text())

    def spec(self) -> DatasetSpec:
        return DatasetSpec.from_metadata(self.read_meta())


def read_json(path: Path, producer: str) -> dict:
    if not path.is_file():
        raise GenBenchError(f"{path} not found; run the {producer} stage first (dvc repro {producer})")
    return json.loads(path.read_text())
