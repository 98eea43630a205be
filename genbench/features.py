"""CLIP features: image and text encoding, L2-normalised, stored as safetensors.

A feature file holds `features` (N, D) float32, `labels` (N,) or (N, C) (which one:
genbench.labels) and a JSON metadata string (model name, image set, count), so an image set is
encoded once per model and every metric reuses it.

Images are encoded from a stream (`encode_stream`): `workers` threads decode and preprocess one
batch while the model encodes the one before (PIL and torch release the GIL), so at most two
batches of decoded images are held, however large the set.
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from genbench import storage
from genbench.clip_models import ClipBundle
from genbench.errors import DataFileError

T = TypeVar("T")


def unit_norm_tensor(x: torch.Tensor) -> torch.Tensor:
    """`x` scaled to unit Euclidean norm along its last dimension, the norm clamped at 1e-12 (the
    torch counterpart of `genbench.metrics.arrays.unit_norm`)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def preprocessed_batches(preprocess: Callable, items: Iterable[T], to_image: Callable[[T], Image.Image], *,
                         batch_size: int, workers: int = 0) -> Iterator[torch.Tensor]:
    """(B, 3, H, W) tensors of `preprocess(to_image(item))`, `batch_size` items at a time, in
    order. With `workers` threads the next batch is prepared while the caller uses the current
    one; `items` is read lazily, one batch ahead."""
    items = iter(items)

    def prepare(item: T) -> torch.Tensor:
        return preprocess(to_image(item))

    def chunk() -> list[T]:
        return list(itertools.islice(items, batch_size))

    if workers <= 0:
        while batch := chunk():
            yield torch.stack([prepare(x) for x in batch])
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = [pool.submit(prepare, x) for x in chunk()]
        while pending:
            current, pending = pending, [pool.submit(prepare, x) for x in chunk()]
            yield torch.stack([f.result() for f in current])


@torch.no_grad()
def encode_stream(bundle: ClipBundle, items: Iterable[T], to_image: Callable[[T], Image.Image], *,
                  batch_size: int = 256, workers: int = 0, device: str = "cpu", progress: bool = False,
                  desc: str = "embed", total: int | None = None) -> np.ndarray:
    """Normalised CLIP image features (N, D) of a stream of items (arrays, PNG bytes, ...) that
    `to_image` turns into PIL images; (0, 0) for an empty stream."""
    model = bundle.model.to(device)
    chunks = []
    batches = preprocessed_batches(bundle.preprocess, items, to_image, batch_size=batch_size, workers=workers)
    steps = None if total is None else -(-total // batch_size)
    for batch in tqdm(batches, total=steps, desc=desc, unit="batch", disable=not progress):
        chunks.append(unit_norm_tensor(model.encode_image(batch.to(device)).float()).cpu())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).numpy()


def encode_images(bundle: ClipBundle, images: np.ndarray, *, batch_size: int = 256, device: str = "cpu",
                  progress: bool = True, desc: str = "embed", workers: int = 0) -> np.ndarray:
    """Normalised CLIP image features of uint8 (N, H, W, 3) images."""
    return encode_stream(bundle, images, Image.fromarray, batch_size=batch_size, workers=workers, device=device,
                         progress=progress, desc=desc, total=len(images))


def _trims_context(model: torch.nn.Module) -> bool:
    """Whether `model`'s text tower reads a token only from the tokens before it and pools at the
    end-of-text token (open_clip's CLIP with a causal mask and argmax pooling, every OpenAI CLIP):
    then the positions after the longest text of a batch change no feature."""
    from open_clip.model import CLIP

    mask = getattr(model, "attn_mask", None)
    return (isinstance(model, CLIP) and getattr(model, "text_pool_type", None) == "argmax" and mask is not None
            and mask.ndim == 2 and mask.shape[0] > 1 and bool(torch.isneginf(mask[0, 1:]).all()))


def _encode_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text(tokens), computed over the first L positions only, L = the longest text
    of the batch (end-of-text token included), where that gives the same features (`_trims_context`):
    a 10-token prompt costs 10 positions of the tower, not its whole context (77 in OpenAI's CLIPs)."""
    if not _trims_context(model):
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    if length >= tokens.shape[1]:
        return model.encode_text(tokens)
    full_pos, full_mask = model.positional_embedding, model.attn_mask
    try:
        model.positional_embedding = torch.nn.Parameter(full_pos[:length], requires_grad=False)
        model.attn_mask = full_mask[:length, :length]
        return model.encode_text(tokens[:, :length])
    finally:
        model.positional_embedding, model.attn_mask = full_pos, full_mask


@torch.no_grad()
def encode_texts(bundle: ClipBundle, texts: list[str], *, device: str = "cpu") -> np.ndarray:
    model = bundle.model.to(device)
    tokens = bundle.tokenizer(texts)
    return unit_norm_tensor(_encode_tokens(model, tokens.to(device)).float()).cpu().numpy()


def text_prototypes(bundle: ClipBundle, classnames: list[str], templates: list[str], *, device: str = "cpu") -> np.ndarray:
    """Zero-shot classifier weights: per class, the mean of its normalised template embeddings,
    renormalised (CLIP's prompt ensembling)."""
    protos = []
    for name in classnames:
        emb = torch.from_numpy(encode_texts(bundle, [t.format(c=name) for t in templates], device=device))
        protos.append(unit_norm_tensor(emb.mean(dim=0)))
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
