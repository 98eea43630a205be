"""Stage `invert`: textual inversion per class of one dataset, on each kind of reference data.

References per class: `original`, the first `original_shots` k-shot originals
(data/<ds>/prepared/original); `retrieved`, the retrieved images (data/<ds>/retrieved) whose
caption is similar enough to the class name (`filter_*`; the paper: BLIP-2 captions, BERT
similarity, 0.8). For each source it writes data/<ds>/inversion/<source>/:

    class-0000.safetensors ...  one learned token per class, {"<|ds class|>": (1, hidden)}
    tokens.json                 class index -> token, file, init text, references, eval losses
    references.parquet          every reference considered: caption, similarity, kept, reason
    losses.parquet              the training loss of every step (class_index, step, loss)

and a summary to metrics/<ds>/invert.json. The cost is amortised over the generated images.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd
import torch

from genbench import storage
from genbench.clip_models import load_clip
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.features import encode_texts, model_sha256
from genbench.generators import DTYPES, load_pipeline
from genbench.inversion import (
    TOKENS_FILE,
    InversionSettings,
    add_placeholder_tokens,
    embedding_file,
    placeholder_token,
    save_embedding,
    train_token,
)
from genbench.retrieval.filter import filter_references, load_captioner, load_similarity
from genbench.seeding import image_seed
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.paths import DatasetPaths
from stages.frame.params import Field, non_negative, positive
from stages.frame.runner import StageResult

SOURCES = ("original", "retrieved")
SCHEMA = {
    "model": Field(str, "tiny-sd", help="the generator generate uses: built-in name, local folder or hub id"),
    "revision": Field((str, type(None)), None),
    "dtype": Field(str, "float32", choices=DTYPES),
    "device": Field(str, "auto"),
    "seed": Field(int, 0, non_negative, help="built-in model weights and the training draws"),
    "resolution": Field(int, 32, positive, help="training image side (SD 2.1 base: 512)"),
    "references": Field(list, list(SOURCES), help="reference data to invert: original and/or retrieved"),
    "original_shots": Field(int, 5, positive, help="k-shot originals per class used as references"),
    "filter_captioner": Field(str, "pool-caption", help="pool-caption (offline) | blip2:<model> (paper)"),
    "filter_similarity": Field(str, "clip-text", help="clip-text (offline) | bert:<model> (paper)"),
    "filter_clip_model": Field(str, "tiny-clip", help="CLIP model of the clip-text similarity"),
    "filter_clip_pretrained": Field((str, type(None)), None),
    "filter_threshold": Field(float, 0.8, help="keep retrieved references whose caption similarity reaches this"),
    "min_references": Field(int, 1, non_negative, help="keep at least this many best-scoring references per class"),
    "steps": Field(int, 10, positive, help="training steps per class (paper: 1000)"),
    "learning_rate": Field(float, 5e-3, positive),
    "batch_size": Field(int, 2, positive, help="reference images per step"),
    "eval_draws": Field(int, 4, positive, help="fixed draws of the before/after evaluation loss"),
}


def check_values(p: dict) -> None:
    """The checks that need only the section's values (no device, files or models)."""
    bad = [s for s in p["references"] if s not in SOURCES]
    if bad or not p["references"] or len(set(p["references"])) != len(p["references"]):
        raise GenBenchError(f"params key 'invert.references' = {p['references']!r} must list distinct sources from {', '.join(SOURCES)}")


def check(p: dict) -> None:
    check_values(p)
    resolve_device(p["device"], "invert.device")


def required_inputs(paths: DatasetPaths, p: dict) -> list[Path]:
    """The prepared metadata and the manifest of each reference source in invert.references."""
    folders = {"original": paths.prepared / "original", "retrieved": paths.retrieved}
    return [paths.prepared / "meta.json", *(folders[s] / storage.MANIFEST for s in p["references"])]


