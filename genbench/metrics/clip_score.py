"""CLIP score of image-text pairs, and the texts each generated image is scored against.

Reference texts (`CLIP_SCORE_TEXTS`): "class" (default, the released GenBench code) scores every
image against the fixed "a photo of a {class}" of its class, whatever prompt made it; "prompt"
scores it against its own prompt (CE sentences, RD suffixes, TI tokens included), a variant that
measures prompt adherence rather than class fidelity.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_matrix, l2_normalize

CLASS_REFERENCE = "a photo of a {c}"

# Reference texts: name -> fn(prompts, class names) -> one text per image (row for row).
CLIP_SCORE_TEXTS: dict[str, Callable[[Sequence[str], Sequence[str]], list[str]]] = {
    "class": lambda prompts, classnames: [CLASS_REFERENCE.replace("{c}", str(c)) for c in classnames],
    "prompt": lambda prompts, classnames: [str(p) for p in prompts],
}


def reference_texts(text: str, prompts: Sequence[str], classnames: Sequence[str]) -> list[str]:
    """The text each image is scored against under reference `text` (CLIP_SCORE_TEXTS)."""
    if text not in CLIP_SCORE_TEXTS:
        raise GenBenchError(f"unknown CLIP score reference text {text!r}; known: {', '.join(CLIP_SCORE_TEXTS)}")
    if len(prompts) != len(classnames):
        raise GenBenchError(f"{len(prompts)} prompts but {len(classnames)} class names; give one of each per image")
    return CLIP_SCORE_TEXTS[text](prompts, classnames)


def clip_score(image_feats, text_feats) -> float:
    """Mean over paired rows i of 100 * max(cos(image_i, text_i), 0), where row i of `text_feats`
    is the CLIP text embedding of image i's reference text (`reference_texts`; no 2.5 rescaling)."""
    images = as_matrix(image_feats, "image_feats")
    texts = as_matrix(text_feats, "text_feats")
    if images.shape != texts.shape:
        raise GenBenchError(
            f"image_feats {images.shape} and text_feats {texts.shape} must be paired rows of the same shape"
        )
    cosines = np.sum(l2_normalize(images, "image_feats") * l2_normalize(texts, "text_feats"), axis=1)
    return float(np.mean(100.0 * np.clip(cosines, 0, None)))
