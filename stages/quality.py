"""Stage `quality`: the image-quality metrics the paper compares CLER with (its Figure 4), per
external image set (genbench.feature_sets.external_sets), and the evaluation time of every metric
(its Figure 5); what each metric is and the timing protocol: genbench.quality.

The CLIP score is taken against "a photo of a {class}" (the released code; `clip_score_text:
prompt`: against its own prompt) in the space of `clip_score_model` (null: the embedding model;
the paper profile: ViT-B/16, as released). Encoding the prompts is timed apart.
"""

from __future__ import annotations

import time

import click

from genbench import storage
from genbench.clip_models import load_clip
from genbench.devices import device_problem, resolve_device
from genbench.errors import GenBenchError, run_first
from genbench.feature_sets import external_sets, real_test_set
from genbench.features import cache_key, load_features, model_sha256
from genbench.metrics.clip_score import CLIP_SCORE_TEXTS, reference_texts
from genbench.quality import (TIMED_SOURCE, flat_metrics, metric_timings, prompt_features, quality_record,
                              score_model_images, source_masks, source_metrics, summary_line)
from stages.frame.options import dataset_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, run_stage

SCHEMA = {
    "model": Field(str, "tiny-clip", help="the CLIP model that embedded the images (as embed.model)"),
    "pretrained": Field((str, type(None)), None, help="as embed.pretrained"),
    "model_seed": Field(int, 0, non_negative, help="seed of a built-in CLIP (as embed.seed)"),
    "device": Field(str, "auto", device_problem),
    "batch_size": Field(int, 256, positive, help="prompts (and, with clip_score_model, images) encoded per batch"),
    "clip_score_text": Field(str, "class", choices=CLIP_SCORE_TEXTS,
                             help='CLIP score reference: class ("a photo of a {class}", released code) | prompt (its own prompt)'),
    "clip_score_model": Field((str, type(None)), None, help="CLIP model of the CLIP score; null: quality.model (paper: ViT-B-16)"),
    "clip_score_pretrained": Field((str, type(None)), None, help="its open_clip pretrained tag (paper: openai)"),
    "seed": Field(int, 0, non_negative, help="proxy-A split and the timed probe's validation split"),
    "timing_repeats": Field(int, 3, positive, help="timed repeats per metric (Figure 5)"),
    "timing_warmup": Field(int, 1, non_negative, help="untimed dry runs before timing (the paper's pre-heat)"),
}


def load_matching_clip(p: dict, paths: DatasetPaths, device: str):
    """The CLIP model of the quality params, checked to be the one that embedded the generated
    images (its cache key must equal the one stored with their features)."""
    bundle = load_clip(p["model"], p["pretrained"], seed=p["model_seed"], device=device)
    model_id = f"{p['model']}|{p['pretrained']}"
    _, _, meta = load_features(paths.features / "generated.safetensors")
    shas = list(storage.read_manifest(paths.generated)["sha256"])
    if meta.get("cache_key") != cache_key(model_id, model_sha256(bundle.model), shas):
        raise GenBenchError(
            f"params quality.model/pretrained/model_seed = {p['model']!r}/{p['pretrained']!r}/{p['model_seed']} is not "
            f"the CLIP model that embedded {paths.features / 'generated.safetensors'} (model {meta.get('model')!r}); "
            "set them to embed.model/pretrained/seed"
        )
    return bundle, model_id


