"""Train the miniature CLIP: an open_clip `CLIP` (ModifiedResNet image tower, transformer text
tower, open_clip's SimpleTokenizer) learned from image-caption pairs of a small labelled set.

Each training image is paired with a caption of its class drawn from `caption_templates` (the
dataset's templates plus varied extra phrasings). The loss is CLIP's symmetric cross-entropy
over the image-text similarity matrix, with label-aware targets (UniCL, Yang et al. 2022): a
batch holds many images of one class, so every caption of an image's class counts as a positive
of that image (and vice versa), with the target mass spread evenly over them. With
`label_aware=False` the targets are the plain diagonal of CLIP.

Images are preprocessed once with open_clip's evaluation transform (resize, centre crop, CLIP
mean and std), the same transform `load_clip` applies at inference; the only augmentation is a
random translation by up to `max_shift` pixels (edges replicated).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genbench.clip_models import CLIP_MEAN, CLIP_STD, build_tiny_clip, save_clip
from genbench.miniature.captions import caption_table, caption_templates, sample_caption_ids
from genbench.miniature.common import (
    check_positive,
    check_training_data,
    deterministic,
    epoch_batches,
    progress_bar,
    training_record,
    warmup_cosine,
)

MINIATURE_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
MAX_LOGIT_SCALE = 100.0


def preprocess_images(images: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, S, S) through open_clip's evaluation transform."""
    from open_clip.transform import image_transform
    from PIL import Image

    transform = image_transform(image_size, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    return torch.stack([transform(Image.fromarray(img)) for img in images])


def random_shift(batch: torch.Tensor, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Translate each image by a random integer offset in [-max_shift, max_shift] per axis."""
    if max_shift == 0:
        return batch
    size = batch.shape[-1]
    padded = F.pad(batch, (max_shift,) * 4, mode="replicate")
    offsets = rng.integers(0, 2 * max_shift + 1, size=(len(batch), 2))
    return torch.stack([padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offsets)])


def contrastive_loss(image_feats, text_feats, logit_scale, labels: torch.Tensor | None) -> torch.Tensor:
    """Symmetric cross-entropy of the scaled cosine-similarity matrix. With `labels`, the
    targets of a row (column) are uniform over the columns (rows) of the same class."""
    logits = logit_scale * image_feats @ text_feats.T
    if labels is None:
        target = torch.arange(len(logits))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    same = (labels[:, None] == labels[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and kernels only, not on gains, biases, norms or the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        exempt = param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_clip(
    images,
    labels,
    classnames: Sequence[str],
    templates: Sequence[str],
    out_dir: str | Path,
    *,
    seed: int = 0,
    steps: int = 100,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    warmup: int = 25,
    max_shift: int = 2,
    label_aware: bool = True,
    config: dict | None = None,
    num_threads: int | None = 1,
    progress: bool = True,
) -> dict:
    """Train a miniature CLIP on (images, labels) and save it with `save_clip` in `out_dir`
    (open_clip's local-dir layout). Training runs on `num_threads` torch threads (None: leave
    torch's setting). Returns {path, weights_sha256, final_loss, losses, seconds}: final_loss
    is the mean loss over the last 10% of steps."""
    from open_clip.tokenizer import SimpleTokenizer

    start = time.perf_counter()
    images, labels = check_training_data(images, labels, classnames, templates)
    check_positive(steps=steps, batch_size=batch_size, num_threads=num_threads)
    config = copy.deepcopy(config or MINIATURE_CLIP_CONFIG)
    captions = caption_templates(templates)
    tokens = SimpleTokenizer(context_length=config["text_cfg"]["context_length"])(caption_table(captions, classnames))
    pixels = preprocess_images(images, config["vision_cfg"]["image_size"])
    label_tensor = torch.from_numpy(labels)
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(labels))
    losses = []
    with deterministic(seed, num_threads):
        model, config = build_tiny_clip(seed, config)
        model.train()
        optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, warmup))
        with progress_bar(steps, "train miniature CLIP", progress) as bar:
            for idx in epoch_batches(len(labels), batch_size, steps, rng):
                caption_ids = sample_caption_ids(labels[idx], len(captions), len(classnames), rng)
                batch = random_shift(pixels[idx], max_shift, rng)
                image_feats, text_feats, logit_scale = model(batch, tokens[caption_ids])
                loss = contrastive_loss(image_feats, text_feats, logit_scale, label_tensor[idx] if label_aware else None)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, np.log(MAX_LOGIT_SCALE))
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                bar.update()
    model.eval()
    save_clip(model, config, out_dir)
    return training_record(out_dir, start, losses)
