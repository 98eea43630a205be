"""Generation as a deterministic plan of images cut into shards.

`plan_jobs` lists every image to make (class, strategy, index, prompt, seed, and for RG/RA the
image it starts from) in a fixed order; `shards_of` cuts the plan into shards of at most
`shard_size` images; `run_shards` makes the shards it is given, skipping those already complete
and intact, so a killed run started again finishes the job without duplicates.

Determinism: each image has its own random generator seeded from (global seed, dataset, class,
strategy, index), so its pixels do not depend on which other images share its batch, beyond the
floating-point rounding of batched kernels. Batches are cut on a fixed grid of `batch_size` jobs
from the start of each shard and shard sizes are multiples of the batch size, so every image is
made in the same batch whatever the sharding: any split gives byte-identical images.

Failures: `ImageMaker` halves its batch size when the device runs out of memory and makes the
same images again at the smaller size (recorded in `oom_events` and in each row's batch_size);
it keeps the smaller size for the rest of the run.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from genbench import storage
from genbench.datasets.base import DatasetSpec
from genbench.errors import GenBenchError
from genbench.prompts import PromptSources, Strategy, build_prompts, parse_strategy
from genbench.seeding import class_rng, image_seed
from genbench.strategies.selection import filter_rules, select_passing
from genbench.strategies.guidance import ReferenceImage, image_to_image_pipeline, init_image

OUT_OF_MEMORY: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
)


@dataclass(frozen=True)
class ImageJob:
    key: str
    dataset: str
    class_index: int
    class_name: str
    strategy: str
    index: int
    prompt: str
    negative_prompt: str
    seed: int
    caption_source: str = ""
    init_image: str = ""
    init_sha256: str = ""
    strength: float = 0.0


@dataclass(frozen=True)
class GenerationSettings:
    height: int
    width: int
    steps: int
    guidance_scale: float
    batch_size: int


@dataclass(frozen=True)
class PlanInputs:
    """What strategies beyond ST/DT/NP/RD plan with: texts made by models (CE/LE, CiP), reference
    images by init part and class (RG: 'RG' -> originals, RA: 'RA' -> retrieved), the
    image-to-image strength per init part, and the candidate oversampling of filtered (CF, RF)
    strategies."""

    sources: PromptSources = field(default_factory=PromptSources)
    references: Mapping[str, Mapping[int, Sequence[ReferenceImage]]] = field(default_factory=dict)
    strengths: Mapping[str, float] = field(default_factory=dict)
    filter_oversample: float = 0.0


def candidates_per_class(strategy: Strategy, images_per_class: int, oversample: float) -> int:
    """Images planned per class: n, or ceil(n * (1 + oversample)) for a filtered strategy (CF, RF
    or both: one oversampling, so a strategy with both filters plans as many as one with either)."""
    return math.ceil(images_per_class * (1.0 + oversample)) if strategy.filters else images_per_class


def plan_jobs(ds: DatasetSpec, strategies: Iterable[str], images_per_class: int, global_seed: int,
              inputs: PlanInputs | None = None) -> list[ImageJob]:
    inputs = inputs or PlanInputs()
    jobs = []
    for name in strategies:
        strategy = parse_strategy(name)
        count = candidates_per_class(strategy, images_per_class, inputs.filter_oversample)
        for cls, classname in enumerate(ds.classnames):
            specs = build_prompts(strategy, ds, cls, count, class_rng(global_seed, ds.name, cls, name), inputs.sources)
            refs = _references(inputs, strategy, cls, classname)
            for i, spec in enumerate(specs):
                ref = refs[i % len(refs)] if refs else None
                jobs.append(
                    ImageJob(
                        key=f"{ds.name}-{strategy.tag}-c{cls:04d}-{i:05d}",
                        dataset=ds.name,
                        class_index=cls,
                        class_name=classname,
                        strategy=name,
                        index=i,
                        prompt=spec.prompt,
                        negative_prompt=spec.negative_prompt,
                        seed=image_seed(global_seed, ds.name, cls, name, i),
                        caption_source=spec.caption_source,
                        init_image=ref.key if ref else "",
                        init_sha256=ref.sha256 if ref else "",
                        strength=float(inputs.strengths.get(strategy.init, 0.0)) if ref else 0.0,
                    )
                )
    return jobs


def _references(inputs: PlanInputs, strategy: Strategy, cls: int, classname: str) -> Sequence[ReferenceImage]:
    if not strategy.init:
        return ()
    refs = inputs.references.get(strategy.init, {}).get(cls)
    if not refs:
        raise GenBenchError(f"strategy {strategy.name} starts from reference images, but class {classname!r} has none; "
                            f"give {strategy.init} reference images for every class")
    if strategy.init not in inputs.strengths:
        raise GenBenchError(f"strategy {strategy.name}: no image-to-image strength given for {strategy.init}")
    return refs


def shards_of(jobs: list[ImageJob], shard_size: int) -> list[list[ImageJob]]:
    return [jobs[i : i + shard_size] for i in range(0, len(jobs), shard_size)]


def shard_plan_hash(jobs: list[ImageJob], generator_id: dict, settings: GenerationSettings, extra: dict | None = None) -> str:
    """What a shard's content depends on: its jobs, the generator, the settings and `extra`
    (what the rows' stored scores depend on, e.g. the CF model, RF's originals and neighbours)."""
    payload = [[asdict(j) for j in jobs], generator_id, asdict(settings)] + ([extra] if extra else [])
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def select_shards(num_shards: int, part: int, parts: int) -> list[int]:
    """Shard indices of part `part` (0-based) of `parts`: round-robin, so parts stay balanced."""
    return [i for i in range(num_shards) if i % parts == part]


def _to_uint8(images) -> list[np.ndarray]:
    return [(np.clip(img, 0, 1) * 255).round().astype(np.uint8) for img in images]


def _free_device_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ImageMaker:
    """Makes the images of a list of jobs with one diffusers pipeline: text-to-image, or
    image-to-image (from `init_images[job.init_image]`) for jobs with an init image.

    Called with jobs (a shard), it cuts them on the batch grid, splits each batch into runs of
    consecutive jobs of the same kind (text-to-image, or image-to-image at one strength), and on
    out-of-memory halves `batch_size` and retries."""

    def __init__(self, pipe, settings: GenerationSettings, *, device: str = "cpu",
                 init_images: Mapping[str, np.ndarray] | None = None, negative_prompts: bool = True):
        self.pipe = pipe
        self.settings = settings
        self.device = device
        self.init_images = init_images or {}
        self.negative_prompts = negative_prompts
        self.batch_size = settings.batch_size
        self.oom_events: list[dict] = []
        self.batch_size_of: dict[str, int] = {}
        self._img2img = None

    def __call__(self, jobs: list[ImageJob]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(jobs), self.settings.batch_size):
            grid = jobs[start : start + self.settings.batch_size]
            for run in _runs_of_same_kind(grid):
                out.extend(self._make(run))
        return out

    def _make(self, run: list[ImageJob]) -> list[np.ndarray]:
        images: list[np.ndarray] = []
        done = 0
        while done < len(run):
            batch = run[done : done + self.batch_size]
            try:
                made = self._call(batch)
            except OUT_OF_MEMORY:
                if self.batch_size == 1:
                    raise GenBenchError(f"out of device memory at batch size 1 (image {batch[0].key}); "
                                        "lower generate.height/width, use float16, or a larger GPU") from None
                smaller = max(1, self.batch_size // 2)
                self.oom_events.append({"key": batch[0].key, "batch_size": self.batch_size, "retry_batch_size": smaller})
                self.batch_size = smaller
                _free_device_memory()
                continue
            for job in batch:
                self.batch_size_of[job.key] = self.batch_size
            images.extend(made)
            done += len(batch)
        return images

    def _call(self, batch: list[ImageJob]) -> list[np.ndarray]:
        s = self.settings
        kwargs = dict(
            prompt=[j.prompt for j in batch],
            num_inference_steps=s.steps,
            guidance_scale=s.guidance_scale,
            generator=[torch.Generator(device="cpu").manual_seed(j.seed) for j in batch],
            output_type="np",
        )
        negatives = [j.negative_prompt for j in batch]
        if any(negatives):
            if not self.negative_prompts:
                raise GenBenchError(f"{type(self.pipe).__name__} takes no negative prompt; drop NP from the strategies")
            kwargs["negative_prompt"] = negatives
        if batch[0].init_image:
            if self._img2img is None:
                self._img2img = image_to_image_pipeline(self.pipe)
            missing = [j.init_image for j in batch if j.init_image not in self.init_images]
            if missing:
                raise GenBenchError(f"reference image {missing[0]!r} was planned but not loaded")
            kwargs["image"] = [init_image(self.init_images[j.init_image], s.width, s.height) for j in batch]
            kwargs["strength"] = batch[0].strength
            result = self._img2img(**kwargs)
        else:
            result = self.pipe(height=s.height, width=s.width, **kwargs)
        return _to_uint8(result.images)


def _runs_of_same_kind(jobs: list[ImageJob]) -> list[list[ImageJob]]:
    runs: list[list[ImageJob]] = []
    for job in jobs:
        kind = (bool(job.init_image), job.strength)
        if runs and (bool(runs[-1][0].init_image), runs[-1][0].strength) == kind:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs


def generate_images(pipe, jobs: list[ImageJob], settings: GenerationSettings, device: str = "cpu",
                    init_images: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """uint8 (H, W, 3) images for `jobs`, one seeded generator per image."""
    return ImageMaker(pipe, settings, device=device, init_images=init_images)(jobs)


def run_shards(
    out_dir: str | Path,
    shards: list[list[ImageJob]],
    indices: list[int],
    make_images: Callable[[list[ImageJob]], list[np.ndarray]],
    row_extra: dict,
    plan_hashes: list[str],
    progress: bool = True,
    on_shard_done: Callable[[int, list[dict]], None] | None = None,
    row_fields: Callable[[list[ImageJob], list[np.ndarray]], list[dict]] | None = None,
) -> tuple[list[dict], int]:
    """Make the shards in `indices`; return (their manifest rows in shard order, images made now).
    `row_fields(jobs, images)` adds per-image fields to the rows (e.g. CF confidences)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, made = [], 0
    total = sum(len(shards[i]) for i in indices)
    with tqdm(total=total, desc="generate", unit="img", disable=not progress) as bar:
        for i in indices:
            done = storage.completed_shard_rows(out_dir, i, plan_hashes[i])
            if done is None:
                images = make_images(shards[i])
                extras = row_fields(shards[i], images) if row_fields else [{}] * len(images)
                records = [
                    storage.Record(png=storage.encode_png(img), row={**asdict(job), **row_extra, **more})
                    for job, img, more in zip(shards[i], images, extras)
                ]
                done = storage.write_shard(out_dir, i, records, plan_hashes[i])
                made += len(records)
                if on_shard_done:
                    on_shard_done(i, done)
            rows.extend(canonical_row(r) for r in done)
            bar.update(len(shards[i]))
    return rows, made


