"""Stage `generate`: images per class for each prompt strategy, as shards with a manifest row
per image, resumable after a crash, plus a sample grid (genbench.generation_run).

Outputs in data/<dataset>/generated: shard-*.tar/.done, manifest.parquet (the images kept),
dropped.parquet (CF/RF candidates not kept, with their scores and reason; only with CF or RF) and
strategy-texts.json (LE sentences and CiP captions used; only with those strategies).
"""

from __future__ import annotations

import click

from cost.ledger import apportion_items, delivered_items
from cost.meter import Meter
from genbench.executors import ExecutorOptions
from genbench.generation_checks import check_models, check_real_filter, check_strategy_inputs, check_values, parse_shard
from genbench.generation_plan import GenerationPaths
from genbench.generation_run import run_generation
from genbench.generators import DTYPES, SCHEDULERS
from genbench.prompts import SIMPLE_TEMPLATE
from genbench.strategies.captions import DEFAULT_CAPTIONER
from genbench.strategies.enhance import DEFAULT_ENHANCER
from stages.frame.options import address_option, dataset_option, executor_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, run_stage


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


def check(p: dict, dataset: str | None = None) -> None:
    """Before a run opens: the section's values, the models it names and, for a dataset, the files
    its strategies read."""
    strategies = check_values(p)
    check_models(p, strategies)
    if dataset is not None and any("RF" in s.filters for s in strategies):
        paths = DatasetPaths(dataset)
        check_real_filter(p, paths.prepared / "original", paths.read_meta()["classnames"])
    if dataset is not None:
        check_strategy_inputs(p, strategies, dataset)


def make_work(paths: DatasetPaths, shard: tuple[int, int] | None, executor: str = "local", address: str | None = None):
    where = GenerationPaths(paths.dataset, paths.generated, paths.prepared / "original", paths.samples)

    def work(p: dict) -> StageResult:
        out = run_generation(p, paths.spec(), where, executor=executor, options=ExecutorOptions(address=address, meter=Meter),
                             shard=shard, log=click.echo)
        # priced per delivered image (docs/generation.md, cost), spread over the workers in proportion to what each made
        items = delivered_items(out.made, out.kept, out.candidates)
        readings = apportion_items(out.readings, items)
        if shard:
            return StageResult(metrics=out.metrics, items=items, data_type="generated", worker_readings=readings)
        return StageResult(metrics={**out.metrics, "images_delivered": items}, artifacts=[paths.samples], items=items,
                           data_type="generated", worker_readings=readings,
                           tags={"generator": p["model"], "weights_sha256": out.weights_sha256, "strategies": ",".join(p["strategies"])})

    return work


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
