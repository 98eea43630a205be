"""What both miniature trainers share: input checks, a deterministic context, the learning-rate
schedule, progress bars, the hash of the saved weights and the record a training returns."""

from __future__ import annotations

import hashlib
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from genbench.errors import GenBenchError


def check_training_data(images, labels, classnames: Sequence[str], templates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validate the training set; return (uint8 (N, H, W, 3) images, int64 (N,) labels)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise GenBenchError(f"images must be a uint8 (N, H, W, 3) array, got {images.dtype} {images.shape}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise GenBenchError(f"labels must be 1-D with one entry per image ({len(images)}), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise GenBenchError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if len(classnames) < 2:
        raise GenBenchError(f"need at least 2 class names, got {list(classnames)!r}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classnames)):
        raise GenBenchError(f"labels must lie in [0, {len(classnames)}), got range [{labels.min()}, {labels.max()}]")
    missing = sorted(set(range(len(classnames))) - set(labels.tolist()))
    if missing:
        raise GenBenchError(f"no training images for class index(es) {missing}; every class needs some")
    bad = [t for t in templates if "{c}" not in t]
    if not templates or bad:
        raise GenBenchError(f"every template needs a '{{c}}' placeholder, got {bad or list(templates)!r}")
    return images, labels.astype(np.int64)


def check_positive(**values) -> None:
    """Raise GenBenchError naming the first value that is not a positive integer (None allowed
    for `num_threads`)."""
    for name, value in values.items():
        if name == "num_threads" and value is None:
            continue
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise GenBenchError(f"{name} must be a positive integer, got {value!r}")


@contextmanager
def deterministic(seed: int, num_threads: int | None) -> Iterator[None]:
    """Seed torch, switch on deterministic algorithms and, unless `num_threads` is None, fix
    torch's intra-op thread count; restore the previous mode and thread count on exit.

    A fixed thread count keeps floating-point reductions, hence the weights hash, the same
    whatever the core count. One thread is also the robust choice on a busy machine: with two
    threads sharing two loaded cores, OpenMP's spin-waiting made a training step 40x slower.
    """
    previous_mode = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_mode)
        torch.set_num_threads(previous_threads)


def epoch_batches(num_items: int, batch_size: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """`steps` index batches drawn in order from consecutive shuffled epochs."""
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(num_items)])
        yield order[:batch_size]
        order = order[batch_size:]


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over `warmup` steps, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def safetensors_sha256(directory: str | Path) -> str:
    """sha256 over the bytes of every *.safetensors file under `directory`, in sorted relative
    path order, each preceded by its relative path."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.safetensors")):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def tail_mean(losses: Sequence[float]) -> float:
    """Mean of the last 10% of `losses` (at least the last one)."""
    return float(np.mean(losses[-max(1, len(losses) // 10):]))


def training_record(out_dir: str | Path, start: float, losses: list[float], **extra) -> dict:
    """What a trainer returns once its weights are saved in `out_dir`: {path, weights_sha256,
    final_loss (tail_mean of `losses`), losses, **extra, seconds since `start` (perf_counter)}."""
    return {"path": str(out_dir), "weights_sha256": safetensors_sha256(out_dir), "final_loss": tail_mean(losses),
            "losses": losses, **extra, "seconds": time.perf_counter() - start}
