"""Paths the stages hand to each other, and readers for them."""

from __future__ import annotations

import json
from pathlib import Path

from genbench.datasets.base import DatasetSpec
from genbench.errors import GenBenchError

PREPARED = Path("data/prepared")
GENERATED = Path("data/generated")
FEATURES = Path("data/features")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")


def read_meta(prepared: Path = PREPARED) -> dict:
    path = prepared / "meta.json"
    if not path.is_file():
        raise GenBenchError(f"{path} not found; run the prepare stage first (dvc repro prepare)")
    return json.loads(path.read_text())


def dataset_from_meta(prepared: Path = PREPARED) -> DatasetSpec:
    return DatasetSpec.from_metadata(read_meta(prepared))


def read_json(path: Path, producer: str) -> dict:
    if not path.is_file():
        raise GenBenchError(f"{path} not found; run the {producer} stage first (dvc repro {producer})")
    return json.loads(path.read_text())
