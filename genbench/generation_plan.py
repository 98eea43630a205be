"""The work of one generate run, planned from the generate section: the worker spec every executor
loads (`worker_spec`), the images to make cut into shards with their plan hashes, and what each
manifest row records (`plan_generation`).

The plan hashes pin the generator's weights, the TI embeddings, the CF model and RF's originals
as this process's copy of the models finds them; with Ray the workers load their own copies and
check them against these (`GenerationWorker.expected`), so this copy stays on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from genbench import storage
from genbench.datasets.base import DatasetSpec
from genbench.devices import resolve_device
from genbench.errors import GenBenchError, run_first
from genbench.executors import GenerationWorker, load_generator
from genbench.generation import GenerationSettings, ImageJob, PlanInputs, plan_jobs, shard_plan_hash, shards_of
from genbench.generation_checks import dataset_path
from genbench.prompts import Strategy, inversion_token, parse_strategy
from genbench.strategies.sources import TextModels, build_sources, needs_captions

TEXTS = "strategy-texts.json"
# the hashes the workers must find in what they load (GenerationWorker.expected)
EXPECTED_KEYS = ("weights_sha256", "inversion_sha256", "filter_weights_sha256", "rf_originals_sha256")


@dataclass(frozen=True)
class GenerationPaths:
    """Where a generate run reads and writes: `out_dir` holds the shards, manifest, dropped rows and
    strategy texts; `originals` is the k-shot originals' image set (CiP, RG, RF); `samples` the
    sample grid; `dataset` names the dataset in messages."""

    dataset: str
    out_dir: Path
    originals: Path
    samples: Path


@dataclass(frozen=True)
class GenerationPlan:
    """A planned run: the parsed strategies, the settings, every image job and its shards with
    their plan hashes, the worker spec, the fields every manifest row gets (`row_extra`), the
    RG/RA start images by key, and the generator's identity."""

    strategies: list[Strategy]
    settings: GenerationSettings
    jobs: list[ImageJob]
    shards: list[list[ImageJob]]
    hashes: list[str]
    worker: GenerationWorker
    row_extra: dict
    init_images: dict
    generator_id: dict

    @property
    def filtered(self) -> bool:
        """Whether a strategy keeps only the candidates passing CF or RF."""
        return any(s.filter for s in self.strategies)


def model_label(info: dict) -> str:
    """`model@revision` of a text model's record (`model` alone without a revision)."""
    return f"{info['model']}@{info['revision']}" if info.get("revision") else info["model"]


def text_models(p: dict) -> TextModels:
    """The CE/LE sentence and CiP caption models the generate section names."""
    return TextModels(
        enhancer=p["le_model"], enhancer_revision=p["le_revision"], sentences_per_class=p["le_sentences"],
        enhancer_max_new_tokens=p["le_max_new_tokens"], captioner=p["cip_model"], captioner_revision=p["cip_revision"],
        caption_max_new_tokens=p["cip_max_new_tokens"], captioner_dtype=p["dtype"], seed=p["seed"],
    )


def worker_spec(p: dict, ds: DatasetSpec, strategies: list[Strategy], settings: GenerationSettings,
                originals: Path) -> GenerationWorker:
    """What a worker loads: the configured pipeline, TI tokens, torch.compile, the CLIP filter,
    RF's k-shot originals (the image set `originals`).
    The weights are hashed before TI tokens are added and before torch.compile."""
    uses_ti, uses_cf = any(s.name_modifier == "TI" for s in strategies), any(s.filter for s in strategies)
    return GenerationWorker(
        model=p["model"], settings=settings, revision=p["revision"], variant=p["variant"], dtype=p["dtype"],
        device=p["device"], seed=p["seed"], image_size=p["height"], scheduler=p["scheduler"], attention=p["attention"],
        compile=p["compile"], inversion_path=str(dataset_path(p["ti_embeddings"], ds.name)) if uses_ti else None,
        inversion_tokens=tuple(inversion_token(ds, c) for c in range(ds.num_classes)) if uses_ti else (),
        filter_model=p["cf_model"] if uses_cf else None, filter_pretrained=p["cf_pretrained"],
        classnames=tuple(ds.classnames), templates=tuple(ds.templates),
        real_filter_set=str(originals) if any("RF" in s.filters for s in strategies) else None,
    )


def strategy_fields(s: Strategy, texts: dict, ident: dict, rf_neighbours: int) -> dict:
    """Manifest fields naming the models behind a strategy's images (also in its shards' plan hash)."""
    out = {}
    if s.base in ("CE", "LE"):
        out["text_model"] = model_label(texts["sentences"])
    if s.base == "CiP":
        out["text_model"] = model_label(texts["captions"])
    if s.name_modifier:
        out["ti_embeddings_sha256"] = ident["inversion_sha256"]
    if s.filter:
        out["filter_model"] = ident["filter_name"]
        out["filter_weights_sha256"] = ident["filter_weights_sha256"]
    if "RF" in s.filters:
        out["rf_originals_sha256"] = ident["rf_originals_sha256"]
        out["rf_neighbours"] = rf_neighbours
    return out