def check_inputs(p: dict, paths: DatasetPaths) -> tuple:
    """Everything the work needs that the user can get wrong, checked before anything is written:
    the device, the embed outputs, the prepared metadata and the CLIP models. Returns
    (clip bundle, model id, device, CLIP score bundle or None, CLIP score model id)."""
    device = resolve_device(p["device"], "quality.device")
    for name in ("test", "original", "generated", "text"):
        path = paths.features / f"{name}.safetensors"
        if not path.is_file():
            raise GenBenchError(f"{path} not found; {run_first('embed', paths.dataset)}")
    if not (paths.generated / storage.MANIFEST).is_file():
        raise GenBenchError(f"{paths.generated / storage.MANIFEST} not found; {run_first('generate', paths.dataset)}")
    paths.read_meta()
    bundle, model_id = load_matching_clip(p, paths, device)
    if p["clip_score_model"] is None:
        return bundle, model_id, device, None, model_id
    score_bundle = load_clip(p["clip_score_model"], p["clip_score_pretrained"], seed=p["model_seed"], device=device)
    return bundle, model_id, device, score_bundle, f"{p['clip_score_model']}|{p['clip_score_pretrained']}"


def clip_score_features(p: dict, paths: DatasetPaths, checked: tuple, generated_feats) -> tuple:
    """(image, reference text) CLIP features of the generated images, row for row, in the CLIP
    score's model: the embed features when that is the embedding model, else its own."""
    bundle, _, device, score_bundle, score_model_id = checked
    manifest = storage.read_manifest(paths.generated)
    texts = reference_texts(p["clip_score_text"], list(manifest["prompt"]), list(manifest["class_name"]))
    images = generated_feats
    if score_bundle is not None:
        bundle = score_bundle
        backbone = paths.backbone_features(p["clip_score_model"], p["clip_score_pretrained"]) / "generated.safetensors"
        images = score_model_images(bundle, score_model_id, manifest, backbone, paths.generated,
                                    batch_size=p["batch_size"], device=device)
    return images, prompt_features(bundle, texts, batch_size=p["batch_size"], device=device)


def work(p: dict, paths: DatasetPaths, checked: tuple | None = None) -> StageResult:
    """`checked` is check_inputs' result (computed here when None)."""
    checked = checked or check_inputs(p, paths)
    model_id, device, score_model_id = checked[1], checked[2], checked[4]
    meta = paths.read_meta()
    out = paths.metrics / "quality.json"
    test_feats, test_labels = real_test_set(paths.features, meta)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    sources = external_sets(paths.features, paths.generated, meta)

    start = time.perf_counter()
    scored = clip_score_features(p, paths, checked, sources[TIMED_SOURCE][0])
    encode_seconds = time.perf_counter() - start

    masks = source_masks(storage.read_manifest(paths.generated)["strategy"].to_numpy(), list(sources))
    metrics = source_metrics(sources, test_feats, scored, masks, p["seed"])
    seconds = metric_timings(sources[TIMED_SOURCE], (test_feats, test_labels), text_feats, scored,
                             num_classes=len(meta["classnames"]), metric=meta["metric"], seed=p["seed"], device=device,
                             repeats=p["timing_repeats"], warmup=p["timing_warmup"])
    timing = {"source": TIMED_SOURCE, "repeats": p["timing_repeats"], "warmup": p["timing_warmup"], "device": device}
    result = quality_record(paths.dataset, feature_model=model_id, clip_score_text=p["clip_score_text"],
                            clip_score_model=score_model_id, sources=metrics, timing=timing, seconds=seconds,
                            seconds_encode_prompts=encode_seconds)
    storage.atomic_write_json(out, result)
    click.echo(f"quality: {summary_line(result)} -> {out}")
    return StageResult(metrics=flat_metrics(result), artifacts=[out], tags={"clip_model": model_id, "fid_space": "clip"})


@click.command("quality")
@params_option
@dataset_option
def command(params_file: str, dataset: str | None) -> None:
    """FID in CLIP feature space, CLIP score and proxy-A distance per data source, and each metric's time (params: quality.*)."""
    name = resolve_dataset(params_file, dataset)
    paths = DatasetPaths(name)
    checked: dict = {}
    run_stage("quality", params_file, SCHEMA, lambda p: work(p, paths, checked["inputs"]),
              lambda p: checked.update(inputs=check_inputs(p, paths)), dataset=name)
