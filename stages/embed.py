"""Stage `embed`: CLIP image features of the test, original and generated sets, and the text
prototypes of the classes. A set is re-encoded only when its images or the model change (the
features carry a cache key of model weights and image hashes)."""

from __future__ import annotations

import click
import numpy as np

from genbench import storage
from genbench.clip_models import load_clip
from genbench.features import cache_key, cached_features, encode_images, model_sha256, save_features, text_prototypes
from stages.generate import resolve_device
from stages.inputs import DatasetPaths
from stages.options import dataset_option, params_option, resolve_dataset
from stages.params import Field, non_negative, positive
from stages.runner import StageResult, run_stage

SCHEMA = {
    "model": Field(str, "tiny-clip", help="built-in name, local-dir:PATH, or an open_clip model name"),
    "pretrained": Field((str, type(None)), None, help="open_clip pretrained tag or checkpoint path"),
    "device": Field(str, "auto"),
    "batch_size": Field(int, 256, positive),
    "seed": Field(int, 0, non_negative),
}
def image_sets(paths: DatasetPaths) -> dict:
    return {"test": paths.prepared / "test", "original": paths.prepared / "original", "generated": paths.generated}


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    device = resolve_device(p["device"])
    bundle = load_clip(p["model"], p["pretrained"], seed=p["seed"], device=device)
    model_id = f"{p['model']}|{p['pretrained']}"
    weights = model_sha256(bundle.model)
    encoded, reused = 0, []
    for name, directory in image_sets(paths).items():
        manifest = storage.read_manifest(directory)
        key = cache_key(model_id, weights, list(manifest["sha256"]))
        out = paths.features / f"{name}.safetensors"
        if cached_features(out, key) is not None:
            reused.append(name)
            continue
        images, manifest = storage.load_image_set(directory)
        feats = encode_images(bundle, images, batch_size=p["batch_size"], device=device, desc=f"embed {name}")
        save_features(out, feats, manifest["class_index"].to_numpy(), {"cache_key": key, "model": model_id, "set": name, "count": len(feats)})
        encoded += len(feats)
    protos = text_prototypes(bundle, meta["classnames"], meta["templates"], device=device)
    save_features(paths.features / "text.safetensors", protos, np.arange(len(protos)),
                  {"model": model_id, "set": "text", "templates": len(meta["templates"])})
    click.echo(f"embed: {encoded} images encoded, reused {', '.join(reused) or 'none'} -> {paths.features}")
    return StageResult(metrics={"images_encoded": encoded}, items=encoded, tags={"clip_model": model_id, "clip_weights_sha256": weights})


@click.command("embed")
@params_option
@dataset_option
def command(params_file: str, dataset: str | None) -> None:
    """Encode every image set and the class prompts with CLIP (params: embed.*)."""
    name = resolve_dataset(params_file, dataset)
    run_stage("embed", params_file, SCHEMA, lambda p: work(p, DatasetPaths(name)), dataset=name)
