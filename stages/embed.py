"""Stage `embed`: CLIP image features of the test, original and generated sets, and the text
prototypes of the classes. A set is re-encoded only when its images or the model change (the
features carry a cache key of model weights and image hashes; the image sets are verified against
their shards first, so a damaged shard is never taken for the images its features were made from).
Shards are read as they are encoded: `workers` threads decode the next batch while the model
encodes the current one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from cost.meter import Meter
from genbench import storage
from genbench.clip_models import check_clip_source, check_pretrained_used
from genbench.executors import EMBED_EXECUTORS, EmbeddingWorker, ExecutorOptions, load_encoder
from genbench.features import cache_key, cached_features, load_features, save_features, text_prototypes
from genbench.labels import feature_labels
from stages.frame.options import address_option, dataset_option, executor_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, run_stage

def _backbones_check(value: list) -> str | None:
    bad = [v for v in value if not isinstance(v, dict) or not isinstance(v.get("model"), str) or set(v) - {"model", "pretrained"}]
    return f"entries must be {{model: NAME, pretrained: TAG or null}} (not {bad[0]!r})" if bad else None


SCHEMA = {
    "model": Field(str, "tiny-clip", help="built-in name, local-dir:PATH, or an open_clip model name"),
    "pretrained": Field((str, type(None)), None, help="open_clip pretrained tag or checkpoint path"),
    "device": Field(str, "auto"),
    "batch_size": Field(int, 256, positive),
    "workers": Field(int, 4, non_negative, help="threads decoding and preprocessing the next batch (0: in line)"),
    "seed": Field(int, 0, non_negative),
    "backbones": Field(list, [], _backbones_check,
                       help="extra CLIP models for Figure 11, [{model, pretrained}]: features, CLER and probe of each"),
}
OPTIONAL_SETS = ("retrieved", "original_pool")


def image_sets(paths: DatasetPaths) -> dict:
    """The image sets to encode; the retrieved set and the original pool (prepare.pool_shots) only
    where a stage produced them."""
    sets = {"test": paths.prepared / "test", "original": paths.prepared / "original", "generated": paths.generated,
            "retrieved": paths.retrieved, "original_pool": paths.prepared / "original_pool"}
    return {name: d for name, d in sets.items() if name not in OPTIONAL_SETS or (d / storage.MANIFEST).is_file()}


def encode_sets(p: dict, paths: DatasetPaths, model: str, pretrained: str | None, features: Path, executor: str,
                address: str | None) -> tuple[int, list[str], object, str, object]:
    """Encode every image set and the class prompts with one CLIP model into `features`, reusing
    cached feature files. Returns (images encoded, sets reused, the executor run, weights sha256, loaded)."""
    meta = paths.read_meta()
    worker = EmbeddingWorker(model, pretrained, seed=p["seed"], device=p["device"], batch_size=p["batch_size"],
                             decode_workers=p["workers"])
    # this process's copy gives the weights hash and the text prototypes; Ray workers load their own
    loaded = load_encoder(worker if executor == "local" else replace(worker, device="cpu"))
    model_id = f"{model}|{pretrained}"
    weights = loaded.weights_sha256
    todo, keys, reused = {}, {}, []
    for name, directory in image_sets(paths).items():
        manifest = storage.verify_image_set(directory)
        key = cache_key(model_id, weights, list(manifest["sha256"]))
        cached = cached_features(features / f"{name}.safetensors", key)
        if cached is None:
            todo[name], keys[name] = directory, key
            continue
        reused.append(name)
        labels = feature_labels(manifest, meta.get("task", "multiclass"), len(meta["classnames"]))
        if not np.array_equal(cached[1], labels):  # same images, labels stored in another form
            save_features(features / f"{name}.safetensors", cached[0], labels, cached[2])
    run = EMBED_EXECUTORS[executor](todo, replace(worker, weights_sha256=weights),
                                    options=ExecutorOptions(address=address, meter=Meter)) if todo else None
    encoded = 0
    for name, got in (run.sets.items() if run else ()):
        labels = feature_labels(got.manifest, meta.get("task", "multiclass"), len(meta["classnames"]))
        save_features(features / f"{name}.safetensors", got.features, labels,
                      {"cache_key": keys[name], "model": model_id, "set": name, "count": len(got.features)})
        encoded += len(got.features)
    protos = text_prototypes(loaded.bundle, meta["classnames"], meta["templates"], device=loaded.device)
    save_features(features / "text.safetensors", protos, np.arange(len(protos)),
                  {"model": model_id, "set": "text", "templates": len(meta["templates"])})
    return encoded, reused, run, weights, loaded


def score_backbones(p: dict, paths: DatasetPaths, executor: str, address: str | None) -> dict:
    """Figure 11's data: each extra backbone's features, CLER and clean probe (the cler and probe
    stages' defaults), written to metrics/<ds>/backbones.json (empty `backbones` without extras)."""
    from genbench.backbones import backbone_scores
    from genbench.feature_sets import external_sets, real_test_set

    meta = paths.read_meta()
    result = {"primary": f"{p['model']}|{p['pretrained']}", "backbones": {}}
    for entry in p["backbones"]:
        model, pretrained = entry["model"], entry.get("pretrained")
        folder = paths.backbone_features(model, pretrained)
        folder.mkdir(parents=True, exist_ok=True)
        encode_sets(p, paths, model, pretrained, folder, executor, address)
        text, _, _ = load_features(folder / "text.safetensors")
        scores = backbone_scores(external_sets(folder, paths.generated, meta), real_test_set(folder, meta), text,
                                 num_classes=len(meta["classnames"]), metric=meta["metric"], seed=p["seed"])
        result["backbones"][f"{model}|{pretrained}"] = scores
        click.echo(f"embed: backbone {model}|{pretrained}: " + ", ".join(
            f"{n} CLER {s['cler']:.1f} probe {s['probe']:.1f}" for n, s in scores["sets"].items()))
    storage.atomic_write_json(paths.metrics / "backbones.json", result)
    return result


def work(p: dict, paths: DatasetPaths, executor: str = "local", address: str | None = None) -> StageResult:
    encoded, reused, run, weights, _ = encode_sets(p, paths, p["model"], p["pretrained"], paths.features, executor, address)
    click.echo(f"embed: {encoded} images encoded, reused {', '.join(reused) or 'none'} -> {paths.features}")
    score_backbones(p, paths, executor, address)
    model_id = f"{p['model']}|{p['pretrained']}"
    return StageResult(metrics={"images_encoded": encoded, "workers": run.workers if run else 0},
                       items=encoded, tags={"clip_model": model_id, "clip_weights_sha256": weights},
                       worker_readings=run.readings if run else [])


@click.command("embed")
@params_option
@dataset_option
@executor_option
@address_option
def command(params_file: str, dataset: str | None, executor: str, address: str | None) -> None:
    """Encode every image set and the class prompts with CLIP (params: embed.*)."""
    name = resolve_dataset(params_file, dataset)
    paths = DatasetPaths(name)
    run_stage("embed", params_file, SCHEMA, lambda p: work(p, paths, executor, address), lambda p: check(p, paths),
              dataset=name)


def check(p: dict, paths: DatasetPaths) -> None:
    """Before a run opens: the CLIP model's files and the image sets to encode."""
    check_pretrained_used(p["model"], p["pretrained"], "embed")
    check_clip_source(p["model"], p["pretrained"])
    for entry in p["backbones"]:
        check_pretrained_used(entry["model"], entry.get("pretrained"), "embed.backbones")
        check_clip_source(entry["model"], entry.get("pretrained"))
    paths.require(paths.prepared / "meta.json", *(d / storage.MANIFEST for d in image_sets(paths).values()))
