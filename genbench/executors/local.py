"""The local executor: this process loads the model once and works through the shards in order."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from genbench import storage
from genbench.executors.runs import EmbedRun, EncodedSet, ExecutorOptions, ShardRun
from genbench.executors.workers import EmbeddingWorker, GenerationWorker, ShardMaker, encode_shard, load_encoder, make_shard
from genbench.generation import ImageJob, canonical_row


def generate_local(out_dir: str | Path, shards: list[list[ImageJob]], indices: list[int], worker: GenerationWorker,
                   row_extra: dict, plan_hashes: list[str], *, init_images: Mapping[str, np.ndarray] | None = None,
                   options: ExecutorOptions = ExecutorOptions(), progress: bool = True,
                   on_shard_done: Callable[[int, list[dict]], None] | None = None) -> ShardRun:
    """Make the shards in `indices` here, skipping complete ones (as genbench.generation.run_shards);
    `init_images` holds the reference images of image-to-image jobs by key."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    maker = None
    rows, made = [], 0
    with tqdm(total=sum(len(shards[i]) for i in indices), desc="generate", unit="img", disable=not progress) as bar:
        for i in indices:
            done = storage.completed_shard_rows(out_dir, i, plan_hashes[i])
            if done is None:
                maker = maker or ShardMaker(worker)
                done, now = make_shard(out_dir, i, shards[i], maker, row_extra, plan_hashes[i], init_images)
                made += now
                if on_shard_done:
                    on_shard_done(i, done)
            rows.extend(canonical_row(r) for r in done)
            bar.update(len(shards[i]))
    return ShardRun(rows=rows, made=made, oom_events=list(maker.oom_events) if maker else [], workers=1)


def shard_tasks(directory: str | Path) -> tuple[list[tuple[Path, tuple[str, ...]]], pd.DataFrame]:
    """(shard file, the keys the manifest takes from it) of an image set in manifest order, and its manifest."""
    directory = Path(directory)
    manifest = storage.read_manifest(directory)
    keys: dict[str, list[str]] = {}
    for shard, key in zip(manifest["shard"], manifest["key"]):
        keys.setdefault(shard, []).append(key)
    return [(directory / shard, tuple(k)) for shard, k in keys.items()], manifest


def assemble(directory: str | Path, manifest: pd.DataFrame, encoded: Mapping[str, np.ndarray]) -> np.ndarray:
    """Features in manifest order from {key: feature row}; every manifest row must have one."""
    missing = [k for k in manifest["key"] if k not in encoded]
    if missing:
        raise ValueError(f"{directory}: {len(missing)} manifest rows have no image in the shards (first: {missing[0]})")
    if not len(manifest):
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([encoded[k] for k in manifest["key"]]).astype(np.float32, copy=False)


def embed_local(image_sets: Mapping[str, str | Path], worker: EmbeddingWorker, *,
                options: ExecutorOptions = ExecutorOptions(), progress: bool = True) -> EmbedRun:
    """Encode every shard of each image set here, one shard file at a time."""
    loaded = load_encoder(worker)
    out = {}
    for name, directory in image_sets.items():
        tasks, manifest = shard_tasks(directory)
        encoded: dict[str, np.ndarray] = {}
        for path, keys in tqdm(tasks, desc=f"embed {name}", unit="shard", disable=not progress):
            encoded.update(zip(*encode_shard(loaded.encode_pngs, path, keys)))
        out[name] = EncodedSet(features=assemble(directory, manifest, encoded), manifest=manifest)
    return EmbedRun(sets=out)
