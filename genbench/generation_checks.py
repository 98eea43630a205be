"""The checks of the generate section, made before any image: its values alone (`check_values`),
the models it names (`check_models`) and the files its strategies read (`check_real_filter`,
`check_strategy_inputs`); and the `--shard I/N` option (`parse_shard`)."""

from __future__ import annotations

from pathlib import Path

from genbench import storage
from genbench.clip_models import check_clip_source
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.prompts import Strategy, check_simple_template, parse_strategy
from genbench.strategies.sources import needs_captions, needs_sentences
from genbench.weights import check_model_folder

SIZE_MULTIPLE = 8  # what diffusers' text-to-image pipelines require of height and width


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard I/N` as (I, N), 0 <= I < N; None without the option."""
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


def check_models(p: dict, strategies: list[Strategy]) -> None:
    """The device, the local folders of the models the strategies use, and the CF/RF CLIP model."""
    resolve_device(p["device"], "generate.device")
    used = {"model": True, "le_model": needs_sentences(strategies), "cip_model": needs_captions(strategies)}
    for key in (k for k, on in used.items() if on and Path(p[k]).is_dir()):
        check_model_folder(p[key], f"generate.{key}")
    if any(s.filter for s in strategies):
        check_clip_source(p["cf_model"], p["cf_pretrained"])


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


def check_strategy_inputs(p: dict, strategies: list[Strategy], dataset: str) -> None:
    """RA's retrieved images (`ra_images`) and TI's embeddings (`ti_embeddings`) exist where a
    strategy uses them."""
    for key, part in (("ra_images", "RA"), ("ti_embeddings", "TI")):
        if any(part in (s.init, s.name_modifier) for s in strategies) and not dataset_path(p[key], dataset).exists():
            raise GenBenchError(f"strategy {part} reads params key 'generate.{key}' = {p[key]!r}, but "
                                f"{dataset_path(p[key], dataset)} does not exist; make it first (see docs/generation.md)")
