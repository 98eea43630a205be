"""Stage `quality`: the image-quality metrics the paper compares CLER with (its Figure 4), per
external image set, and the evaluation time of every metric (its Figure 5).

Per source (generated, generated/<strategy>, original; see genbench.feature_sets.external_sets):
- `fid_clip`: Frechet distance between Gaussian fits of the source's CLIP image features and the
  real test set's (NOT Inception FID);
- `clip_score`: CLIP score of each generated image against "a photo of a {class}" (the released
  code; `clip_score_text: prompt` scores against its own prompt instead), in the space of
  `clip_score_model` (null: the embedding model; the paper profile: ViT-B/16, as released);
  null for original, which has no prompts;
- `pad`: proxy-A distance between the source's features and the real test set's.

Timing: CLER, the linear probe, FID, CLIP score and PAD are each run `timing_warmup` untimed
times, then `timing_repeats` timed times, on the pooled generated set's cached features.
Feature extraction is not part of any metric's time; encoding the prompts is timed apart.
"""

from __future__ import annotations

import statistics
import time

import click
import numpy as np
import torch

from genbench import storage
from genbench.clip_models import load_clip
from genbench.devices import device_problem, resolve_device
from genbench.errors import GenBenchError, run_first
from genbench.feature_sets import external_sets, real_test_set
from genbench.features import cache_key, cached_features, encode_images, encode_texts, load_features, model_sha256
from genbench.metrics import clip_score, cler, frechet_distance, proxy_a_distance, timed
from genbench.metrics.clip_score import CLASS_REFERENCE, CLIP_SCORE_TEXTS, reference_texts
from genbench.probe import linear_probe
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

TIMED_SOURCE = "generated"
# Short one-line definitions written into quality.json (full ones: docs/metrics.md).
FID_DEFINITION = "Frechet distance of Gaussian fits of CLIP image features vs the test set; not Inception FID"
CLIP_SCORE_DEFINITIONS = {
    "class": f"mean of 100*max(cos(image, '{CLASS_REFERENCE.replace('{c}', '{class}')}'), 0) in CLIP space; null without prompts",
    "prompt": "mean of 100*max(cos(image, its own prompt), 0) in CLIP space; null without prompts",
}
PAD_DEFINITION = "proxy-A distance 2(1-2e) of CLIP features vs the test set, e the held-out linear error"
TIMING_DEFINITION = "wall seconds per timed run, cached features of the pooled generated set; no feature extraction"


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


def clip_score_features(p: dict, paths: DatasetPaths, checked: tuple, generated_feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image, reference text) CLIP features of the generated images, row for row, in the CLIP
    score's model: the embed features when that is the embedding model, else the images encoded."""
    bundle, _, device, score_bundle, _ = checked
    manifest = storage.read_manifest(paths.generated)
    texts = reference_texts(p["clip_score_text"], list(manifest["prompt"]), list(manifest["class_name"]))
    if score_bundle is None:
        images = generated_feats
    else:
        bundle = score_bundle
        images = backbone_features(p, paths, bundle, manifest)
        if images is None:
            images = encode_images(bundle, storage.load_image_set(paths.generated)[0], batch_size=p["batch_size"],
                                   device=device, desc="quality: CLIP score images")
    return images, prompt_features(bundle, texts, batch_size=p["batch_size"], device=device)


def backbone_features(p: dict, paths: DatasetPaths, bundle, manifest) -> np.ndarray | None:
    """The generated images' features in the CLIP score model when embed already encoded them with
    it as one of embed.backbones (their cache key: this model's weights and these images), else None."""

    path = paths.backbone_features(p["clip_score_model"], p["clip_score_pretrained"]) / "generated.safetensors"
    if not path.is_file():
        return None
    key = cache_key(f"{p['clip_score_model']}|{p['clip_score_pretrained']}", model_sha256(bundle.model),
                    list(manifest["sha256"]))
    cached = cached_features(path, key)
    return None if cached is None else cached[0]


def prompt_features(bundle, prompts: list[str], *, batch_size: int, device: str) -> np.ndarray:
    """CLIP text features of `prompts`, row for row, encoding each distinct prompt once."""
    unique, inverse = np.unique(np.asarray(prompts, dtype=object).astype(str), return_inverse=True)
    chunks = [encode_texts(bundle, [str(t) for t in unique[i : i + batch_size]], device=device) for i in range(0, len(unique), batch_size)]
    return np.concatenate(chunks)[inverse.reshape(-1)]


