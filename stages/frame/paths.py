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
from genbench.errors import DataFileError, run_first

METRICS = Path("metrics")
REPORTS = Path("reports")
METER_DATASETS = Path("meter/datasets")
METER_PIPELINE = Path("meter/pipeline")
POOL_DIR = Path("data/pool")
INDEX_DIR = Path("data/index")


def _data_folder(name: str) -> property:
    """The read-only attribute data/<dataset>/<name>."""
    return property(lambda self: Path("data") / self.dataset / name, doc=f"data/<dataset>/{name}")


@dataclass(frozen=True)
class DatasetPaths:
    """Every path a per-dataset stage reads or writes for one dataset."""

    dataset: str

    prepared = _data_folder("prepared")
    generated = _data_folder("generated")
    retrieved = _data_folder("retrieved")
    inversion = _data_folder("inversion")
    features = _data_folder("features")

    def backbone_features(self, model: str, pretrained: str | None) -> Path:
        """Where an extra backbone's features go (embed.backbones): features/backbones/<model>__<pretrained>."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{model}__{pretrained}")
        return self.features / "backbones" / safe

    @property
    def metrics(self) -> Path:
        return METRICS / self.dataset

    @property
    def samples(self) -> Path:
        return Path("plots") / self.dataset / "samples.png"

    def scored_features(self) -> list[Path]:
        """What the scoring stages (cler, probe) read: the prepared metadata, the generated
        manifest and the test, text, generated and original features."""
        return [self.prepared / "meta.json", self.generated / "manifest.parquet",
                *(self.features / f"{name}.safetensors" for name in ("test", "text", "generated", "original"))]

    def meter(self, stage: str) -> Path:
        return METER_DATASETS / self.dataset / f"{stage}.json"

    def read_meta(self) -> dict:
        path = self.prepared / "meta.json"
        if not path.is_file():
            raise DataFileError(path, "not found", missing=True)
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataFileError(path, f"is corrupt ({type(exc).__name__})") from None
        if not isinstance(meta, dict) or not {"classnames", "templates", "metric"} <= set(meta):
            raise DataFileError(path, "is corrupt: it lacks classnames, templates or metric")
        return meta

    def require(self, *paths: Path) -> None:
        """Raise DataFileError for the first of `paths` that does not exist (checked before a run opens)."""
        for path in paths:
            if not path.exists():
                raise DataFileError(path, "not found", missing=True)

    def spec(self) -> DatasetSpec:
        return DatasetSpec.from_metadata(self.read_meta())


# Output folder (under data/<dataset>/) -> the stage that writes it.
DATA_PRODUCERS = {"prepared": "prepare", "generated": "generate", "retrieved": "retrieve", "inversion": "invert",
                  "features": "embed"}
# Pipeline-wide outputs (their first path parts) -> the stage that writes them.
PIPELINE_PRODUCERS = {("models",): "bootstrap", ("reports",): "report", ("data", "pool"): "pool",
                      ("data", "index"): "index", ("metrics", "cost.json"): "cost"}


def producing_stage(path: str | Path) -> str | None:
    """The DVC stage that writes `path` (e.g. data/digits/generated/shard-00001.tar -> generate@digits),
    or None for a file no stage writes."""
    parts = Path(path).parts
    for prefix, stage in PIPELINE_PRODUCERS.items():
        if parts[: len(prefix)] == prefix:
            return stage
    if len(parts) >= 3 and parts[0] == "data" and parts[2] in DATA_PRODUCERS:
        return f"{DATA_PRODUCERS[parts[2]]}@{parts[1]}"
    if len(parts) >= 3 and parts[0] == "metrics":
        return f"{Path(parts[2]).stem}@{parts[1]}"
    if len(parts) == 4 and parts[:2] == ("meter", "datasets"):
        return f"{Path(parts[3]).stem}@{parts[2]}"
    if len(parts) == 3 and parts[:2] == ("meter", "pipeline"):
        return Path(parts[2]).stem
    return None


def rebuild_advice(exc: DataFileError) -> str:
    """What to run about a missing or damaged file: `dvc repro STAGE` or `dvc repro -f -s STAGE`."""
    stage = producing_stage(exc.path)
    if stage is None:
        return "replace it with an intact copy" if not exc.missing else "create it"
    if exc.missing:
        name, _, dataset = stage.partition("@")
        return run_first(name, dataset or None)
    return f"rebuild it with `dvc repro -f -s {stage}`"
