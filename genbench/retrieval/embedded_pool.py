"""The embedded default's caption pool: noisy captioned digit images, a LAION stand-in.

Made from the digits TRAIN split only (the test split never enters it), each image a
transformed copy of a training scan (rotation, shift, sensor noise, and for some a white-paper
look with dark ink), so retrieved images are near the task domain without being its pixels.
Captions carry the noise real web captions carry:

- clean: a caption of the true digit, written as a numeral or a word ("three");
- wrong: a caption naming another digit (mislabelled alt text);
- vague: a caption that names no digit ("a scan of handwriting");
- distractor: an image with no digit (noise, blank page, stripes) captioned either as a digit
  (spam) or as something unrelated ("a red car parked on a street").

Extra columns: `label` (true digit, -1 for distractors), `kind` (clean, wrong, vague,
distractor) and `source_index` (position in the train split, -1 for distractors), so retrieval
precision can be measured. Everything is drawn from one seeded generator: the same arguments
give the same pool, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from genbench import storage
from genbench.errors import GenBenchError
from genbench.retrieval.pool import PoolItem

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CLEAN_TEMPLATES = (
    "handwritten digit {c}",
    "the number {c} written by hand",
    "a scan of the digit {c}",
    "{c}",
    "digit {c} on paper",
    "hand drawn number {c}",
    "a pixelated {c}",
    "black and white image of a {c}",
    "my kid wrote the number {c}",
    "a {c} from a handwriting dataset",
)
VAGUE_CAPTIONS = (
    "a scan of handwriting",
    "black and white pixels",
    "an old form filled in by hand",
    "close-up of a page",
    "low resolution scan",
    "ink on paper",
    "image",
    "untitled",
)
UNRELATED_CAPTIONS = (
    "a red car parked on a street",
    "sunset over the ocean",
    "a cat sleeping on a sofa",
    "a bowl of fresh fruit",
    "snowy mountain landscape",
    "a city street at night",
    "abstract noise texture wallpaper",
    "grey background",
)
DISTRACTOR_IMAGES = ("noise", "blank", "stripes")


def _digit_text(label: int, rng: np.random.Generator, word_fraction: float) -> str:
    return DIGIT_WORDS[label] if rng.random() < word_fraction else str(label)


def _transform(image: np.ndarray, rng: np.random.Generator, inverted_fraction: float) -> np.ndarray:
    size = image.shape[0]
    shift = max(1, size // 8)
    pil = Image.fromarray(image).rotate(
        float(rng.uniform(-15, 15)), resample=Image.BILINEAR,
        translate=(int(rng.integers(-shift, shift + 1)), int(rng.integers(-shift, shift + 1))), fillcolor=(0, 0, 0),
    )
    out = np.asarray(pil).astype(np.float64)
    if rng.random() < inverted_fraction:
        out = 255.0 - out
    out += rng.normal(0.0, 8.0, size=out.shape[:2])[..., None]
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _distractor_image(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        grey = rng.integers(0, 256, size=(size, size))
    elif kind == "blank":
        grey = np.full((size, size), int(rng.integers(0, 256)))
    else:
        period = int(rng.integers(2, max(3, size // 4)))
        grey = ((np.arange(size)[None, :] // period) % 2 * 255).repeat(size, axis=0)
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)


def make_digits_pool(image_size: int = 32, seed: int = 0, *, per_class: int | None = None, wrong_fraction: float = 0.1,
                     vague_fraction: float = 0.15, distractor_fraction: float = 0.1, inverted_fraction: float = 0.3,
                     word_fraction: float = 0.3, exclude: set[int] | frozenset[int] = frozenset()) -> list[PoolItem]:
    """The pool's items in id order (see the module docstring). `per_class` caps the training
    images used per digit; `exclude` drops train-split positions (e.g. the k-shot originals)."""
    from genbench.datasets.digits import load

    for name, value in (("wrong_fraction", wrong_fraction), ("vague_fraction", vague_fraction),
                        ("distractor_fraction", distractor_fraction), ("inverted_fraction", inverted_fraction),
                        ("word_fraction", word_fraction)):
        if not 0 <= value <= 1:
            raise GenBenchError(f"pool {name} = {value} must lie between 0 and 1")
    if wrong_fraction + vague_fraction > 1:
        raise GenBenchError(f"pool wrong_fraction + vague_fraction = {wrong_fraction + vague_fraction} must not exceed 1")
    rng = np.random.default_rng(seed)
    train = load("train", Path("."), image_size)
    positions = [i for i in range(len(train)) if i not in exclude]
    if per_class is not None:
        by_class = {c: [i for i in positions if train.labels[i] == c] for c in range(10)}
        positions = sorted(i for c in range(10) for i in by_class[c][:per_class])
    records = []
    for pos in positions:
        label = int(train.labels[pos])
        image = _transform(train.images[pos], rng, inverted_fraction)
        u = rng.random()
        if u < wrong_fraction:
            other = int(rng.choice([d for d in range(10) if d != label]))
            kind, caption = "wrong", CLEAN_TEMPLATES[rng.integers(len(CLEAN_TEMPLATES))].format(c=_digit_text(other, rng, word_fraction))
        elif u < wrong_fraction + vague_fraction:
            kind, caption = "vague", VAGUE_CAPTIONS[rng.integers(len(VAGUE_CAPTIONS))]
        else:
            kind, caption = "clean", CLEAN_TEMPLATES[rng.integers(len(CLEAN_TEMPLATES))].format(c=_digit_text(label, rng, word_fraction))
        records.append((image, caption, label, kind, pos))
    for _ in range(int(round(distractor_fraction * len(positions)))):
        image = _distractor_image(DISTRACTOR_IMAGES[rng.integers(len(DISTRACTOR_IMAGES))], image_size, rng)
        if rng.random() < 0.5:
            caption = CLEAN_TEMPLATES[rng.integers(len(CLEAN_TEMPLATES))].format(c=_digit_text(int(rng.integers(10)), rng, word_fraction))
        else:
            caption = UNRELATED_CAPTIONS[rng.integers(len(UNRELATED_CAPTIONS))]
        records.append((image, caption, -1, "distractor", -1))
    order = rng.permutation(len(records))
    return [
        PoolItem(id=f"pool-{n:06d}", caption=records[i][1], image=storage.encode_png(records[i][0]),
                 extra={"label": records[i][2], "kind": records[i][3], "source_index": records[i][4]})
        for n, i in enumerate(order)
    ]


def composition(items: list[PoolItem]) -> dict[str, int]:
    """How many items of each kind the pool holds."""
    kinds: dict[str, int] = {}
    for item in items:
        kinds[item.extra["kind"]] = kinds.get(item.extra["kind"], 0) + 1
    return dict(sorted(kinds.items()))


# Pool builders for the `pool` stage: source name -> builder(image_size, seed, **noise options).
POOL_BUILDERS = {"digits": make_digits_pool}
