"""Stage `generate`: images per class for each prompt strategy, as shards with a manifest row
per image, resumable after a crash, plus a sample grid.

Outputs in data/<dataset>/generated: shard-*.tar/.done, manifest.parquet (the images kept),
dropped.parquet (CF/RF candidates not kept, with their scores and reason; only with CF or RF) and
strategy-texts.json (LE sentences and CiP captions used; only with those strategies).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import pandas as pd

from cost.ledger import apportion_items, delivered_items
from cost.meter import Meter
from genbench import storage
from genbench.clip_models import check_clip_source
from genbench.devices import resolve_device
from genbench.errors import GenBenchError, run_first
from genbench.executors import EXECUTORS, ExecutorOptions, GenerationWorker, load_generator
from genbench.generation import (
    GenerationSettings,
    PlanInputs,
    plan_jobs,
    select_images,
    select_shards,
    shard_plan_hash,
    shards_of,
)
from genbench.generators import DTYPES, SCHEDULERS
from genbench.prompts import SIMPLE_TEMPLATE, Strategy, check_simple_template, inversion_token, parse_strategy
from genbench.strategies.captions import DEFAULT_CAPTIONER
from genbench.strategies.enhance import DEFAULT_ENHANCER
from genbench.strategies.sources import TextModels, build_sources, needs_captions, needs_sentences
from genbench.weights import check_model_folder
from stages.frame.paths import DatasetPaths
from stages.frame.options import address_option, dataset_option, executor_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive
from stages.frame.runner import StageResult, run_stage

DROPPED = storage.DROPPED
SIZE_MULTIPLE = 8  # what diffusers' text-to-image pipelines require of height and width
TEXTS = "strategy-texts.json"


def strength(value) -> str | None:
    return None if 0 < value <= 1 else "must lie in (0, 1]"


def probability(value) -> str | None:
    return None if 0 <= value < 1 else "must lie in [0, 1)"


SCHEMA = {
    "model": Field(str, "tiny-sd", help="built-in name, local save_pretrained folder, or hub id"),
    "revision": Field((str, type(None)), None, help="hub commit to pin (recorded in the manifest)"),
    "variant": Field((str, type(None)), None, help="weights variant on the hub, e.g. fp16"),
    "dtype": Field(str, "float32", choices=DTYPES),
    "device": Field(str, "auto"),
    "attention": Field(str, "sdpa", help="sdpa (PyTorch) or xformers"),
    "scheduler": Field(str, "default", choices=SCHEDULERS, help="default keeps the model's; else a name of genbench.generators.SCHEDULERS"),
    "compile": Field(bool, False, help="torch.compile the UNet/transformer"),
    "strategies": Field(list, ["ST", "DT"]),
    "st_template": Field(str, SIMPLE_TEMPLATE, help='ST prompt, {c} the class name: "{c}" (Table 6) or "a photo of {c}" (Sec. 2.3)'),
    "images_per_class": Field(int, 16, positive),
    "steps": Field(int, 20, positive),
    "guidance_scale": Field(float, 5.0, non_negative),
    "height": Field(int, 32, positive),
    "width": Field(int, 32, positive),
    "batch_size": Field(int, 16, positive),
    "shard_size": Field(int, 1024, positive),
    "seed": Field(int, 0, non_negative),
    "le_model": Field(str, DEFAULT_ENHANCER, help="CE/LE word-to-sentence model: tiny-t5, folder or hub id"),
    "le_revision": Field((str, type(None)), None),
    "le_sentences": Field(int, 200, positive, help="distinct sentences sampled per class (He et al.: 200)"),
    "le_max_new_tokens": Field(int, 32, positive),
    "cip_model": Field(str, DEFAULT_CAPTIONER, help="CiP captioning model: tiny-blip2, folder or hub id"),
    "cip_revision": Field((str, type(None)), None),
    "cip_max_new_tokens": Field(int, 30, positive),
    "cf_model": Field(str, "ViT-B-32", help="CF CLIP model: tiny-clip, local-dir:PATH or an open_clip name"),
    "cf_pretrained": Field((str, type(None)), "openai"),
    "cf_threshold": Field((float, type(None)), None, probability, help="null: 1 / number of classes (He et al.)"),
    "cf_oversample": Field(float, 0.5, non_negative, help="CF/RF: extra candidates per class, as a fraction of images_per_class"),
    "cf_fill": Field(bool, True, help="CF/RF: fill a class short of passing images with its best others"),
    "rf_neighbours": Field(int, 1, positive, help="RF: nearest k-shot originals whose majority must be of the image's class"),
    "rg_strength": Field(float, 0.8, strength, help="RG image-to-image noise strength"),
    "ra_strength": Field(float, 0.8, strength, help="RA image-to-image noise strength"),
    "ra_images": Field(str, "data/{dataset}/retrieved", help="RA: retrieved image set or per-class folder"),
    "ti_embeddings": Field(str, "data/{dataset}/inversion/original", help="TI: safetensors file or folder of <|dataset class|> embeddings"),
}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        part, parts = (int(x) for x in text.split("/"))
    except ValueError:
        raise GenBenchError(f"--shard {text!r} must look like i/n, e.g. 0/4") from None
    if parts < 1 or not 0 <= part < parts:
        raise GenBenchError(f"--shard {text!r}: need 0 <= i < n")
    return part, parts


def check_values(p: dict) -> list[Strategy]:
    """The checks that need only the section's values (no device, files or models); returns the
    parsed strategies."""
    if not p["strategies"]:
        raise GenBenchError("params key 'generate.strategies' is empty; list at least one strategy, e.g. [ST, DT]")
    if len(set(map(str, p["strategies"]))) != len(p["strategies"]):
        raise GenBenchError(f"params key 'generate.strategies' lists a strategy twice: {p['strategies']!r}")
    strategies = [parse_strategy(s) for s in p["strategies"]]
    try:
        check_simple_template(p["st_template"])
    except GenBenchError as exc:
        raise GenBenchError(f"params key 'generate.st_template': {exc}") from None
    for key in ("height", "width"):
        if p[key] % SIZE_MULTIPLE:
            nearest = max(SIZE_MULTIPLE, round(p[key] / SIZE_MULTIPLE) * SIZE_MULTIPLE)
            raise GenBenchError(f"params key 'generate.{key}' = {p[key]} must be a multiple of {SIZE_MULTIPLE} "
                                f"(the generator's latent grid), e.g. {nearest}")
    if p["shard_size"] % p["batch_size"]:
        raise GenBenchError(
            f"params key 'generate.shard_size' = {p['shard_size']} must be a multiple of generate.batch_size = "
            f"{p['batch_size']}, so batches never straddle shards and any sharding gives identical images"
        )
    return strategies


def check(p: dict, dataset: str | None = None) -> None:
    strategies = check_values(p)
    resolve_device(p["device"], "generate.device")
    used = {"model": True, "le_model": needs_sentences(strategies), "cip_model": needs_captions(strategies)}
    for key in (k for k, on in used.items() if on and Path(p[k]).is_dir()):
        check_model_folder(p[key], f"generate.{key}")
    if any(s.filter for s in strategies):
        check_clip_source(p["cf_model"], p["cf_pretrained"])
    if dataset is not None and any("RF" in s.filters for s in strategies):
        paths = DatasetPaths(dataset)
        check_real_filter(p, paths.prepared / "original", paths.read_meta()["classnames"])
    if dataset is not None:
        for key, part in (("ra_images", "RA"), ("ti_embeddings", "TI")):
            if any(part in (s.init, s.name_modifier) for s in strategies) and not dataset_path(p[key], dataset).exists():
                raise GenBenchError(f"strategy {part} reads params key 'generate.{key}' = {p[key]!r}, but "
                                    f"{dataset_path(p[key], dataset)} does not exist; make it first (see docs/generation.md)")


def check_real_filter(p: dict, originals: Path, classnames: list[str]) -> None:
    """RF compares each candidate with the k-shot originals: they must exist, hold every class and
    at least `rf_neighbours` images."""
    where = originals / storage.MANIFEST
    if not where.is_file():
        raise GenBenchError(f"strategy part RF compares with the k-shot originals, but {where} does not exist; "
                            "run the prepare stage first (dvc repro prepare)")
    labels = storage.read_manifest(originals, ("class_index",))["class_index"]
    present = set(labels)
    absent = [name for c, name in enumerate(classnames) if c not in present]
    if absent:
        raise GenBenchError(f"strategy part RF needs k-shot originals of every class, but {originals} has none of "
                            f"class {absent[0]!r}; run the prepare stage again")
    if p["rf_neighbours"] > len(labels):
        raise GenBenchError(f"params key 'generate.rf_neighbours' = {p['rf_neighbours']} exceeds the {len(labels)} k-shot "
                            f"originals in {originals}; use at most {len(labels)}")


def dataset_path(template: str, dataset: str) -> Path:
    """A path param with `{dataset}` replaced by the dataset's name."""
    return Path(template.replace("{dataset}", dataset))


