"""Prompt strategies of GenBench (Section 3.2 of the paper) and of the two related papers.

A strategy name is a base followed by parts joined with '+', as the papers write them:
`DT+NP+RD`, `LE+CF`, `CiP+RG`, `DT+TI`, `ST+RF`. The base makes the prompt text; each other part changes
the prompts, the class name used in them, the image the generation starts from, or which images
are kept.

Bases, (dataset, class index, count, rng, sources) -> `count` PromptSpecs:
- ST, simple template: the bare class name (Table 6 of the paper, the released code's template
  "{}"); `PromptSources.simple_template` can set another, e.g. "a photo of {c}" (the wording of
  the paper's Section 2.3).
- DT, defined template: the dataset's own templates (CLIP's per-dataset prompts), cycled.
- CE, category enhancement (GenBench) = LE, language enhancement (He et al.): sentences that a
  word-to-sentence model wrote from the class name (`PromptSources.sentences`), cycled in a
  random order.
- CiP, caption in prompt (Lei et al.): "a photo of {class}, {caption}" with the captions of the
  class's real k-shot images (`PromptSources.captions`); image i uses the caption of real image
  i mod k.
Prompt modifiers, (specs, dataset, class index, rng) -> specs of the same length:
- NP, negative prompts: the names of up to 5 other classes of the dataset, sampled per image,
  plus quality negatives.
- RD, restrictive description: quality phrases with emphasis, e.g. "((sharp focus))".
Name modifiers, (dataset, class index) -> the text used for the class in the base's prompts:
- TI, textual inversion tokens: `<|{dataset} {class}|>` in place of the class name (with ST, DT or
  CiP; the embeddings are loaded by `genbench.strategies.textual_inversion`).
Image parts, carried out by `genbench.generation` with `genbench.strategies`:
- RG, real guidance: image-to-image from the class's real k-shot images (image i from real i mod k).
- RA, retrieval augmented: image-to-image from retrieved images of the class.
- CF, CLIP filter: keep images whose CLIP zero-shot confidence for their own class passes a
  threshold.
- RF, real filter (He et al. 2023, Sec. 4): keep images whose nearest few-shot original images,
  by cosine of CLIP features, are mostly (ties kept) of their own class.
CF and RF may be combined (`LE+CF+RF`): an image is kept when it passes both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from genbench.datasets.base import DatasetSpec
from genbench.errors import GenBenchError

SIMPLE_TEMPLATE = "{c}"  # Table 6: ST is the class name alone
PHOTO_TEMPLATE = "a photo of {c}"  # Section 2.3's wording of ST, kept as generate.st_template's alternative
CAPTION_TEMPLATE = "a photo of {c}, {caption}"
RESTRICTIVE_PHRASES = ("((sharp focus))", "((highly detailed))", "((hires))")
QUALITY_NEGATIVES = ("bad shape", "misfigured", "low quality", "blurry")
NEGATIVE_CLASSES = 5


@dataclass(frozen=True)
class PromptSpec:
    """One image's prompt; `caption_source` names the real image whose caption it uses (CiP)."""

    prompt: str
    negative_prompt: str = ""
    caption_source: str = ""


@dataclass(frozen=True)
class PromptSources:
    """Texts the strategies plan with beyond the dataset's own: the ST template (`{c}` stands for
    the class name), and what model-backed strategies made before planning, by class index:
    `sentences` for CE/LE, `captions` as (real image key, caption) pairs for CiP."""

    sentences: Mapping[int, Sequence[str]] = field(default_factory=dict)
    captions: Mapping[int, Sequence[tuple[str, str]]] = field(default_factory=dict)
    simple_template: str = SIMPLE_TEMPLATE


def check_simple_template(template: str) -> str:
    """`template` if it holds `{c}` exactly once, else GenBenchError."""
    if not isinstance(template, str) or template.count("{c}") != 1:
        raise GenBenchError(f"ST template {template!r} must contain {{c}} (the class name) exactly once, "
                            f"e.g. {SIMPLE_TEMPLATE!r} (Table 6) or {PHOTO_TEMPLATE!r}")
    return template


def placeholder_token(dataset: str, classname: str) -> str:
    """The textual inversion token of a class, as GenBench names it: `<|digits 3|>`."""
    return f"<|{dataset} {classname}|>"


def _needs(sources: Mapping, cls: int, what: str, strategy: str) -> Sequence:
    items = sources.get(cls)
    if not items:
        raise GenBenchError(f"strategy {strategy} needs {what} for class {cls}, but none were made; "
                            "build them with genbench.strategies.build_sources before planning")
    return items


def simple_template(ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator, sources: PromptSources) -> list[PromptSpec]:
    return [PromptSpec(sources.simple_template.replace("{c}", ds.classnames[cls]))] * count


def defined_template(ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator, sources: PromptSources) -> list[PromptSpec]:
    offset = int(rng.integers(len(ds.templates)))
    return [PromptSpec(ds.templates[(offset + i) % len(ds.templates)].format(c=ds.classnames[cls])) for i in range(count)]


def enhanced_sentences(ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator, sources: PromptSources) -> list[PromptSpec]:
    sentences = _needs(sources.sentences, cls, "enhanced sentences", "CE/LE")
    order = rng.permutation(len(sentences))
    return [PromptSpec(sentences[order[i % len(order)]]) for i in range(count)]


