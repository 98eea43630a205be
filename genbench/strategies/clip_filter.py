"""CF: keep generated images whose CLIP zero-shot confidence for their own class passes a threshold.

He et al. (2023) score each synthetic image with CLIP zero-shot classification over the
dataset's classes, softmax(logit_scale * cos(image, class text)), and keep those whose
probability for their own class is above a threshold (their code: `> 1 / num_classes`), filling
up with the most confident images when too few pass.

What the kit does, deterministically:
- the class texts are the dataset's templates averaged per class (CLIP's prompt ensemble, the
  same text prototypes as the zero-shot baseline), the logit scale is the model's own;
- the plan makes `ceil(n * (1 + oversample))` candidates per class and strategy instead of n
  (further seeds planned up front, not regenerated in rounds, so every shard can be made in
  parallel and a restart finds the same plan);
- genbench.strategies.selection keeps, in index order, the first n candidates whose confidence is
  above the threshold; with `fill`, a class short of n is filled with its most confident remaining
  candidates (He et al.'s rule), otherwise it stays short. Every dropped candidate is recorded with
  its confidence and the reason (below_threshold or surplus).
The same model embeds the candidates and the few-shot originals for RF (`features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genbench.clip_models import ClipBundle, load_clip
from genbench.features import encode_images, model_sha256, text_prototypes

def default_threshold(num_classes: int) -> float:
    """He et al.'s threshold: the chance level 1 / number of classes."""
    return 1.0 / num_classes


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class ClipFilter:
    """A CLIP model with the text prototypes of one dataset's classes."""

    bundle: ClipBundle
    prototypes: np.ndarray
    logit_scale: float
    name: str
    weights_sha256: str
    device: str = "cpu"

    def features(self, images: np.ndarray) -> np.ndarray:
        """Normalised CLIP features of uint8 (N, H, W, 3) images (float64)."""
        if len(images) == 0:
            return np.zeros((0, self.prototypes.shape[1]))
        return encode_images(self.bundle, images, batch_size=256, device=self.device, progress=False).astype(np.float64)

    def confidence_of(self, feats: np.ndarray, labels) -> np.ndarray:
        """Softmax probability of each image's own class from its `features` (float64, one per image)."""
        if len(feats) == 0:
            return np.zeros(0)
        probs = softmax(self.logit_scale * feats @ self.prototypes.T)
        return probs[np.arange(len(feats)), np.asarray(labels)]

    def confidence(self, images: np.ndarray, labels) -> np.ndarray:
        """Softmax probability of each image's own class (float64, one per image)."""
        return self.confidence_of(self.features(images), labels)


def load_clip_filter(model: str, pretrained: str | None, classnames: list[str], templates: list[str], *,
                     device: str = "cpu", seed: int = 0) -> ClipFilter:
    bundle = load_clip(model, pretrained, seed=seed, device=device)
    protos = text_prototypes(bundle, list(classnames), list(templates), device=device).astype(np.float64)
    scale = float(bundle.model.logit_scale.exp().item())
    return ClipFilter(bundle=bundle, prototypes=protos, logit_scale=scale, name=f"{model}|{pretrained}",
                      weights_sha256=model_sha256(bundle.model), device=device)