def _originals(paths: DatasetPaths, strategies: list[Strategy]):
    if not (needs_captions(strategies) or any(s.init == "RG" for s in strategies)):
        return None
    directory = paths.prepared / "original"
    if not (directory / storage.MANIFEST).is_file():
        raise GenBenchError(f"{directory} not found; {run_first('prepare', paths.dataset)}")
    return storage.load_image_set(directory)


def _plan_inputs(p: dict, ds, strategies: list[Strategy], originals, sources) -> PlanInputs:
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


def _text_models(p: dict) -> TextModels:
    return TextModels(
        enhancer=p["le_model"], enhancer_revision=p["le_revision"], sentences_per_class=p["le_sentences"],
        enhancer_max_new_tokens=p["le_max_new_tokens"], captioner=p["cip_model"], captioner_revision=p["cip_revision"],
        caption_max_new_tokens=p["cip_max_new_tokens"], captioner_dtype=p["dtype"], seed=p["seed"],
    )


def _model_label(info: dict) -> str:
    return f"{info['model']}@{info['revision']}" if info.get("revision") else info["model"]


def _worker(p: dict, ds, strategies: list[Strategy], settings: GenerationSettings, originals: Path) -> GenerationWorker:
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


def _strategy_fields(s: Strategy, texts: dict, ident: dict, rf_neighbours: int) -> dict:
    """Manifest fields naming the models behind a strategy's images (also in its shards' plan hash)."""
    out = {}
    if s.base in ("CE", "LE"):
        out["text_model"] = _model_label(texts["sentences"])
    if s.base == "CiP":
        out["text_model"] = _model_label(texts["captions"])
    if s.name_modifier:
        out["ti_embeddings_sha256"] = ident["inversion_sha256"]
    if s.filter:
        out["filter_model"] = ident["filter_name"]
        out["filter_weights_sha256"] = ident["filter_weights_sha256"]
    if "RF" in s.filters:
        out["rf_originals_sha256"] = ident["rf_originals_sha256"]
        out["rf_neighbours"] = rf_neighbours
    return out


