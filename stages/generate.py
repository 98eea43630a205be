"""Stage `generate`: images per class for each prompt strategy, as shards with a manifest row
per image, resumable after a crash, plus a sample grid."""

from __future__ import annotations

import click
import numpy as np
import torch

from genbench import storage
from genbench.errors import GenBenchError
from genbench.generation import (
    GenerationSettings,
    generate_images,
    plan_jobs,
    run_shards,
    select_shards,
    shard_plan_hash,
    shards_of,
)
from genbench.generators import DTYPES, load_pipeline, set_attention_backend, weights_sha256
from genbench.plots import sample_grid
from genbench.prompts import parse_strategy
from stages.inputs import DatasetPaths
from stages.options import dataset_option, params_option, resolve_dataset
from stages.params import Field, non_negative, positive
from stages.runner import StageResult, run_stage

SCHEMA = {
    "model": Field(str, "tiny-sd", help="built-in name, local save_pretrained folder, or hub id"),
    "revision": Field((str, type(None)), None),
    "dtype": Field(str, "float32"),
    "device": Field(str, "auto"),
    "attention": Field(str, "sdpa"),
    "strategies": Field(list, ["ST", "DT"]),
    "images_per_class": Field(int, 16, positive),
    "steps": Field(int, 20, positive),
    "guidance_scale": Field(float, 5.0, non_negative),
    "height": Field(int, 32, positive),
    "width": Field(int, 32, positive),
    "batch_size": Field(int, 16, positive),
    "shard_size": Field(int, 1024, positive),
    "seed": Field(int, 0, non_negative),
}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        part, parts = (int(x) for x in text.split("/"))
    except ValueError:
        raise GenBenchError(f"--shard {text!r} must look like i/n, e.g. 0/4") from None
    if parts < 1 or not 0 <= part < parts:
        raise GenBenchError(f"--shard {text!r}: need 0 <= i < n")
    return part, parts


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenBenchError(f"generate.device = {name!r} but no CUDA device is available; use 'cpu' or 'auto'")
    return name


def check(p: dict) -> None:
    if not p["strategies"]:
        raise GenBenchError("params key 'generate.strategies' is empty; list at least one strategy, e.g. [ST, DT]")
    for s in p["strategies"]:
        parse_strategy(s)
    if p["dtype"] not in DTYPES:
        raise GenBenchError(f"params key 'generate.dtype' = {p['dtype']!r} must be one of {', '.join(DTYPES)}")
    resolve_device(p["device"])
    if p["shard_size"] % p["batch_size"]:
        raise GenBenchError(
            f"params key 'generate.shard_size' = {p['shard_size']} must be a multiple of generate.batch_size = "
            f"{p['batch_size']}, so batches never straddle shards and any sharding gives identical images"
        )


def make_work(paths: DatasetPaths, shard: tuple[int, int] | None):
    out_dir = paths.generated

    def work(p: dict) -> StageResult:
        ds = paths.spec()
        device = resolve_device(p["device"])
        settings = GenerationSettings(p["height"], p["width"], p["steps"], p["guidance_scale"], p["batch_size"])
        jobs = plan_jobs(ds, p["strategies"], p["images_per_class"], p["seed"])
        pipe = load_pipeline(p["model"], revision=p["revision"], dtype=p["dtype"], device=device, seed=p["seed"], image_size=p["height"])
        pipe.set_progress_bar_config(disable=True)
        set_attention_backend(pipe, p["attention"])
        generator_id = {"generator": p["model"], "revision": p["revision"], "weights_sha256": weights_sha256(pipe)}
        extra = {**generator_id, "height": p["height"], "width": p["width"], "steps": p["steps"], "guidance_scale": p["guidance_scale"]}
        shards = shards_of(jobs, p["shard_size"])
        hashes = [shard_plan_hash(s, generator_id, settings) for s in shards]
        indices = select_shards(len(shards), *shard) if shard else list(range(len(shards)))
        rows, made = run_shards(out_dir, shards, indices, lambda js: generate_images(pipe, js, settings, device), extra, hashes)
        metrics = {"images_made": made, "images_total": len(jobs), "shards": len(shards)}
        if shard:
            click.echo(f"generate: shard part {shard[0]}/{shard[1]}: {made} images made; run without --shard to finish")
            return StageResult(metrics=metrics, items=made, data_type="generated")
        storage.remove_stale(out_dir, {f"{storage.shard_name(i)}.{ext}" for i in range(len(shards)) for ext in ("tar", "done")})
        storage.write_manifest(out_dir, rows)
        images, manifest = storage.load_image_set(out_dir)
        sample_grid(images, manifest, ds.classnames, paths.samples, title=f"{ds.name}, {p['model']}: {', '.join(p['strategies'])}")
        click.echo(f"generate: {len(rows)} images ({made} made now) in {len(shards)} shards -> {out_dir}")
        return StageResult(metrics=metrics, artifacts=[paths.samples], items=made, data_type="generated",
                           tags={"generator": p["model"], "weights_sha256": generator_id["weights_sha256"]})

    return work


@click.command("generate")
@params_option
@dataset_option
@click.option("--shard", "shard", default=None, metavar="I/N", help="Make only part I of N of the shards (0-based), for parallel runs.")
def command(params_file: str, dataset: str | None, shard: str | None) -> None:
    """Generate images per class and prompt strategy (params: generate.*)."""
    part = parse_shard(shard)
    name = resolve_dataset(params_file, dataset)
    run_stage("generate", params_file, SCHEMA, make_work(DatasetPaths(name), part), check, dataset=name)
