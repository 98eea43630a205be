"""Captions for training the miniature models: the dataset's templates plus more varied ones.

Training on more phrasings than the dataset's own templates keeps the models from tying a
class to one sentence; keeping the dataset's templates in the set makes zero-shot prompts
built from them in-distribution.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Extra phrasings, each with one `{c}` placeholder for the class name.
EXTRA_TEMPLATES = (
    "{c}",
    "{c}.",
    "a {c}.",
    "the {c}.",
    "a photo of a {c}.",
    "a photo of the {c}.",
    "an image of the digit {c}.",
    "a picture of the number {c}.",
    "the digit {c}.",
    "the number {c}.",
    "a drawing of a {c}.",
    "a sketch of the digit {c}.",
    "handwritten {c}.",
    "a handwritten number {c}.",
    "a low resolution photo of the digit {c}.",
    "a pixelated photo of the number {c}.",
    "a grayscale image of a {c}.",
    "a small picture of the digit {c}.",
    "a close-up photo of a handwritten {c}.",
    "a scan of the number {c}.",
    "a photo of a {c}, a type of digit.",
    "the digit {c}, written by hand.",
)


def caption_templates(dataset_templates: Sequence[str]) -> tuple[str, ...]:
    """The dataset's templates first, then every extra template not already among them."""
    seen = list(dict.fromkeys(dataset_templates))
    return tuple(seen + [t for t in EXTRA_TEMPLATES if t not in seen])


def caption_table(templates: Sequence[str], classnames: Sequence[str]) -> list[str]:
    """All captions, template-major: entry `t * len(classnames) + c` is template t for class c."""
    return [t.format(c=name) for t in templates for name in classnames]


def sample_caption_ids(labels: np.ndarray, num_templates: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """For each label, the index into `caption_table` of a caption of that class with a
    uniformly drawn template."""
    templates = rng.integers(0, num_templates, size=len(labels))
    return templates * num_classes + np.asarray(labels)