def make_work(paths: DatasetPaths, shard: tuple[int, int] | None, executor: str = "local", address: str | None = None):
    out_dir = paths.generated

    def work(p: dict) -> StageResult:
        ds = paths.spec()
        device = resolve_device(p["device"], "generate.device")
        strategies = [parse_strategy(s) for s in p["strategies"]]
        by_name = {s.name: s for s in strategies}
        settings = GenerationSettings(p["height"], p["width"], p["steps"], p["guidance_scale"], p["batch_size"])

        worker = _worker(p, ds, strategies, settings, paths.prepared / "original")
        # The hashes the manifest pins come from this process's copy of the models; with Ray the
        # workers load their own (and check them against these), so this copy stays on the CPU.
        here = worker if executor == "local" else replace(worker, device="cpu", attention="sdpa", compile=False)
        ident = load_generator(here).identity
        generator_id = {"generator": p["model"], "revision": p["revision"], "weights_sha256": ident["weights_sha256"],
                        "dtype": p["dtype"], "scheduler": ident["scheduler_class"], "attention": p["attention"],
                        "compile": p["compile"]}
        cf = any(s.filter for s in strategies)
        originals = _originals(paths, strategies)
        sources, texts = build_sources(strategies, ds, _text_models(p), originals=originals, device=device, cache=out_dir / TEXTS)
        inputs = _plan_inputs(p, ds, strategies, originals, replace(sources, simple_template=p["st_template"]))
        jobs = plan_jobs(ds, p["strategies"], p["images_per_class"], p["seed"], inputs)

        strategy_fields = {s.name: _strategy_fields(s, texts, ident, p["rf_neighbours"]) for s in strategies}

        def shard_extra(shard_jobs) -> dict | None:
            merged = {}
            for name in dict.fromkeys(j.strategy for j in shard_jobs):
                merged.update(strategy_fields[name])
            return merged or None

        init_images = {ref.key: ref.image for refs in inputs.references.values() for rs in refs.values() for ref in rs}
        worker = replace(worker, strategy_fields=strategy_fields, filtered_strategies=frozenset(n for n, s in by_name.items() if "CF" in s.filters),
                         real_filtered_strategies=frozenset(n for n, s in by_name.items() if "RF" in s.filters),
                         rf_neighbours=p["rf_neighbours"],
                         expected={k: ident[k] for k in ("weights_sha256", "inversion_sha256", "filter_weights_sha256", "rf_originals_sha256")})

        extra = {**{k: generator_id[k] for k in ("generator", "revision", "weights_sha256", "scheduler", "dtype", "attention")},
                 "resolved_revision": ident["resolved_revision"], "height": p["height"], "width": p["width"],
                 "steps": p["steps"], "guidance_scale": p["guidance_scale"]}
        shards = shards_of(jobs, p["shard_size"])
        hashes = [shard_plan_hash(s, generator_id, settings, shard_extra(s)) for s in shards]
        indices = select_shards(len(shards), *shard) if shard else list(range(len(shards)))
        run = EXECUTORS[executor](out_dir, shards, indices, worker, extra, hashes, init_images=init_images,
                                  options=ExecutorOptions(address=address, meter=Meter))
        rows, made = run.rows, run.made

        metrics = {"images_made": made, "images_planned": len(jobs), "shards": len(shards),
                   "oom_retries": len(run.oom_events),
                   "final_batch_size": min([settings.batch_size] + [e["retry_batch_size"] for e in run.oom_events]),
                   "workers": run.workers, "shard_retries": run.failures}
        for event in run.oom_events:
            click.echo(f"generate: out of memory at batch size {event['batch_size']} (image {event['key']}); "
                       f"retried at {event['retry_batch_size']}")
        if shard:
            click.echo(f"generate: shard part {shard[0]}/{shard[1]}: {made} images made; run without --shard to finish")
            target = p["images_per_class"] * ds.num_classes * len(strategies)
            return _delivered(StageResult(metrics=metrics, data_type="generated", worker_readings=run.readings),
                              delivered_items(made, target, len(jobs)))

        threshold = p["cf_threshold"] if p["cf_threshold"] is not None else 1.0 / ds.num_classes
        kept, dropped = select_images(rows, p["images_per_class"], threshold, p["cf_fill"]) if cf else (rows, [])
        storage.remove_stale(out_dir, {f"{storage.shard_name(i)}.{ext}" for i in range(len(shards)) for ext in ("tar", "done")})
        _write_dropped(out_dir, dropped)
        storage.write_manifest(out_dir, kept)
        metrics.update({"images_kept": len(kept), "filter_dropped": len(dropped),
                        "filter_filled": sum(r.get("filter_status") == "filled" for r in kept)})
        from genbench.figures.samples import grid_rows, sample_grid  # matplotlib only when the grid is drawn

        shown = grid_rows(storage.read_manifest(out_dir))
        sample_grid(storage.load_images(out_dir, shown), shown, ds.classnames, paths.samples, title=f"{ds.name}, {p['model']}: {', '.join(p['strategies'])}")
        click.echo(f"generate: {len(kept)} images ({made} made now{f', {len(dropped)} dropped by CF/RF' if cf else ''}) "
                   f"in {len(shards)} shards -> {out_dir}")
        metrics["images_delivered"] = delivered_items(made, len(kept), len(rows))
        result = StageResult(metrics=metrics, artifacts=[paths.samples], data_type="generated",
                             tags={"generator": p["model"], "weights_sha256": generator_id["weights_sha256"],
                                   "strategies": ",".join(p["strategies"])},
                             worker_readings=run.readings)
        return _delivered(result, metrics["images_delivered"])

    return work


def _delivered(result: StageResult, items: int) -> StageResult:
    """`result` priced per delivered image: items = the images kept (docs/generation.md, cost),
    spread over the workers' readings in proportion to what each made."""
    return replace(result, items=items, worker_readings=apportion_items(result.worker_readings, items))


def _write_dropped(out_dir: Path, dropped: list[dict]) -> None:
    path = out_dir / DROPPED
    if not dropped:
        path.unlink(missing_ok=True)
        return
    with storage.atomic_path(path) as tmp:
        pd.DataFrame(dropped).to_parquet(tmp, index=False)


@click.command("generate")
@params_option
@dataset_option
@click.option("--shard", "shard", default=None, metavar="I/N", help="Make only part I of N of the shards (0-based), for parallel runs.")
@executor_option
@address_option
def command(params_file: str, dataset: str | None, shard: str | None, executor: str, address: str | None) -> None:
    """Generate images per class and prompt strategy (params: generate.*)."""
    part = parse_shard(shard)
    name = resolve_dataset(params_file, dataset)
    paths = DatasetPaths(name)

    def checks(p: dict) -> None:
        check(p, name)
        paths.read_meta()

    run_stage("generate", params_file, SCHEMA, make_work(paths, part, executor, address), checks, dataset=name)
