"""Generation as a deterministic plan of images cut into shards.

`plan_jobs` lists every image to make (class, strategy, index, prompt, seed) in a fixed order;
`shards_of` cuts the plan into shards of at most `shard_size` images; `run_shards` makes the
shards it is given, skipping those already complete and intact, so a killed run started again
finishes the job without duplicates. Batches never cross shard boundaries, and each image has its
own random generator, so its pixels do not depend on which other images share its batch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from genbench import storage
from genbench.datasets.base import DatasetSpec
from genbench.prompts import build_prompts
from genbench.seeding import class_rng, image_seed


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


@dataclass(frozen=True)
class GenerationSettings:
    height: int
    width: int
    steps: int
    guidance_scale: float
    batch_size: int


def plan_jobs(ds: DatasetSpec, strategies: Iterable[str], images_per_class: int, global_seed: int) -> list[ImageJob]:
    jobs = []
    for strategy in strategies:
        tag = strategy.replace("+", "_")
        for cls, name in enumerate(ds.classnames):
            specs = build_prompts(strategy, ds, cls, images_per_class, class_rng(global_seed, ds.name, cls, strategy))
            for i, spec in enumerate(specs):
                jobs.append(
                    ImageJob(
                        key=f"{ds.name}-{tag}-c{cls:04d}-{i:05d}",
                        dataset=ds.name,
                        class_index=cls,
                        class_name=name,
                        strategy=strategy,
                        index=i,
                        prompt=spec.prompt,
                        negative_prompt=spec.negative_prompt,
                        seed=image_seed(global_seed, ds.name, cls, strategy, i),
                    )
                )
    return jobs


def shards_of(jobs: list[ImageJob], shard_size: int) -> list[list[ImageJob]]:
    return [jobs[i : i + shard_size] for i in range(0, len(jobs), shard_size)]


def shard_plan_hash(jobs: list[ImageJob], generator_id: dict, settings: GenerationSettings) -> str:
    blob = json.dumps([[asdict(j) for j in jobs], generator_id, asdict(settings)], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def select_shards(num_shards: int, part: int, parts: int) -> list[int]:
    """Shard indices of part `part` (0-based) of `parts`: round-robin, so parts stay balanced."""
    return [i for i in range(num_shards) if i % parts == part]


def generate_images(pipe, jobs: list[ImageJob], settings: GenerationSettings, device: str = "cpu") -> list[np.ndarray]:
    """uint8 (H, W, 3) images for `jobs`, one seeded generator per image."""
    out = []
    for start in range(0, len(jobs), settings.batch_size):
        batch = jobs[start : start + settings.batch_size]
        generators = [torch.Generator(device="cpu").manual_seed(j.seed) for j in batch]
        negatives = [j.negative_prompt for j in batch]
        result = pipe(
            prompt=[j.prompt for j in batch],
            negative_prompt=negatives if any(negatives) else None,
            height=settings.height,
            width=settings.width,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance_scale,
            generator=generators,
            output_type="np",
        )
        out.extend((np.clip(img, 0, 1) * 255).round().astype(np.uint8) for img in result.images)
    return out


def run_shards(
    out_dir: str | Path,
    shards: list[list[ImageJob]],
    indices: list[int],
    make_images: Callable[[list[ImageJob]], list[np.ndarray]],
    row_extra: dict,
    plan_hashes: list[str],
    progress: bool = True,
    on_shard_done: Callable[[int, list[dict]], None] | None = None,
) -> tuple[list[dict], int]:
    """Make the shards in `indices`; return (their manifest rows in shard order, images made now)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, made = [], 0
    total = sum(len(shards[i]) for i in indices)
    with tqdm(total=total, desc="generate", unit="img", disable=not progress) as bar:
        for i in indices:
            done = storage.completed_shard_rows(out_dir, i, plan_hashes[i])
            if done is None:
                images = make_images(shards[i])
                records = [
                    storage.Record(png=storage.encode_png(img), row={**asdict(job), **row_extra})
                    for job, img in zip(shards[i], images)
                ]
                done = storage.write_shard(out_dir, i, records, plan_hashes[i])
                made += len(records)
                if on_shard_done:
                    on_shard_done(i, done)
            rows.extend(done)
            bar.update(len(shards[i]))
    return rows, made
