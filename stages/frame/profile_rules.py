"""The rules a params profile keeps, checked without loading a model or reading data.

Within a section: the schema and value checks of the stage that reads it (each stage's own
`SCHEMA` and its values-only check). Between sections: the places where one stage's output
must fit another's settings (the RULES below), the dataset names, the price snapshot and SKU,
the `profile` name, and the `models` section that wires dvc.yaml's model dependencies.

`problems()` returns every broken rule as one line each (`genbench profile check`);
`name_problems()` is the cheap part every stage runs before it writes anything: unknown
top-level sections (naming the closest known one) and the `profile` name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cost.errors import CostError
from genbench.errors import GenBenchError
from genbench.generators import BUILTIN_PIPELINES
from genbench.prompts import parse_strategy
from stages import cost as cost_stage
from stages import (bootstrap, cler, embed, finetune, frontier, generate, invert, prepare, probe, quality, report, retrieve,
                    shots, tune, pool, index)
from stages.frame.options import IMAGE_FOLDER_SCHEMA, pipeline_datasets
from stages.frame.params import Field, check_section, unknown_name

PROFILES = Path("profiles")  # the project's profiles (`genbench profile use NAME`)
KIT_PROFILES = Path(__file__).resolve().parents[2] / "profiles"  # the profiles the kit ships

MINIATURE = bootstrap.MODELS.name


def _trainable(value: list) -> str | None:
    bad = [v for v in value if v != MINIATURE]
    return f"may list only {MINIATURE!r} (the bootstrap stage's models, {bootstrap.MODELS})" if bad else None


# Read by dvc.yaml alone: which model sets the bootstrap stage trains (`foreach`; none: no bootstrap
# stage), and the one path every model-reading stage depends on. No defaults: dvc.yaml needs both.
MODELS_SCHEMA = {
    "train": Field(list, check=_trainable, help="model sets the bootstrap stage trains into models/<name>"),
    "deps": Field(str, help="the local model folder the model-reading stages depend on"),
}

# Section -> (the schema its stage validates it with, that stage's values-only check or None).
SECTIONS: dict[str, tuple[dict[str, Field], Callable[[dict], object] | None]] = {
    "bootstrap": (bootstrap.SCHEMA, None),
    "prepare": (prepare.SCHEMA, None),
    "generate": (generate.SCHEMA, generate.check_values),
    "embed": (embed.SCHEMA, None),
    "cler": (cler.SCHEMA, None),
    "probe": (probe.SCHEMA, None),
    "tune": (tune.SCHEMA, None),
    "finetune": (finetune.SCHEMA, None),
    "quality": (quality.SCHEMA, None),
    "pool": (pool.SCHEMA, None),
    "index": (index.SCHEMA, None),
    "retrieve": (retrieve.SCHEMA, retrieve.check_values),
    "invert": (invert.SCHEMA, invert.check_values),
    "cost": (cost_stage.SCHEMA, None),
    "shots": (shots.SCHEMA, None),
    "report": (report.SCHEMA, None),
    "frontier": (frontier.SCHEMA, None),
    "models": (MODELS_SCHEMA, None),
}
OTHER_KEYS = ("profile", "datasets", "image_folders")  # top-level keys that are not a section
KNOWN = (*OTHER_KEYS, *SECTIONS)


def shipped_profiles() -> dict[str, Path]:
    """The profiles of the project (profiles/) and of the kit, by name."""
    return {p.stem: p for folder in (KIT_PROFILES, PROFILES) for p in sorted(folder.glob("*.yaml"))}


def name_problems(all_params: dict, params_file: str | Path) -> list[str]:
    """Unknown top-level sections, and a `profile` that is neither a shipped profile nor the
    file's own name (profiles/NAME.yaml saying `profile: NAME`)."""
    out = [unknown_name("section", key, KNOWN) for key in all_params if key not in KNOWN]
    profile = all_params.get("profile", "embedded")
    if not isinstance(profile, str) or not profile:
        out.append(f"params key 'profile' = {profile!r} must be a non-empty name")
    elif profile not in shipped_profiles() and profile != Path(params_file).stem:
        out.append(f"params key 'profile' = {profile!r} names no profile; use a shipped one "
                   f"({', '.join(sorted(shipped_profiles()))}) or save this file as profiles/{profile}.yaml")
    return out


def _section_problems(all_params: dict) -> tuple[dict[str, dict | None], list[str]]:
    """Every section validated as its stage will. A section whose schema it breaks maps to None
    (the cross-section rules skip it); one that fails only its values check keeps its values."""
    values, out = {}, []
    for name, (schema, check) in SECTIONS.items():
        section, found = check_section(all_params.get(name), name, schema)
        values[name] = None if found else section
        if not found and check is not None:
            try:
                check(section)
            except GenBenchError as exc:
                found = [str(exc)]
        out += found
    return values, out


