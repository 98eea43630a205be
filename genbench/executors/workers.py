"""What an executor's worker does: load its models once, then make or encode whole shards.

A worker is described by a picklable spec (`GenerationWorker`, `EmbeddingWorker`) rather than a
closure, so a process on another machine (a Ray actor) builds the same models from it.
`load_generator` / `load_encoder` load the models of a spec once per process (the last one is
kept); a `ShardMaker` makes the images and rows of generation shards and `make_shard` writes one;
`encode_shard` encodes the images of one shard file. Every executor runs exactly these
functions, so they all write the same rows and bytes.

CPU results depend on the number of torch threads (the blocking of matrix products changes the
rounding), so a spec carries `cpu_threads`, set around every call: by default the thread count
of the process that built the spec, so a Ray worker computes with the driver's thread count.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Mapping

import numpy as np
import torch

from genbench import storage
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.generation import GenerationSettings, ImageJob


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_threads(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise GenBenchError(f"cpu_threads = {count!r} must be a whole number of 1 or more")


def _check_weights(kind: str, model: str, expected: str | None, actual: str) -> None:
    if expected is not None and expected != actual:
        raise GenBenchError(
            f"{kind} {model!r} loaded on {socket.gethostname()} has weights sha256 {actual[:12]}..., the driver's has "
            f"{expected[:12]}...; give every node the same model files (same revision in HF_HOME, or the same local folder)"
        )


# GenerationWorker fields that do not change what is loaded (applied per call instead)
_PER_CALL_FIELDS = ("settings", "strategy_fields", "filtered_strategies", "real_filtered_strategies", "rf_neighbours", "expected")


@dataclass(frozen=True)
class GenerationWorker:
    """How a worker builds its text-to-image pipeline and what it adds to each image's row.

    Loading: genbench.generators.load_pipeline's arguments, configure_pipeline's scheduler and
    attention, torch.compile of the denoiser, textual inversion tokens read from
    `inversion_path`, and for filtered strategies (CF, RF) the CLIP filter of
    genbench.strategies.clip_filter.load_clip_filter; for RF also the class-labelled originals of
    the image set `real_filter_set` (genbench.strategies.real_filter.load_real_references),
    embedded with that CLIP model once per process.
    Rows: each image's row gets its batch size, `strategy_fields[strategy]`, for a strategy in
    `filtered_strategies` its CF confidence (`cf_confidence`), and for one in
    `real_filtered_strategies` the share of its `rf_neighbours` nearest originals that are of its
    class (`rf_own_share`).
    `expected`, when set, is the `identity` (weights and model hashes) every worker must find in
    what it loaded, so nodes with different model files stop the run instead of mixing images.
    """

    model: str
    settings: GenerationSettings
    revision: str | None = None
    variant: str | None = None
    dtype: str = "float32"
    device: str = "auto"
    seed: int = 0
    image_size: int = 32
    scheduler: str = "default"
    attention: str = "sdpa"
    compile: bool = False
    inversion_path: str | None = None
    inversion_tokens: tuple[str, ...] = ()
    filter_model: str | None = None
    filter_pretrained: str | None = None
    classnames: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    real_filter_set: str | None = None
    cpu_threads: int = field(default_factory=torch.get_num_threads)
    strategy_fields: Mapping[str, dict] = field(default_factory=dict)
    filtered_strategies: frozenset[str] = frozenset()
    real_filtered_strategies: frozenset[str] = frozenset()
    rf_neighbours: int = 1
    expected: Mapping[str, object] | None = None

    def load_key(self) -> tuple:
        return tuple((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in _PER_CALL_FIELDS)


@dataclass
class LoadedGenerator:
    """A loaded pipeline (and CLIP filter, RF's originals), with `identity`: what the manifest pins about them."""

    pipe: object
    device: str
    identity: dict
    clip_filter: object | None
    negative_prompts: bool
    real_references: object | None = None


_generators: dict[tuple, LoadedGenerator] = {}  # at most one: the last spec loaded in this process


def load_generator(worker: GenerationWorker) -> LoadedGenerator:
    """The pipeline of `worker`, loaded once per process; checks `worker.expected`."""
    _check_threads(worker.cpu_threads)
    key = worker.load_key()
    if key not in _generators:
        _generators.clear()
        with torch_threads(worker.cpu_threads):
            _generators[key] = _load(worker, resolve_device(worker.device))
    loaded = _generators[key]
    _check_identity(worker.model, worker.expected, loaded.identity)
    return loaded


def _load(worker: GenerationWorker, device: str) -> LoadedGenerator:
    from genbench.generators import (compile_denoiser, configure_pipeline, load_pipeline, resolved_revision,
                                     supports_negative_prompt, weights_sha256)

    pipe = load_pipeline(worker.model, revision=worker.revision, dtype=worker.dtype, device=device, seed=worker.seed,
                         image_size=worker.image_size, variant=worker.variant)
    configured = configure_pipeline(pipe, scheduler=worker.scheduler, attention=worker.attention)
    identity = {"weights_sha256": weights_sha256(pipe), "scheduler_class": configured["scheduler_class"],
                "attention": configured["attention"], "resolved_revision": resolved_revision(pipe),
                "inversion_sha256": None, "filter_name": None, "filter_weights_sha256": None, "rf_originals_sha256": None}
    if worker.inversion_path is not None:
        from genbench.strategies.textual_inversion import load_inversion_tokens

        identity["inversion_sha256"] = load_inversion_tokens(pipe, worker.inversion_path, list(worker.inversion_tokens))
    if worker.compile:
        compile_denoiser(pipe)
    clip_filter = None
    if worker.filter_model is not None:
        from genbench.strategies.clip_filter import load_clip_filter

        clip_filter = load_clip_filter(worker.filter_model, worker.filter_pretrained, list(worker.classnames),
                                       list(worker.templates), device=device, seed=worker.seed)
        identity.update(filter_name=clip_filter.name, filter_weights_sha256=clip_filter.weights_sha256)
    references = None
    if worker.real_filter_set is not None:
        from genbench.strategies.real_filter import load_real_references

        references = load_real_references(worker.real_filter_set)
        identity["rf_originals_sha256"] = references.sha256
    return LoadedGenerator(pipe, device, identity, clip_filter, supports_negative_prompt(pipe), references)


def _check_identity(model: str, expected: Mapping | None, actual: Mapping) -> None:
    if not expected:
        return
    differ = [k for k in expected if expected[k] != actual.get(k)]
    if differ:
        k = differ[0]
        raise GenBenchError(
            f"text-to-image model {model!r} loaded on {socket.gethostname()} has {k} = {str(actual.get(k))[:16]!r}, the "
            f"driver's has {str(expected[k])[:16]!r}; give every node the same model files (same revision in HF_HOME, "
            "or the same local folder) and the same software"
        )


class ShardMaker:
    """Makes the images and rows of shards for one worker: one ImageMaker for all its shards (so a
    batch size halved after running out of memory stays halved, as in a single-process run)."""

    def __init__(self, worker: GenerationWorker):
        from genbench.generation import ImageMaker

        self.worker = worker
        self.loaded = load_generator(worker)
        self.images = ImageMaker(self.loaded.pipe, worker.settings, device=self.loaded.device,
                                 negative_prompts=self.loaded.negative_prompts)

    @property
    def oom_events(self) -> list[dict]:
        return self.images.oom_events

    def make_images(self, jobs: list[ImageJob], init_images: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
        self.images.init_images = init_images or {}
        with torch_threads(self.worker.cpu_threads):
            return self.images(jobs)

    def row_fields(self, jobs: list[ImageJob], images: list[np.ndarray]) -> list[dict]:
        w = self.worker
        rows = [{"batch_size": self.images.batch_size_of[j.key], **w.strategy_fields.get(j.strategy, {})} for j in jobs]
        cf = [i for i, j in enumerate(jobs) if j.strategy in w.filtered_strategies]
        rf = [i for i, j in enumerate(jobs) if j.strategy in w.real_filtered_strategies]
        either = sorted(set(cf) | set(rf))
        if not either:
            return rows
        clip = self.loaded.clip_filter
        if clip is None:
            raise GenBenchError(f"strategy {jobs[either[0]].strategy} filters with CLIP, but no filter_model was given")
        with torch_threads(w.cpu_threads):
            feats = dict(zip(either, clip.features(np.stack([images[i] for i in either]))))
            if cf:
                conf = clip.confidence_of(np.stack([feats[i] for i in cf]), [jobs[i].class_index for i in cf])
                for i, c in zip(cf, conf):
                    rows[i]["cf_confidence"] = float(c)
            if rf:
                for i, share in zip(rf, self._own_shares(np.stack([feats[i] for i in rf]), [jobs[i].class_index for i in rf])):
                    rows[i]["rf_own_share"] = float(share)
        return rows

    def _own_shares(self, feats: np.ndarray, labels: list[int]) -> np.ndarray:
        from genbench.strategies.real_filter import own_share

        refs = self.loaded.real_references
        if refs is None:
            raise GenBenchError("a strategy filters with RF, but no real_filter_set (the k-shot originals) was given")
        real = refs.features(self.loaded.clip_filter.features)
        return own_share(feats, labels, real, refs.labels, neighbours=self.worker.rf_neighbours)


def make_shard(out_dir: str | Path, index: int, jobs: list[ImageJob], maker: ShardMaker, row_extra: dict, plan_hash: str,
               init_images: Mapping[str, np.ndarray] | None = None) -> tuple[list[dict], int]:
    """Write generation shard `index` unless it is already complete; return (its rows, images made).
    Rows are what genbench.generation.run_shards writes: job, `row_extra`, then `maker.row_fields`."""
    done = storage.completed_shard_rows(out_dir, index, plan_hash)
    if done is not None:
        return done, 0
    images = maker.make_images(jobs, init_images)
    extras = maker.row_fields(jobs, images)
    records = [storage.Record(png=storage.encode_png(img), row={**asdict(job), **row_extra, **more})
               for job, img, more in zip(jobs, images, extras)]
    return storage.write_shard(out_dir, index, records, plan_hash), len(records)


def init_images_of(jobs: list[ImageJob], init_images: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The reference images the jobs start from (image-to-image), by key."""
    if not init_images:
        return {}
    return {j.init_image: init_images[j.init_image] for j in jobs if j.init_image and j.init_image in init_images}


@dataclass(frozen=True)
class EmbeddingWorker:
    """How to build the CLIP model (genbench.clip_models.load_clip's arguments) and batch it."""

    model: str
    pretrained: str | None = None
    seed: int = 0
    device: str = "auto"
    batch_size: int = 256
    cpu_threads: int = field(default_factory=torch.get_num_threads)
    weights_sha256: str | None = None
    decode_workers: int = 4


@dataclass
class LoadedEncoder:
    bundle: object
    device: str
    weights_sha256: str
    batch_size: int
    cpu_threads: int
    decode_workers: int = 4

    def encode(self, images: np.ndarray) -> np.ndarray:
        from genbench.features import encode_images

        with torch_threads(self.cpu_threads):
            return encode_images(self.bundle, images, batch_size=self.batch_size, device=self.device, progress=False,
                                 workers=self.decode_workers)

    def encode_pngs(self, pngs: Iterable[bytes]) -> np.ndarray:
        """Features of a stream of PNG images, decoded `decode_workers` threads at a time and
        never more than two batches ahead of the model."""
        from genbench.features import encode_stream

        with torch_threads(self.cpu_threads):
            return encode_stream(self.bundle, pngs, storage.decode_png_image, batch_size=self.batch_size,
                                 workers=self.decode_workers, device=self.device)


_encoders: dict[tuple, LoadedEncoder] = {}  # at most one model: the last one loaded in this process


def load_encoder(worker: EmbeddingWorker) -> LoadedEncoder:
    """The CLIP model of `worker`, loaded once per process (batching and thread settings do not
    reload it); checks `worker.weights_sha256`."""
    from genbench.clip_models import load_clip
    from genbench.features import model_sha256

    _check_threads(worker.cpu_threads)
    key = (worker.model, worker.pretrained, worker.seed, worker.device)
    if key not in _encoders:
        _encoders.clear()
        device = resolve_device(worker.device)
        bundle = load_clip(worker.model, worker.pretrained, seed=worker.seed, device=device)
        _encoders[key] = LoadedEncoder(bundle, device, model_sha256(bundle.model), worker.batch_size, worker.cpu_threads)
    loaded = replace(_encoders[key], batch_size=worker.batch_size, cpu_threads=worker.cpu_threads,
                     decode_workers=worker.decode_workers)
    _check_weights("CLIP model", worker.model, worker.weights_sha256, loaded.weights_sha256)
    return loaded


def encode_shard(encode_pngs: Callable[[Iterable[bytes]], np.ndarray], path: str | Path,
                 keys: Collection[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(keys, features) of the images in one shard file, in the shard's key order; only those in
    `keys` when given (a shard may hold images its set's manifest left out, e.g. CF-dropped ones).
    The shard is read as `encode_pngs` consumes it, so only the images in flight are held."""
    wanted = None if keys is None else set(keys)
    found: list[str] = []

    def pngs() -> Iterator[bytes]:
        for row, png in storage.iter_shard(path):
            if wanted is None or row["key"] in wanted:
                found.append(row["key"])
                yield png

    features = encode_pngs(pngs())
    if not found:
        return [], np.zeros((0, 0), dtype=np.float32)
    return found, features
