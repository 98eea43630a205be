"""Label-first access to a dataset split.

A `SplitReader` knows a split's labels without decoding a single image (torchvision's target
lists, image-folder paths, WebDataset `.cls`/`.npy` members, a manual download's csv/jsonl) and
decodes only the images asked for, a batch at a time, in a pool of threads (PIL releases the
GIL while it decodes and resizes). Memory therefore depends on the batch size, never on the
size of the split:

    reader = spec.open_split("train", root, 224)
    reader.labels                        # (N,) int64, or (N, C) multi-hot for multi-label sets
    reader.decode([3, 17])               # (2, 224, 224, 3) uint8
    for images in reader.batches(indices, batch_size=256, workers=4): ...

`reader.load()` decodes the whole split into a `LabeledImages`, the form callers that want the
split in memory (the miniature's bootstrap, the embedded pool) read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from genbench.datasets.base import LabeledImages

DECODE_WORKERS = 4
DECODE_BATCH = 256

# decode(index into the split) -> (size, size, 3) uint8, the image as `images.square_rgb` makes it
DecodeOne = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class SplitReader:
    """A split's labels, read without decoding, and a decoder of one image by its index."""

    labels: np.ndarray
    decode_one: DecodeOne
    image_size: int

    def __len__(self) -> int:
        return len(self.labels)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.image_size, self.image_size, 3), dtype=np.uint8)

    def decode(self, indices: Sequence[int], *, workers: int = DECODE_WORKERS) -> np.ndarray:
        """The images at `indices`, stacked in that order: (len(indices), size, size, 3) uint8."""
        indices = [int(i) for i in indices]
        if not indices:
            return self._empty()
        if workers <= 1 or len(indices) == 1:
            return np.stack([self.decode_one(i) for i in indices])
        with ThreadPoolExecutor(workers) as pool:
            return np.stack(list(pool.map(self.decode_one, indices)))

    def batches(self, indices: Sequence[int], *, batch_size: int = DECODE_BATCH,
                workers: int = DECODE_WORKERS) -> Iterator[np.ndarray]:
        """The images at `indices` in order, `batch_size` at a time. The next batch is decoded
        while the caller works on the current one, so at most two batches are held."""
        indices = [int(i) for i in indices]
        chunks = [indices[s : s + batch_size] for s in range(0, len(indices), batch_size)]
        if workers <= 1:
            for chunk in chunks:
                yield np.stack([self.decode_one(i) for i in chunk])
            return
        with ThreadPoolExecutor(workers) as pool:
            def submit(chunk):
                return [pool.submit(self.decode_one, i) for i in chunk]

            pending = submit(chunks[0]) if chunks else []
            for k in range(len(chunks)):
                current, pending = pending, submit(chunks[k + 1]) if k + 1 < len(chunks) else []
                yield np.stack([f.result() for f in current])

    def images(self, indices: Sequence[int], *, batch_size: int = DECODE_BATCH,
               workers: int = DECODE_WORKERS) -> Iterator[np.ndarray]:
        """The images at `indices` one by one, decoded batch by batch (see `batches`)."""
        for batch in self.batches(indices, batch_size=batch_size, workers=workers):
            yield from batch

    def load(self, *, workers: int = DECODE_WORKERS) -> LabeledImages:
        """The whole split in memory."""
        return LabeledImages(images=self.decode(range(len(self)), workers=workers), labels=self.labels)

    @classmethod
    def in_memory(cls, data: LabeledImages) -> "SplitReader":
        """A reader over a split already decoded (loaders that only offer the whole split)."""
        size = data.images.shape[1] if data.images.ndim == 4 and len(data.images) else 1
        return cls(labels=data.labels, decode_one=lambda i: data.images[i], image_size=size)


# open(split, data root, image size) -> SplitReader, or raises GenBenchError saying where to get the data
Opener = Callable[[str, object, int], SplitReader]


class ReaderLoader:
    """A dataset `Loader` built on an opener: `open` gives the label-first reader, calling it
    decodes the whole split (the `Loader` contract)."""

    def __init__(self, opener: Opener):
        self.open = opener

    def __call__(self, split: str, root, image_size: int) -> LabeledImages:
        return self.open(split, root, image_size).load()