def _dataset_problems(all_params: dict) -> list[str]:
    from genbench.datasets import get_dataset

    out = []
    folders = all_params.get("image_folders") or {}
    if not isinstance(folders, dict):
        return [f"params key 'image_folders' = {folders!r} must map dataset names to {{root: DIR, ...}}"]
    for name, raw in folders.items():
        out += check_section(raw, f"image_folders.{name}", IMAGE_FOLDER_SCHEMA)[1]
        try:
            builtin = get_dataset(name)
        except GenBenchError:
            continue
        out.append(f"params key 'image_folders.{name}' is taken by the built-in dataset {builtin.name!r}; choose another name")
    try:
        names = pipeline_datasets(all_params)
    except GenBenchError as exc:
        return out + [str(exc)]
    for name in names:
        if name not in folders:
            try:
                get_dataset(name)
            except GenBenchError as exc:
                out.append(f"params key 'datasets' lists {name!r}: {exc}")
    return out


def _strategy_problems(v: dict) -> list[str]:
    """Every strategy that does not parse (the generate stage's own check stops at the first)."""
    out = []
    for name in v["generate"]["strategies"] if v["generate"] else ():
        try:
            parse_strategy(name)
        except GenBenchError as exc:
            out.append(str(exc))
    return out


def _strategies(g: dict) -> list:
    """The strategies of a generate section that parse (the others are reported on their own)."""
    out = []
    for name in g["strategies"]:
        try:
            out.append(parse_strategy(name))
        except GenBenchError:
            pass
    return out


def _cost_problems(all_params: dict, v: dict) -> list[str]:
    from cost.hardware import choose_sku
    from cost.prices import load_snapshot

    if v["cost"] is None:
        return []
    try:
        snapshot = load_snapshot(v["cost"]["snapshot"])
    except CostError as exc:
        return [f"params key 'cost.snapshot' = {v['cost']['snapshot']!r}: {exc}"]
    if v["cost"]["sku"] is None:
        return []
    try:
        choose_sku({}, snapshot, override=v["cost"]["sku"])
    except CostError as exc:
        return [f"params key 'cost.sku' = {v['cost']['sku']!r}: {exc}"]
    return []


def _generator_agrees(v: dict) -> list[str]:
    """Textual inversion learns tokens in the text encoder of the generator that will use them."""
    g, i = v["generate"], v["invert"]
    out = [f"params key 'invert.{k}' = {i[k]!r} must equal generate.{k} = {g[k]!r} (textual inversion trains tokens "
           "for the generator that uses them)" for k in ("model", "revision") if i[k] != g[k]]
    if g["model"] in BUILTIN_PIPELINES and i["model"] == g["model"] and i["seed"] != g["seed"]:
        out.append(f"params key 'invert.seed' = {i['seed']} must equal generate.seed = {g['seed']} "
                   f"(the built-in {g['model']!r} takes its weights from the seed)")
    return out


def _clip_agrees(v: dict) -> list[str]:
    """quality scores the features embed made, so it must load the same CLIP model."""
    e, q = v["embed"], v["quality"]
    pairs = (("model", "model"), ("pretrained", "pretrained"), ("model_seed", "seed"))
    return [f"params key 'quality.{qk}' = {q[qk]!r} must equal embed.{ek} = {e[ek]!r} (quality scores embed's features "
            "with the same CLIP model)" for qk, ek in pairs if q[qk] != e[ek]]


def _finetune_clip_agrees(v: dict) -> list[str]:
    """finetune fine-tunes the CLIP model whose features CLER scores (Figure 10 sets them side by side)."""
    e, f = v["embed"], v["finetune"]
    pairs = (("model", "model"), ("pretrained", "pretrained"), ("model_seed", "seed"))
    return [f"params key 'finetune.{fk}' = {f[fk]!r} must equal embed.{ek} = {e[ek]!r} (finetune fine-tunes the CLIP "
            "model whose features CLER scores)" for fk, ek in pairs if f[fk] != e[ek]]


def _inversion_source_made(v: dict) -> list[str]:
    """A TI strategy reads the token embeddings of an invert source: invert must make that source."""
    g, i = v["generate"], v["invert"]
    if not any(s.name_modifier == "TI" for s in _strategies(g)):
        return []
    parts = Path(g["ti_embeddings"]).parts
    if len(parts) == 4 and parts[:3] == ("data", "{dataset}", "inversion") and parts[3] not in i["references"]:
        return [f"params key 'generate.ti_embeddings' = {g['ti_embeddings']!r} reads invert's {parts[3]!r} tokens, but "
                f"invert.references = {i['references']!r} does not make them; add {parts[3]!r} to invert.references"]
    return []


