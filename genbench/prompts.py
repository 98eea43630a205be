"""Prompt strategies of GenBench (Section 3.2 and Appendix of the paper).

A base strategy maps (dataset, class index, count, rng) to `count` prompt specifications; a
modifier maps a list of specifications to a new list. A strategy name composes one base with
modifiers joined by '+', as the paper writes them: `DT+NP+RD`.

Bases:
- ST, simple template: "a photo of {class}".
- DT, defined template: the dataset's own templates (CLIP's per-dataset prompts), cycled.
Modifiers:
- NP, negative prompts: the names of up to 5 other classes of the dataset, sampled per image,
  plus quality negatives.
- RD, restrictive description: quality phrases with emphasis, e.g. "((sharp focus))".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from genbench.datasets.base import DatasetSpec
from genbench.errors import GenBenchError

SIMPLE_TEMPLATE = "a photo of {c}"
RESTRICTIVE_PHRASES = ("((sharp focus))", "((highly detailed))", "((hires))")
QUALITY_NEGATIVES = ("bad shape", "misfigured", "low quality", "blurry")
NEGATIVE_CLASSES = 5


@dataclass(frozen=True)
class PromptSpec:
    prompt: str
    negative_prompt: str = ""


# Base: (dataset, class index, count, rng) -> `count` PromptSpecs for that class.
Base = Callable[[DatasetSpec, int, int, np.random.Generator], list[PromptSpec]]
# Modifier: (specs, dataset, class index, rng) -> specs of the same length.
Modifier = Callable[[list[PromptSpec], DatasetSpec, int, np.random.Generator], list[PromptSpec]]


def simple_template(ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator) -> list[PromptSpec]:
    return [PromptSpec(SIMPLE_TEMPLATE.format(c=ds.classnames[cls]))] * count


def defined_template(ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator) -> list[PromptSpec]:
    offset = int(rng.integers(len(ds.templates)))
    return [PromptSpec(ds.templates[(offset + i) % len(ds.templates)].format(c=ds.classnames[cls])) for i in range(count)]


def negative_prompts(specs: list[PromptSpec], ds: DatasetSpec, cls: int, rng: np.random.Generator) -> list[PromptSpec]:
    others = [name for i, name in enumerate(ds.classnames) if i != cls]
    out = []
    for spec in specs:
        k = min(NEGATIVE_CLASSES, len(others))
        picked = [others[i] for i in sorted(rng.choice(len(others), size=k, replace=False))] if k else []
        negative = ", ".join([*picked, *QUALITY_NEGATIVES])
        joined = f"{spec.negative_prompt}, {negative}" if spec.negative_prompt else negative
        out.append(replace(spec, negative_prompt=joined))
    return out


def restrictive_description(specs: list[PromptSpec], ds: DatasetSpec, cls: int, rng: np.random.Generator) -> list[PromptSpec]:
    suffix = ", ".join(RESTRICTIVE_PHRASES)
    return [replace(s, prompt=f"{s.prompt.rstrip('.')}., {suffix}") for s in specs]


# Registries: strategy abbreviation -> function (contracts above).
BASES: dict[str, Base] = {"ST": simple_template, "DT": defined_template}
MODIFIERS: dict[str, Modifier] = {"NP": negative_prompts, "RD": restrictive_description}


def parse_strategy(name: str) -> tuple[str, list[str]]:
    """Split 'DT+NP+RD' into ('DT', ['NP', 'RD']), or raise GenBenchError naming the bad part."""
    parts = [p.strip() for p in str(name).split("+")]
    base, mods = parts[0], parts[1:]
    if base not in BASES:
        raise GenBenchError(
            f"unknown prompt strategy {name!r}: base {base!r} is not one of {', '.join(BASES)} "
            f"(modifiers: {', '.join(MODIFIERS)}; combine as DT+NP+RD)"
        )
    for mod in mods:
        if mod not in MODIFIERS:
            raise GenBenchError(f"unknown prompt strategy {name!r}: modifier {mod!r} is not one of {', '.join(MODIFIERS)}")
    return base, mods


def build_prompts(name: str, ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator) -> list[PromptSpec]:
    base, mods = parse_strategy(name)
    specs = BASES[base](ds, cls, count, rng)
    for mod in mods:
        specs = MODIFIERS[mod](specs, ds, cls, rng)
    return specs
