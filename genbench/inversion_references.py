"""The reference images textual inversion learns each class's token from (genbench.inversion):
the first k-shot originals per class (`original_references`), or the retrieved images whose
caption is similar enough to the class name (`retrieved_references`; the paper: BLIP-2
captions, BERT similarity, 0.8). Each comes with one row per reference considered: its caption,
similarity, whether it was kept and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genbench import storage
from genbench.clip_models import load_clip
from genbench.features import encode_texts
from genbench.retrieval.filter import filter_references, load_captioner, load_similarity

ORIGINAL_COLUMNS = ["key", "class_index", "class_name", "source", "caption", "similarity", "kept", "reason"]


def original_references(directory: Path, shots: int) -> tuple[dict[int, np.ndarray], pd.DataFrame]:
    """The first `shots` images per class of the image set `directory` (class index -> images),
    and their rows, every one kept as "original (human-labelled)"."""
    images, manifest = storage.load_image_set(directory)
    picks = manifest.groupby("class_index", sort=True).head(shots)
    rows = picks.assign(source="original", caption=None, similarity=np.nan, kept=True, reason="original (human-labelled)")
    refs = {int(c): images[idx.to_numpy()] for c, idx in picks.groupby("class_index").groups.items()}
    return refs, rows[ORIGINAL_COLUMNS]


def retrieved_references(directory: Path, p: dict, device: str) -> tuple[dict[int, np.ndarray], pd.DataFrame]:
    """The images of the retrieved set `directory` whose caption passes the caption filter of the
    invert section `p` (filter_captioner, filter_similarity, filter_clip_model/_pretrained for
    clip-text, filter_threshold, min_references; seed), class by class; and a row per image."""
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