def original_references(paths: DatasetPaths, shots: int) -> tuple[dict[int, np.ndarray], pd.DataFrame]:
    images, manifest = storage.load_image_set(paths.prepared / "original")
    picks = manifest.groupby("class_index", sort=True).head(shots)
    rows = picks.assign(source="original", caption=None, similarity=np.nan, kept=True, reason="original (human-labelled)")
    refs = {int(c): images[idx.to_numpy()] for c, idx in picks.groupby("class_index").groups.items()}
    return refs, rows[["key", "class_index", "class_name", "source", "caption", "similarity", "kept", "reason"]]


def retrieved_references(paths: DatasetPaths, p: dict, device: str) -> tuple[dict[int, np.ndarray], pd.DataFrame]:
    directory = paths.retrieved
    images, manifest = storage.load_image_set(directory)
    captioner = load_captioner(p["filter_captioner"], device)
    clip_encode = None
    if p["filter_similarity"] == "clip-text":
        bundle = load_clip(p["filter_clip_model"], p["filter_clip_pretrained"], seed=p["seed"], device=device)
        clip_encode = lambda texts: encode_texts(bundle, texts, device=device)  # noqa: E731
    similarity = load_similarity(p["filter_similarity"], device, clip_encode)
    refs, frames = {}, []
    for cls, group in manifest.groupby("class_index", sort=True):
        idx = group.index.to_numpy()
        captions = captioner(list(images[idx]), list(group["caption"]))
        sims = similarity(captions, list(group["class_name"]))
        decisions = filter_references(captions, sims, p["filter_threshold"], p["min_references"])
        kept = np.array([d.kept for d in decisions])
        refs[int(cls)] = images[idx[kept]]
        frames.append(pd.DataFrame({
            "key": group["key"].to_numpy(), "class_index": int(cls), "class_name": group["class_name"].to_numpy(),
            "source": "retrieved", "pool_id": group["pool_id"].to_numpy(), "pool_caption": group["caption"].to_numpy(),
            "caption": [d.caption for d in decisions], "captioner": p["filter_captioner"],
            "similarity": [d.similarity for d in decisions], "similarity_model": p["filter_similarity"],
            "threshold": p["filter_threshold"], "kept": kept, "reason": [d.reason for d in decisions],
        }))
    return refs, pd.concat(frames, ignore_index=True)


def invert_source(pipe, source: str, refs: dict[int, np.ndarray], spec: dict, settings: InversionSettings, seed: int,
                  token_ids: dict[int, int], out: Path) -> tuple[list[dict], list[dict]]:
    """Train every class with references; write its embedding into `out`; return token entries and loss rows."""
    entries, losses = [], []
    for cls, images in sorted(refs.items()):
        if len(images) == 0:
            continue
        name = spec["classnames"][cls]
        token = placeholder_token(spec["name"], name)
        prompts = [t.format(c=token) for t in spec["templates"]]
        started = time.perf_counter()
        result = train_token(pipe, token_ids[cls], prompts, images, settings, seed=image_seed(seed, spec["name"], cls, f"invert/{source}", 0) % (2 ** 31))
        save_embedding(out / embedding_file(cls), token, result.embedding,
                       {"dataset": spec["name"], "class_index": cls, "class_name": name, "source": source})
        entries.append({"class_index": cls, "class_name": name, "token": token, "file": embedding_file(cls), "init_text": name,
                        "references": len(images), "eval_loss_before": result.eval_before, "eval_loss_after": result.eval_after,
                        "seconds": time.perf_counter() - started})
        losses += [{"class_index": cls, "step": i, "loss": v} for i, v in enumerate(result.losses)]
    return entries, losses


def summarise(entries: list[dict], references: pd.DataFrame) -> dict:
    before = [e["eval_loss_before"] for e in entries]
    after = [e["eval_loss_after"] for e in entries]
    return {
        "classes_trained": len(entries),
        "references_per_class": {e["class_name"]: e["references"] for e in entries},
        "eval_loss_before": {e["class_name"]: e["eval_loss_before"] for e in entries},
        "eval_loss_after": {e["class_name"]: e["eval_loss_after"] for e in entries},
        "mean_eval_loss_before": float(np.mean(before)) if before else None,
        "mean_eval_loss_after": float(np.mean(after)) if after else None,
        "references_considered": int(len(references)),
        "references_kept": int(references["kept"].sum()),
        "seconds": float(sum(e["seconds"] for e in entries)),
    }