def source_masks(paths: DatasetPaths, sources: list[str]) -> dict[str, np.ndarray]:
    """Row masks of the generated manifest for each generated source (in feature row order)."""
    strategies = storage.read_manifest(paths.generated)["strategy"].to_numpy()
    masks = {}
    for name in sources:
        if name == "generated":
            masks[name] = np.ones(len(strategies), dtype=bool)
        elif name.startswith("generated/"):
            masks[name] = strategies == name.split("/", 1)[1]
    return masks


def source_metrics(sources: dict, test_feats: np.ndarray, scored: tuple[np.ndarray, np.ndarray], masks: dict, seed: int) -> dict:
    """Per source: FID in CLIP space, CLIP score of the `scored` (image, reference text) feature
    rows of its images, PAD."""
    score_images, score_texts = scored
    out = {}
    for name, (feats, _) in sources.items():
        try:
            out[name] = {
                "images": len(feats),
                "fid_clip": frechet_distance(feats, test_feats),
                "clip_score": clip_score(score_images[masks[name]], score_texts[masks[name]]) if name in masks else None,
                "pad": proxy_a_distance(feats, test_feats, seed=seed),
            }
        except GenBenchError as exc:
            raise GenBenchError(f"quality of source {name!r} ({len(feats)} images) against the test set: {exc}") from exc
    return out


def metric_timings(p: dict, meta: dict, sources: dict, test: tuple, text_feats: np.ndarray,
                   scored: tuple[np.ndarray, np.ndarray], device: str) -> dict[str, list[float]]:
    feats, labels = sources[TIMED_SOURCE]
    test_feats, test_labels = test
    n, metric = len(meta["classnames"]), meta["metric"]
    calls = {
        "cler": (cler, (feats, labels, test_feats, test_labels),
                 {"num_classes": n, "text_feats": text_feats, "metric": metric}),
        "probe": (linear_probe, (feats, labels, test_feats, test_labels),
                  {"metric": metric, "seed": p["seed"], "num_classes": n, "device": device}),
        "fid_clip": (frechet_distance, (feats, test_feats), {}),
        "clip_score": (clip_score, scored, {}),
        "pad": (proxy_a_distance, (feats, test_feats), {"seed": p["seed"]}),
    }
    seconds = {}
    for name, (fn, args, kwargs) in calls.items():
        _, seconds[name] = timed(fn, *args, repeats=p["timing_repeats"], warmup=p["timing_warmup"], **kwargs)
    return seconds


def work(p: dict, paths: DatasetPaths, checked: tuple | None = None) -> StageResult:
    """`checked` is check_inputs' result (computed here when None)."""
    checked = checked or check_inputs(p, paths)
    model_id, device, score_model_id = checked[1], checked[2], checked[4]
    meta = paths.read_meta()
    out = paths.metrics / "quality.json"
    test_feats, test_labels = real_test_set(paths)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    sources = external_sets(paths)

    start = time.perf_counter()
    scored = clip_score_features(p, paths, checked, sources[TIMED_SOURCE][0])
    encode_seconds = time.perf_counter() - start

    masks = source_masks(paths, list(sources))
    result = {
        "dataset": paths.dataset,
        "reference": "test",
        "feature_model": model_id,
        "fid_definition": FID_DEFINITION,
        "clip_score_definition": CLIP_SCORE_DEFINITIONS[p["clip_score_text"]],
        "clip_score_text": p["clip_score_text"],
        "clip_score_model": score_model_id,
        "pad_definition": PAD_DEFINITION,
        "timing_definition": TIMING_DEFINITION,
        "sources": source_metrics(sources, test_feats, scored, masks, p["seed"]),
        "timing": {"source": TIMED_SOURCE, "repeats": p["timing_repeats"], "warmup": p["timing_warmup"], "device": device},
        "seconds": metric_timings(p, meta, sources, (test_feats, test_labels), text_feats, scored, device),
        "seconds_encode_prompts": encode_seconds,
    }
    storage.atomic_write_json(out, result)

    gen = result["sources"][TIMED_SOURCE]
    means = {k: statistics.fmean(v) for k, v in result["seconds"].items()}
    click.echo(f"quality: generated FID(CLIP features) {gen['fid_clip']:.4g}  CLIP score {gen['clip_score']:.2f}  "
               f"PAD {gen['pad']:.3f}; probe/CLER time {means['probe'] / means['cler']:.0f}x -> {out}")
    flat = {}
    for name, values in result["sources"].items():
        key = name.replace("/", ".")
        flat.update({f"{m}.{key}": values[m] for m in ("fid_clip", "clip_score", "pad") if values[m] is not None})
    flat.update({f"seconds.{k}": v for k, v in means.items()})
    flat["seconds.encode_prompts"] = encode_seconds
    return StageResult(metrics=flat, artifacts=[out], tags={"clip_model": model_id, "fid_space": "clip"})


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