def shard_extra(shard: list[ImageJob], fields: dict[str, dict]) -> dict | None:
    """The strategy fields of the strategies in one shard, merged (None when there are none)."""
    merged = {}
    for name in dict.fromkeys(j.strategy for j in shard):
        merged.update(fields[name])
    return merged or None


def load_originals(where: GenerationPaths, strategies: list[Strategy]):
    """The k-shot originals (images, manifest) when CiP or RG starts from them, else None."""
    if not (needs_captions(strategies) or any(s.init == "RG" for s in strategies)):
        return None
    if not (where.originals / storage.MANIFEST).is_file():
        raise GenBenchError(f"{where.originals} not found; {run_first('prepare', where.dataset)}")
    return storage.load_image_set(where.originals)


def plan_inputs(p: dict, ds: DatasetSpec, strategies: list[Strategy], originals, sources) -> PlanInputs:
    """The texts, the RG/RA reference images of every class and their strengths, and CF/RF's oversampling."""
    from genbench.strategies.guidance import check_every_class, load_references, references_from_image_set

    references, strengths = {}, {}
    if any(s.init == "RG" for s in strategies):
        references["RG"] = references_from_image_set(*originals, ds.num_classes)
        check_every_class(references["RG"], list(ds.classnames), "the k-shot originals", "RG")
        strengths["RG"] = p["rg_strength"]
    if any(s.init == "RA" for s in strategies):
        where = dataset_path(p["ra_images"], ds.name)
        references["RA"] = load_references(where, list(ds.classnames))
        check_every_class(references["RA"], list(ds.classnames), str(where), "RA")
        strengths["RA"] = p["ra_strength"]
    return PlanInputs(sources=sources, references=references, strengths=strengths, filter_oversample=p["cf_oversample"])


def plan_generation(p: dict, ds: DatasetSpec, where: GenerationPaths, executor: str = "local") -> GenerationPlan:
    """Plan the run the generate section `p` asks for on `ds`: load the generator (and CF/RF's CLIP
    model) for their hashes, make or read the LE/CiP texts (cached in out_dir/strategy-texts.json),
    list the jobs, cut them into shards of `shard_size` and hash each shard's plan."""
    device = resolve_device(p["device"], "generate.device")
    strategies = [parse_strategy(s) for s in p["strategies"]]
    by_name = {s.name: s for s in strategies}
    settings = GenerationSettings(p["height"], p["width"], p["steps"], p["guidance_scale"], p["batch_size"])

    worker = worker_spec(p, ds, strategies, settings, where.originals)
    here = worker if executor == "local" else replace(worker, device="cpu", attention="sdpa", compile=False)
    ident = load_generator(here).identity
    generator_id = {"generator": p["model"], "revision": p["revision"], "weights_sha256": ident["weights_sha256"],
                    "dtype": p["dtype"], "scheduler": ident["scheduler_class"], "attention": p["attention"],
                    "compile": p["compile"]}
    originals = load_originals(where, strategies)
    sources, texts = build_sources(strategies, ds, text_models(p), originals=originals, device=device, cache=where.out_dir / TEXTS)
    inputs = plan_inputs(p, ds, strategies, originals, replace(sources, simple_template=p["st_template"]))
    jobs = plan_jobs(ds, p["strategies"], p["images_per_class"], p["seed"], inputs)

    fields = {s.name: strategy_fields(s, texts, ident, p["rf_neighbours"]) for s in strategies}
    init_images = {ref.key: ref.image for refs in inputs.references.values() for rs in refs.values() for ref in rs}
    worker = replace(worker, strategy_fields=fields, filtered_strategies=frozenset(n for n, s in by_name.items() if "CF" in s.filters),
                     real_filtered_strategies=frozenset(n for n, s in by_name.items() if "RF" in s.filters),
                     rf_neighbours=p["rf_neighbours"], expected={k: ident[k] for k in EXPECTED_KEYS})
    row_extra = {**{k: generator_id[k] for k in ("generator", "revision", "weights_sha256", "scheduler", "dtype", "attention")},
                 "resolved_revision": ident["resolved_revision"], "height": p["height"], "width": p["width"],
                 "steps": p["steps"], "guidance_scale": p["guidance_scale"]}
    shards = shards_of(jobs, p["shard_size"])
    hashes = [shard_plan_hash(s, generator_id, settings, shard_extra(s, fields)) for s in shards]
    return GenerationPlan(strategies, settings, jobs, shards, hashes, worker, row_extra, init_images, generator_id)