def work(p: dict, paths: DatasetPaths) -> StageResult:
    spec = paths.read_meta()
    device = resolve_device(p["device"], "invert.device")
    settings = InversionSettings(p["steps"], p["learning_rate"], p["batch_size"], p["resolution"], p["eval_draws"])
    gathered = {}
    for source in p["references"]:
        gathered[source] = (original_references(paths, p["original_shots"]) if source == "original"
                            else retrieved_references(paths, p, device))
    summary = {"dataset": spec["name"], "model": p["model"], "steps": p["steps"], "learning_rate": p["learning_rate"],
               "batch_size": p["batch_size"], "resolution": p["resolution"], "sources": {}}
    trained = 0
    out_root = paths.inversion
    loaded = load_pipeline(p["model"], revision=p["revision"], dtype=p["dtype"], device=device, seed=p["seed"], image_size=p["resolution"])
    loaded.set_progress_bar_config(disable=True)
    encoder_sha = model_sha256(loaded.text_encoder)
    loaded.text_encoder.to(dtype=torch.float32)  # the learned rows train in float32 whatever the model dtype
    with storage.atomic_dir(out_root) as tmp:
        for position, (source, (refs, references)) in enumerate(gathered.items()):
            last = position == len(gathered) - 1
            pipe = loaded if last else copy.deepcopy(loaded)  # each source starts from the same weights
            tokens = [placeholder_token(spec["name"], name) for name in spec["classnames"]]
            ids = dict(enumerate(add_placeholder_tokens(pipe, tokens, list(spec["classnames"]))))
            out = tmp / source
            out.mkdir()
            entries, losses = invert_source(pipe, source, refs, spec, settings, p["seed"], ids, out)
            storage.atomic_write_json(out / TOKENS_FILE, {
                "dataset": spec["name"], "source": source, "model": p["model"], "revision": p["revision"], "seed": p["seed"],
                "text_encoder_sha256": encoder_sha, "prediction_type": pipe.scheduler.config.get("prediction_type", "epsilon"),
                "resolution": p["resolution"], "tokens": entries,
            })
            with storage.atomic_path(out / "references.parquet") as path:
                references.to_parquet(path, index=False)
            with storage.atomic_path(out / "losses.parquet") as path:
                pd.DataFrame(losses, columns=["class_index", "step", "loss"]).to_parquet(path, index=False)
            summary["prediction_type"] = pipe.scheduler.config.get("prediction_type", "epsilon")
            summary["sources"][source] = summarise(entries, references)
            trained += len(entries)
    metrics_path = paths.metrics / "invert.json"
    storage.atomic_write_json(metrics_path, summary)
    for source, s in summary["sources"].items():
        click.echo(f"invert: {source}: {s['classes_trained']} tokens from {s['references_kept']}/{s['references_considered']} "
                   f"references, eval loss {s['mean_eval_loss_before']:.4f} -> {s['mean_eval_loss_after']:.4f}")
    flat = {}
    for source, s in summary["sources"].items():
        flat.update({f"{source}.tokens": s["classes_trained"], f"{source}.references_kept": s["references_kept"],
                     f"{source}.eval_loss_before": s["mean_eval_loss_before"], f"{source}.eval_loss_after": s["mean_eval_loss_after"]})
    return StageResult(metrics={k: v for k, v in flat.items() if v is not None}, artifacts=[metrics_path], items=trained,
                       data_type="generated", tags={"generator": p["model"]})


command = dataset_stage_command(
    "invert", SCHEMA, work,
    "Textual inversion: one learned token per class from original or retrieved images (params: invert.*).", check,
    requires=required_inputs,
)