JOB_FIELDS = tuple(ImageJob.__dataclass_fields__)


def canonical_row(row: dict) -> dict:
    """The row with a fixed key order (the job's fields, then the rest sorted), so a manifest is
    the same whether its shards were made now or read back from their sidecars."""
    return {**{k: row[k] for k in JOB_FIELDS if k in row}, **{k: row[k] for k in sorted(row) if k not in JOB_FIELDS}}


def select_images(rows: list[dict], images_per_class: int, threshold: float, fill: bool) -> tuple[list[dict], list[dict]]:
    """Apply the filters of filtered strategies (CF rows carry 'cf_confidence', RF rows
    'rf_own_share'; `threshold` is CF's) per strategy and class, as genbench.strategies.selection
    says: (kept rows in their original order, dropped rows), both with 'filter_status'; rows of
    other strategies are kept as they are."""
    rules = filter_rules(threshold)
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        if parse_strategy(row["strategy"]).filters:
            groups.setdefault((row["strategy"], int(row["class_index"])), []).append(row)
    status: dict[str, dict] = {}
    dropped: list[dict] = []
    for (strategy, _), candidates in groups.items():
        parts = parse_strategy(strategy).filters
        kept, gone = select_passing(candidates, images_per_class, [r for p, r in rules.items() if p in parts], fill)
        status.update({r["key"]: r for r in kept})
        dropped.extend(gone)
    filtered = {strategy for strategy, _ in groups}
    kept_rows = [status.get(r["key"], r) for r in rows if r["key"] in status or r["strategy"] not in filtered]
    return kept_rows, dropped
