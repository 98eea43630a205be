"""Textual inversion of a whole dataset (genbench.inversion per class): every class with
references gets its token trained (`invert_source`), each reference source from the same
starting weights (`invert_sources`), with a summary per source (`summarise`).

For each source it writes <out_root>/<source>/:

    class-0000.safetensors ...  one learned token per class, {"<|ds class|>": (1, hidden)}
    tokens.json                 class index -> token, file, init text, references, eval losses
    references.parquet          every reference considered: caption, similarity, kept, reason
    losses.parquet              the training loss of every step (class_index, step, loss)
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genbench import storage
from genbench.features import model_sha256
from genbench.generators import load_pipeline
from genbench.inversion import (
    TOKENS_FILE,
    InversionSettings,
    add_placeholder_tokens,
    embedding_file,
    placeholder_token,
    save_embedding,
    train_token,
)
from genbench.seeding import image_seed


def class_seed(seed: int, dataset: str, cls: int, source: str) -> int:
    """The training seed of one class's token from one source (below 2**31)."""
    return image_seed(seed, dataset, cls, f"invert/{source}", 0) % (2 ** 31)


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
        result = train_token(pipe, token_ids[cls], prompts, images, settings, seed=class_seed(seed, spec["name"], cls, source))
        save_embedding(out / embedding_file(cls), token, result.embedding,
                       {"dataset": spec["name"], "class_index": cls, "class_name": name, "source": source})
        entries.append({"class_index": cls, "class_name": name, "token": token, "file": embedding_file(cls), "init_text": name,
                        "references": len(images), "eval_loss_before": result.eval_before, "eval_loss_after": result.eval_after,
                        "seconds": time.perf_counter() - started})
        losses += [{"class_index": cls, "step": i, "loss": v} for i, v in enumerate(result.losses)]
    return entries, losses


def summarise(entries: list[dict], references: pd.DataFrame) -> dict:
    """One source's summary: classes trained, references per class, eval losses before and after
    (per class and mean), references considered and kept, training seconds."""
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


def invert_sources(p: dict, spec: dict, gathered: dict[str, tuple[dict[int, np.ndarray], pd.DataFrame]], out_root: Path,
                   device: str) -> dict:
    """Train the tokens of every source in `gathered` (source -> (class index -> reference images,
    reference rows)) with the invert section `p` on the dataset `spec` (its meta.json); write
    `out_root` atomically; return the summary (model, settings, each source's `summarise`)."""
    settings = InversionSettings(p["steps"], p["learning_rate"], p["batch_size"], p["resolution"], p["eval_draws"])
    summary = {"dataset": spec["name"], "model": p["model"], "steps": p["steps"], "learning_rate": p["learning_rate"],
               "batch_size": p["batch_size"], "resolution": p["resolution"], "sources": {}}
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
    return summary
