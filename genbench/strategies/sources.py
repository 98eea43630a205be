"""The texts model-backed strategies need before planning, made once per run and cached.

CE/LE need sentences per class from the text-to-text model; CiP needs captions of the k-shot real
images from the captioning model. `build_sources` loads each model only when a strategy asks for
it, and keeps the texts in a JSON cache file beside the images, keyed by everything they depend
on (model, revision, settings, class names, the real images' hashes). A restarted or sharded run
thus plans with the very same prompts even where sampling on another GPU would differ, and the
file records the sentences and captions that were used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbench import storage
from genbench.datasets.base import DatasetSpec
from genbench.errors import GenBenchError
from genbench.prompts import PromptSources, Strategy
from genbench.strategies.captions import DEFAULT_CAPTIONER
from genbench.strategies.enhance import DEFAULT_ENHANCER

SENTENCE_BASES = ("CE", "LE")
CAPTION_BASES = ("CiP",)


@dataclass(frozen=True)
class TextModels:
    """Which text-to-text and captioning models to use, and how."""

    enhancer: str = DEFAULT_ENHANCER
    enhancer_revision: str | None = None
    sentences_per_class: int = 200
    enhancer_max_new_tokens: int = 32
    captioner: str = DEFAULT_CAPTIONER
    captioner_revision: str | None = None
    caption_max_new_tokens: int = 30
    captioner_dtype: str = "float32"
    seed: int = 0


def needs_sentences(strategies: list[Strategy]) -> bool:
    return any(s.base in SENTENCE_BASES for s in strategies)


def needs_captions(strategies: list[Strategy]) -> bool:
    return any(s.base in CAPTION_BASES for s in strategies)


def _key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _make_sentences(ds: DatasetSpec, cfg: TextModels, device: str) -> tuple[dict, str]:
    from genbench.features import model_sha256
    from genbench.strategies.enhance import enhance_classnames, load_enhancer

    enhancer = load_enhancer(cfg.enhancer, cfg.enhancer_revision, device=device, seed=cfg.seed)
    sentences = enhance_classnames(enhancer, list(ds.classnames), cfg.sentences_per_class, seed=cfg.seed,
                                   max_new_tokens=cfg.enhancer_max_new_tokens, device=device)
    return {str(c): s for c, s in enumerate(sentences)}, model_sha256(enhancer.model)


def _make_captions(originals: tuple[np.ndarray, object], cfg: TextModels, device: str) -> tuple[dict, str]:
    from genbench.features import model_sha256
    from genbench.strategies.captions import caption_images, load_captioner

    images, manifest = originals
    captioner = load_captioner(cfg.captioner, cfg.captioner_revision, dtype=cfg.captioner_dtype, device=device, seed=cfg.seed)
    texts = caption_images(captioner, images, max_new_tokens=cfg.caption_max_new_tokens, device=device)
    by_class: dict[str, list] = {}
    for text, (_, row) in zip(texts, manifest.iterrows()):
        by_class.setdefault(str(int(row["class_index"])), []).append([str(row["key"]), text])
    return by_class, model_sha256(captioner.model)


PROVENANCE_KEYS = ("model", "revision", "weights_sha256")


def _cached_entry(entry: dict, key: str, model: str, revision: str | None, make) -> dict:
    """A cache entry: `entry` itself when it was made under `key`, else a new one from
    `make()` -> (texts by class, weights hash)."""
    if entry.get("key") == key:
        return entry
    by_class, weights = make()
    return {"key": key, "model": model, "revision": revision, "weights_sha256": weights, "by_class": by_class}


def build_sources(strategies: list[Strategy], ds: DatasetSpec, cfg: TextModels, *,
                  originals: tuple[np.ndarray, object] | None = None, device: str = "cpu",
                  cache: str | Path | None = None) -> tuple[PromptSources, dict]:
    """The PromptSources the strategies need, and a provenance dict (model id, revision and
    weights hash per kind of text). Reads the JSON cache at `cache` when given and leaves in it
    exactly the texts these strategies use."""
    cache = Path(cache) if cache is not None else None
    stored = _read_cache(cache)
    updated = {}
    sentences, captions, provenance = {}, {}, {}
    if needs_sentences(strategies):
        key = _key({"dataset": ds.name, "classnames": list(ds.classnames), "model": cfg.enhancer,
                    "revision": cfg.enhancer_revision, "per_class": cfg.sentences_per_class,
                    "max_new_tokens": cfg.enhancer_max_new_tokens, "seed": cfg.seed})
        entry = updated["sentences"] = _cached_entry(stored.get("sentences", {}), key, cfg.enhancer, cfg.enhancer_revision,
                                                     lambda: _make_sentences(ds, cfg, device))
        sentences = {int(c): tuple(v) for c, v in entry["by_class"].items()}
        provenance["sentences"] = {k: entry[k] for k in PROVENANCE_KEYS}
    if needs_captions(strategies):
        if originals is None:
            raise GenBenchError("strategy CiP needs the k-shot real images (data/<dataset>/prepared/original); run prepare first")
        images, manifest = originals
        key = _key({"dataset": ds.name, "model": cfg.captioner, "revision": cfg.captioner_revision,
                    "dtype": cfg.captioner_dtype, "max_new_tokens": cfg.caption_max_new_tokens, "seed": cfg.seed,
                    "images": list(map(str, manifest["sha256"])), "keys": list(map(str, manifest["key"]))})
        entry = updated["captions"] = _cached_entry(stored.get("captions", {}), key, cfg.captioner, cfg.captioner_revision,
                                                    lambda: _make_captions(originals, cfg, device))
        captions = {int(c): tuple((k, t) for k, t in v) for c, v in entry["by_class"].items()}
        provenance["captions"] = {k: entry[k] for k in PROVENANCE_KEYS}
    if cache is not None and updated != stored:
        if updated:
            storage.atomic_write_json(cache, updated)
        else:
            cache.unlink(missing_ok=True)
    return PromptSources(sentences=sentences, captions=captions), provenance
