"""Stage `bootstrap`: train the embedded default's miniature models (a tiny CLIP and a tiny
text-to-image latent diffusion model) on the digits TRAIN split, once; DVC caches the result.

The models are saved exactly as real weights are (open_clip local-dir layout; diffusers
save_pretrained folder with safetensors), and the rest of the pipeline loads them through the
same code paths (`embed.model: local-dir:models/miniature/clip`, `generate.model:
models/miniature/sd`). The test split is never read here.
"""

from __future__ import annotations

from pathlib import Path

import click

from genbench import storage
from genbench.datasets import get_dataset
from genbench.miniature import train_clip, train_diffusion
from stages.frame.options import params_option
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import METRICS
from stages.frame.runner import StageResult, run_stage

MODELS = Path("models/miniature")
OUT = METRICS / "bootstrap.json"
SCHEMA = {
    "dataset": Field(str, "digits", lambda v: None if v == "digits" else "must be 'digits' (the miniature's training set)"),
    "image_size": Field(int, 32, positive),
    "seed": Field(int, 0, non_negative),
    "clip_steps": Field(int, 50, positive),
    "vae_steps": Field(int, 200, positive),
    "unet_steps": Field(int, 400, positive),
    "data_root": Field(str, "data/raw"),
}


def work(p: dict) -> StageResult:
    ds = get_dataset(p["dataset"])
    train = ds.loader("train", Path(p["data_root"]), p["image_size"])
    args = (train.images, train.labels, ds.classnames, ds.templates)
    with storage.atomic_dir(MODELS / "clip") as tmp:
        clip = train_clip(*args, tmp, seed=p["seed"], steps=p["clip_steps"])
    with storage.atomic_dir(MODELS / "sd") as tmp:
        sd = train_diffusion(*args, tmp, seed=p["seed"], vae_steps=p["vae_steps"], unet_steps=p["unet_steps"])
    result = {
        "train_images": len(train),
        "clip": {k: v for k, v in clip.items() if k != "path"},
        "sd": {k: v for k, v in sd.items() if k != "path"},
    }
    storage.atomic_write_json(OUT, result)
    click.echo(f"bootstrap: CLIP loss {clip['final_loss']:.3f} ({clip['seconds']:.0f} s), "
               f"diffusion loss {sd['final_loss']:.3f} ({sd['seconds']:.0f} s) -> {MODELS}")
    return StageResult(
        metrics={"clip_final_loss": clip["final_loss"], "sd_final_loss": sd["final_loss"], "clip_seconds": clip["seconds"],
                 "sd_seconds": sd["seconds"]},
        artifacts=[OUT],
        tags={"clip_weights_sha256": clip["weights_sha256"], "sd_weights_sha256": sd["weights_sha256"]},
    )


@click.command("bootstrap")
@params_option
def command(params_file: str) -> None:
    """Train the miniature CLIP and text-to-image models on the digits train split (params: bootstrap.*)."""
    run_stage("bootstrap", params_file, SCHEMA, work)
