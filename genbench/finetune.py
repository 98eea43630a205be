"""Fine-tuning the CLIP image encoder with a linear head (the paper's Figure 10 protocol).

A head is first fitted on the frozen, L2-normalised features of the training images by the
probe's objective (genbench.probe.fit_logistic, strength `head_l2`); then the image encoder and
the head are trained together for `epochs` passes with AdamW on cross-entropy (binary
cross-entropy per class for multi-hot targets). With zero epochs the result is exactly that
linear probe. The encoder stays in eval mode (no dropout, batch-norm statistics frozen), the
training images are visited in a seeded order, and the result is deterministic for a seed and
device. The test set is scored once, after training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from genbench.clip_models import ClipBundle
from genbench.errors import GenBenchError
from genbench.features import preprocessed_batches, unit_norm_tensor
from genbench.metrics.evaluation import evaluate
from genbench.probe import fit_logistic


@dataclass(frozen=True)
class FinetuneSettings:
    """Optimisation settings of `finetune_encoder`."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.0
    head_l2: float = 1e-3
    seed: int = 0
    device: str = "cpu"


def kshot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Sorted row indices of at most `shots` rows per class of integer `labels`, drawn without
    replacement by a generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:shots] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(logits)
    return F.cross_entropy(logits, targets)


def _pixels(bundle: ClipBundle, images: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    return list(preprocessed_batches(bundle.preprocess, images, Image.fromarray, batch_size=batch_size))


def _features(model, batches: list[torch.Tensor], device: str) -> torch.Tensor:
    return torch.cat([unit_norm_tensor(model.encode_image(b.to(device)).float()) for b in batches])


@torch.no_grad()
def _mean_loss(model, head: torch.nn.Linear, batches, targets: torch.Tensor, device: str) -> float:
    return float(_loss(head(_features(model, batches, device)), targets))


@torch.no_grad()
def _logits(model, head: torch.nn.Linear, bundle: ClipBundle, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    batches = preprocessed_batches(bundle.preprocess, images, Image.fromarray, batch_size=batch_size)
    return torch.cat([head(unit_norm_tensor(model.encode_image(b.to(device)).float())).cpu() for b in batches]).numpy()


def finetune_encoder(bundle: ClipBundle, train_images: np.ndarray, train_targets: np.ndarray, test_images: np.ndarray,
                     test_labels, *, num_classes: int, metric: str, settings: FinetuneSettings = FinetuneSettings(),
                     progress: bool = False) -> dict:
    """Fine-tune a copy of `bundle`'s image encoder with a linear head on uint8 (N, H, W, 3)
    `train_images` and score the real `test_images` by `metric` (percent).

    `train_targets`: integer (N,) class indices, or multi-hot (N, C) rows. `bundle` is left
    untouched. Returns score, head_only_score (the initial head, i.e. the linear probe on frozen
    features), train_loss (the training objective's data term over all training images before
    the first epoch and after each), epochs, images, head_l2, sklearn_C (of the head fit)."""
    s = settings
    if len(train_images) == 0:
        raise GenBenchError("finetune: no training images; the set is empty")
    torch.manual_seed(s.seed)
    model = copy.deepcopy(bundle.model).to(s.device).eval()
    multi = np.asarray(train_targets).ndim == 2
    targets = torch.as_tensor(np.asarray(train_targets), dtype=torch.float32 if multi else torch.int64, device=s.device)
    batches = _pixels(bundle, train_images, s.batch_size)
    with torch.no_grad():
        frozen = _features(model, batches, s.device).double().cpu()
    weight, bias, _ = fit_logistic(frozen, targets.cpu().double() if multi else targets.cpu(), l2=s.head_l2,
                                   num_classes=num_classes)
    head = torch.nn.Linear(frozen.shape[1], num_classes).to(s.device)
    with torch.no_grad():
        head.weight.copy_(weight.float())
        head.bias.copy_(bias.float())
    test_labels = np.asarray(test_labels)
    head_only = evaluate(metric, _logits(model, head, bundle, test_images, s.batch_size, s.device), test_labels)
    pixels = torch.cat(batches)
    losses = [_mean_loss(model, head, batches, targets, s.device)]
    if s.epochs > 0:
        optimizer = torch.optim.AdamW([{"params": model.visual.parameters(), "lr": s.learning_rate},
                                       {"params": head.parameters(), "lr": s.head_learning_rate}],
                                      weight_decay=s.weight_decay)
        order = torch.Generator().manual_seed(s.seed)
        for _ in tqdm(range(s.epochs), desc="finetune", unit="epoch", disable=not progress):
            for rows in torch.randperm(len(pixels), generator=order).split(s.batch_size):
                optimizer.zero_grad()
                feats = unit_norm_tensor(model.encode_image(pixels[rows].to(s.device)).float())
                _loss(head(feats), targets[rows]).backward()
                optimizer.step()
            losses.append(_mean_loss(model, head, batches, targets, s.device))
        score = evaluate(metric, _logits(model, head, bundle, test_images, s.batch_size, s.device), test_labels)
    else:
        score = head_only
    return {"score": score, "head_only_score": head_only, "train_loss": losses, "epochs": s.epochs,
            "images": len(train_images), "head_l2": s.head_l2, "sklearn_C": 1.0 / (len(train_images) * s.head_l2)}
