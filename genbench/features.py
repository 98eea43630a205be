"""CLIP features: image and text encoding, L2-normalised, stored as safetensors.

A feature file holds `features` (N, D) float32, `labels` (N,) or (N, C) and a JSON metadata
string (model name, image set, count), so an image set is encoded once per model and every
metric reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from genbench import storage
from genbench.clip_models import ClipBundle
from genbench.errors import DataFileError


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def encode_images(bundle: ClipBundle, images: np.ndarray, *, batch_size: int = 256, device: str = "cpu",
                  progress: bool = True, desc: str = "embed") -> np.ndarray:
    model = bundle.model.to(device)
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=not progress):
        batch = torch.stack([bundle.preprocess(Image.fromarray(img)) for img in images[start : start + batch_size]])
        chunks.append(_normalise(model.encode_image(batch.to(device)).float()).cpu())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).numpy()


@torch.no_grad()
def encode_texts(bundle: ClipBundle, texts: list[str], *, device: str = "cpu") -> np.ndarray:
    model = bundle.model.to(device)
    tokens = bundle.tokenizer(texts)
    return _normalise(model.encode_text(tokens.to(device)).float()).cpu().numpy()


def text_prototypes(bundle: ClipBundle, classnames: list[str], templates: list[str], *, device: str = "cpu") -> np.ndarray:
    """Zero-shot classifier weights: per class, the mean of its normalised template embeddings,
    renormalised (CLIP's prompt ensembling)."""
    protos = []
    for name in classnames:
        emb = torch.from_numpy(encode_texts(bundle, [t.format(c=name) for t in templates], device=device))
        protos.append(_normalise(emb.mean(dim=0)))
    return torch.stack(protos).numpy()


def save_features(path: str | Path, features: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    from safetensors.numpy import save

    blob = save(
        {"features": np.ascontiguousarray(features, dtype=np.float32), "labels": np.ascontiguousarray(labels)},
        metadata={"meta": json.dumps(meta, sort_keys=True)},
    )
    storage.atomic_write_bytes(path, blob)


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(features, labels, metadata) of a feature file; a missing or damaged file is DataFileError."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise DataFileError(path, "not found", missing=True)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
            feats, labels = fh.get_tensor("features"), fh.get_tensor("labels")
    except Exception as exc:  # safetensors raises its own SafetensorError and others for a damaged file
        raise DataFileError(path, f"is truncated or corrupt ({str(exc).splitlines()[0][:200]})") from None
    if feats.ndim != 2 or len(labels) != len(feats):
        raise DataFileError(path, f"is corrupt: {len(feats)} feature rows but {len(labels)} labels")
    return feats, labels, meta


def model_sha256(model: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_key(model_id: str, model_hash: str, image_shas: list[str]) -> str:
    import hashlib

    h = hashlib.sha256(f"{model_id}\n{model_hash}\n".encode())
    for s in image_shas:
        h.update(s.encode())
    return h.hexdigest()


def cached_features(path: str | Path, key: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """The stored features at `path` if they were made with this cache key, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        feats, labels, meta = load_features(path)
    except Exception:
        return None
    return (feats, labels, meta) if meta.get("cache_key") == key else None
