"""Class names and prompt templates of the 22 GenBench datasets, read from the package's data files.

Class names are listed in the order of each dataset's own label ids (index i is label i as the
dataset's documentation and torchvision number them). Names and templates are those of the CLIP
paper (openai/CLIP `data/prompts.md` and its ImageNet notebook), as also packaged by LAION's
CLIP_benchmark, with `{c}` in place of CLIP's `{}`. Deviations, all deliberate:
- caltech-101: 102 classes as in CLIP and VTAB: "background" (BACKGROUND_Google) and 101 objects;
- oxford-pets, eurosat: CLIP_benchmark's order (the label ids) instead of prompts.md's sorted lists;
- fer-2013: the first of CLIP's names per class (the synonyms are in FER_SYNONYMS), in the
  order of the FER-2013 csv (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral);
- voc-2007: the VOC devkit's class order (alphabetical).
ImageNet's CLIP names contain two repeated names ("missile", "sunglasses"), as in CLIP.

The tables are JSON package data in genbench/datasets/data/ (`classnames.json`, `templates.json`:
dataset name -> list of strings, in the orders above), read once at import by `load_table`.
"""

from __future__ import annotations

import json
from importlib import resources


def load_table(name: str) -> dict[str, tuple[str, ...]]:
    """The package data table genbench/datasets/data/<name>.json (dataset name -> list of strings)
    as a dict of tuples, datasets and entries in the file's order."""
    text = resources.files("genbench.datasets").joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    return {dataset: tuple(entries) for dataset, entries in json.loads(text).items()}


CLASSNAMES: dict[str, tuple[str, ...]] = load_table("classnames")
TEMPLATES: dict[str, tuple[str, ...]] = load_table("templates")

FER_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("angry",),
    ("disgusted",),
    ("fearful",),
    ("happy", "smiling"),
    ("sad", "depressed"),
    ("surprised", "shocked", "spooked"),
    ("neutral", "bored"),
)