def caption_in_prompt(ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator, sources: PromptSources) -> list[PromptSpec]:
    captions = _needs(sources.captions, cls, "captions of real images", "CiP")
    out = []
    for i in range(count):
        key, caption = captions[i % len(captions)]
        out.append(PromptSpec(CAPTION_TEMPLATE.format(c=ds.classnames[cls], caption=caption), caption_source=key))
    return out


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


def inversion_token(ds: DatasetSpec, cls: int) -> str:
    return placeholder_token(ds.name, ds.classnames[cls])


Base = Callable[[DatasetSpec, int, int, np.random.Generator, PromptSources], list[PromptSpec]]
Modifier = Callable[[list[PromptSpec], DatasetSpec, int, np.random.Generator], list[PromptSpec]]
NameModifier = Callable[[DatasetSpec, int], str]

# Bases: abbreviation -> (dataset, class, count, rng, sources) -> `count` PromptSpecs.
BASES: dict[str, Base] = {
    "ST": simple_template,
    "DT": defined_template,
    "CE": enhanced_sentences,
    "LE": enhanced_sentences,
    "CiP": caption_in_prompt,
}
# Prompt modifiers: abbreviation -> (specs, dataset, class, rng) -> specs of the same length.
MODIFIERS: dict[str, Modifier] = {"NP": negative_prompts, "RD": restrictive_description}
# Name modifiers: abbreviation -> (dataset, class) -> text the base uses in place of the class name.
NAME_MODIFIERS: dict[str, NameModifier] = {"TI": inversion_token}
# Image parts: abbreviation -> the reference image set an image-to-image generation starts from.
INIT_SOURCES: dict[str, str] = {"RG": "original", "RA": "retrieved"}
# Filters: abbreviation -> what decides which generated images are kept.
FILTERS: dict[str, str] = {
    "CF": "CLIP zero-shot confidence for the image's own class",
    "RF": "share of the image's nearest few-shot originals (CLIP features) that are of its own class",
}

BASES_WITH_NAMES = ("ST", "DT", "CiP")  # bases whose prompts contain the class name as given


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy name."""

    name: str
    base: str
    modifiers: tuple[str, ...] = ()
    name_modifier: str | None = None
    init: str | None = None
    filters: tuple[str, ...] = ()

    @property
    def filter(self) -> str | None:
        """The filter parts joined as written in FILTERS' order ('CF', 'RF', 'CF+RF'), or None."""
        return "+".join(self.filters) or None

    @property
    def tag(self) -> str:
        """The name as it appears in image keys ('DT+NP' -> 'DT_NP')."""
        return self.name.replace("+", "_")


def _all_parts() -> str:
    groups = [BASES, MODIFIERS, NAME_MODIFIERS, INIT_SOURCES, FILTERS]
    return ", ".join(p for g in groups for p in g)


def parse_strategy(name: str) -> Strategy:
    """Parse 'DT+NP+RD' or 'LE+CF' into a Strategy, or raise GenBenchError naming the bad part."""
    parts = [p.strip() for p in str(name).split("+")]
    base, rest = parts[0], parts[1:]
    if base not in BASES:
        hint = " (TI needs a base: ST+TI, DT+TI or CiP+TI)" if base in NAME_MODIFIERS else ""
        raise GenBenchError(
            f"unknown prompt strategy {name!r}: base {base!r} is not one of {', '.join(BASES)}{hint} "
            f"(parts: {_all_parts()}; combine as DT+NP+RD)"
        )
    if len(set(rest)) != len(rest):
        raise GenBenchError(f"unknown prompt strategy {name!r}: a part is repeated; write each part once")
    modifiers, name_mod, init, filters = [], None, None, set()
    for part in rest:
        if part in MODIFIERS:
            modifiers.append(part)
        elif part in NAME_MODIFIERS:
            name_mod = part
        elif part in INIT_SOURCES:
            if init is not None:
                raise GenBenchError(f"unknown prompt strategy {name!r}: {init} and {part} both choose the starting image; use one")
            init = part
        elif part in FILTERS:
            filters.add(part)
        else:
            raise GenBenchError(f"unknown prompt strategy {name!r}: part {part!r} is not one of {_all_parts()}")
    if name_mod and base not in BASES_WITH_NAMES:
        raise GenBenchError(f"unknown prompt strategy {name!r}: {name_mod} replaces the class name, which only "
                            f"{', '.join(BASES_WITH_NAMES)} put in their prompts; use e.g. DT+{name_mod}")
    return Strategy(name=str(name), base=base, modifiers=tuple(modifiers), name_modifier=name_mod, init=init,
                    filters=tuple(f for f in FILTERS if f in filters))


def build_prompts(name: str | Strategy, ds: DatasetSpec, cls: int, count: int, rng: np.random.Generator,
                  sources: PromptSources | None = None) -> list[PromptSpec]:
    strategy = name if isinstance(name, Strategy) else parse_strategy(name)
    sources = sources or PromptSources()
    named = ds
    if strategy.name_modifier:
        rename = NAME_MODIFIERS[strategy.name_modifier]
        named = replace(ds, classnames=tuple(rename(ds, c) for c in range(ds.num_classes)))
    specs = BASES[strategy.base](named, cls, count, rng, sources)
    for mod in strategy.modifiers:
        specs = MODIFIERS[mod](specs, ds, cls, rng)
    return specs