def _original_shots_fit(v: dict) -> list[str]:
    p, i = v["prepare"], v["invert"]
    if "original" in i["references"] and i["original_shots"] > p["shots"]:
        return [f"params key 'invert.original_shots' = {i['original_shots']} exceeds prepare.shots = {p['shots']}; "
                "invert can use only the k-shot originals prepare keeps"]
    return []


def _real_filter_fits(v: dict) -> list[str]:
    """RF votes among the `rf_neighbours` nearest of prepare's k-shot originals (`shots` per class):
    with more than twice `shots` neighbours no image can have a majority of its own class."""
    g, p = v["generate"], v["prepare"]
    if not any("RF" in s.filters for s in _strategies(g)) or g["rf_neighbours"] <= 2 * p["shots"]:
        return []
    return [f"params key 'generate.rf_neighbours' = {g['rf_neighbours']} exceeds twice prepare.shots = {p['shots']}: "
            f"at most {p['shots']} of an image's neighbours share its class, so RF would drop every candidate; "
            f"use at most {2 * p['shots']}"]


def _local_models(v: dict) -> dict[str, str]:
    """Model keys that name a folder of the project (models/...), key -> path."""
    g, i = v["generate"], v["invert"]
    uses_cf = any(s.filter for s in _strategies(g))
    uses_filter_clip = "retrieved" in i["references"] and i["filter_similarity"] == "clip-text"
    keys = {"generate.model": g["model"], "embed.model": v["embed"]["model"], "quality.model": v["quality"]["model"],
            "finetune.model": v["finetune"]["model"],
            "index.model": v["index"]["model"], "invert.model": i["model"]}
    if uses_cf:
        keys["generate.cf_model"] = g["cf_model"]
    if uses_filter_clip:
        keys["invert.filter_clip_model"] = i["filter_clip_model"]
    paths = {k: m.removeprefix("local-dir:") for k, m in keys.items()}
    return {k: p for k, p in paths.items() if Path(p).parts[:1] == ("models",)}


def _inside(path: str, folder: str) -> bool:
    return Path(folder) == Path(path) or Path(folder) in Path(path).parents


def _models_wired(v: dict) -> list[str]:
    """dvc.yaml takes the bootstrap stage (`foreach: models.train`) and every model-reading
    stage's model dependency (`models.deps`) from the `models` section: they must fit the model keys."""
    m, out = v["models"], []
    local = _local_models(v)
    untrained = [k for k, path in local.items() if _inside(path, str(bootstrap.MODELS))] if MINIATURE not in m["train"] else []
    if untrained:
        out.append(f"params keys {', '.join(untrained)} read {bootstrap.MODELS}, which the bootstrap stage trains, but "
                   f"models.train = {m['train']!r}; add {MINIATURE!r} to models.train")
    untracked = [k for k, path in local.items() if not _inside(path, m["deps"])]
    if untracked:
        out.append(f"params keys {', '.join(untracked)} read folders outside models.deps = {m['deps']!r}, so DVC would "
                   "neither order nor rerun their stages for them; set models.deps to the folder that holds them")
    made = MINIATURE in m["train"] and _inside(m["deps"], str(bootstrap.MODELS))
    if not made and not untrained and not Path(m["deps"]).exists():
        out.append(f"params key 'models.deps' = {m['deps']!r} does not exist and no stage makes it; "
                   "DVC needs an existing path (hub models: models/README.md)")
    return out


# Cross-section rules: each needs the named sections valid, and returns its problems.
RULES: list[tuple[tuple[str, ...], Callable[[dict], list[str]]]] = [
    (("generate", "invert"), _generator_agrees),
    (("embed", "quality"), _clip_agrees),
    (("embed", "finetune"), _finetune_clip_agrees),
    (("generate", "invert"), _inversion_source_made),
    (("prepare", "invert"), _original_shots_fit),
    (("generate", "prepare"), _real_filter_fits),
    (("generate", "invert", "embed", "quality", "finetune", "index", "models"), _models_wired),
]


def problems(all_params: dict, params_file: str | Path) -> list[str]:
    """Every broken rule of a params mapping, one line each, in a stable order (empty: valid)."""
    out = name_problems(all_params, params_file)
    values, found = _section_problems(all_params)
    out += found + _dataset_problems(all_params) + _strategy_problems(values) + _cost_problems(all_params, values)
    for needs, rule in RULES:
        if all(values[name] is not None for name in needs):
            out += rule(values)
    return list(dict.fromkeys(out))
