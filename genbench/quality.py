"""The image-quality metrics the paper compares CLER with (its Figure 4), per external image set,
and the evaluation time of every metric (its Figure 5).

Per source (generated, generated/<strategy>, original):
- `fid_clip`: Frechet distance between Gaussian fits of the source's CLIP image features and the
  real test set's (NOT Inception FID);
- `clip_score`: CLIP score of each generated image against its reference text ("a photo of a
  {class}", or its own prompt), in the CLIP score model's space; null for original, which has no prompts;
- `pad`: proxy-A distance between the source's features and the real test set's.

Timing (Figure 5): CLER, the linear probe, FID, CLIP score and PAD are each run `warmup` untimed
times, then `repeats` timed times, on the pooled generated set's cached features. Feature
extraction is not part of any metric's time.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from genbench import storage
from genbench.errors import GenBenchError
from genbench.features import cache_key, cached_features, encode_images, encode_texts, model_sha256
from genbench.metrics import clip_score, cler, frechet_distance, proxy_a_distance, timed
from genbench.metrics.clip_score import CLASS_REFERENCE
from genbench.probe import linear_probe

TIMED_SOURCE = "generated"
# Short one-line definitions written into quality.json (full ones: docs/metrics.md).
FID_DEFINITION = "Frechet distance of Gaussian fits of CLIP image features vs the test set; not Inception FID"
CLIP_SCORE_DEFINITIONS = {
    "class": f"mean of 100*max(cos(image, '{CLASS_REFERENCE.replace('{c}', '{class}')}'), 0) in CLIP space; null without prompts",
    "prompt": "mean of 100*max(cos(image, its own prompt), 0) in CLIP space; null without prompts",
}
PAD_DEFINITION = "proxy-A distance 2(1-2e) of CLIP features vs the test set, e the held-out linear error"
TIMING_DEFINITION = "wall seconds per timed run, cached features of the pooled generated set; no feature extraction"
QUALITY_METRICS = ("fid_clip", "clip_score", "pad")  # per-source keys of quality.json


def prompt_features(bundle, prompts: list[str], *, batch_size: int, device: str) -> np.ndarray:
    """CLIP text features of `prompts`, row for row, encoding each distinct prompt once."""
    unique, inverse = np.unique(np.asarray(prompts, dtype=object).astype(str), return_inverse=True)
    chunks = [encode_texts(bundle, [str(t) for t in unique[i : i + batch_size]], device=device) for i in range(0, len(unique), batch_size)]
    return np.concatenate(chunks)[inverse.reshape(-1)]


def score_model_images(bundle, model_id: str, manifest, backbone_file: Path, generated: Path, *, batch_size: int,
                       device: str) -> np.ndarray:
    """The generated images' features in the CLIP score model `bundle` (`model_id`): read back from
    `backbone_file` when embed already encoded them with it (as one of embed.backbones; its cache
    key: this model's weights and these images, manifest column sha256), else the images of the
    generated folder `generated` encoded."""
    if backbone_file.is_file():
        cached = cached_features(backbone_file, cache_key(model_id, model_sha256(bundle.model), list(manifest["sha256"])))
        if cached is not None:
            return cached[0]
    return encode_images(bundle, storage.load_image_set(generated)[0], batch_size=batch_size, device=device,
                         desc="quality: CLIP score images")


def source_masks(strategies: np.ndarray, sources: list[str]) -> dict[str, np.ndarray]:
    """Row masks of the generated manifest (its `strategies` column, in feature row order) for
    each generated source: all rows for 'generated', a strategy's rows for 'generated/<strategy>'."""
    masks = {}
    for name in sources:
        if name == "generated":
            masks[name] = np.ones(len(strategies), dtype=bool)
        elif name.startswith("generated/"):
            masks[name] = strategies == name.split("/", 1)[1]
    return masks


def source_metrics(sources: dict, test_feats: np.ndarray, scored: tuple[np.ndarray, np.ndarray], masks: dict, seed: int) -> dict:
    """Per source ({name: (features, labels)}): FID in CLIP space, CLIP score of the `scored`
    (image, reference text) feature rows of its images (None without a mask), PAD."""
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


def metric_timings(timed_set: tuple, test: tuple, text_feats: np.ndarray, scored: tuple[np.ndarray, np.ndarray], *,
                   num_classes: int, metric: str, seed: int, device: str, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Figure 5's protocol: {metric: wall seconds of each of `repeats` timed runs, after `warmup`
    untimed ones} of CLER, the linear probe, FID, CLIP score and PAD on the (features, labels) of
    `timed_set` against the (features, labels) of `test`."""
    feats, labels = timed_set
    test_feats, test_labels = test
    calls = {
        "cler": (cler, (feats, labels, test_feats, test_labels),
                 {"num_classes": num_classes, "text_feats": text_feats, "metric": metric}),
        "probe": (linear_probe, (feats, labels, test_feats, test_labels),
                  {"metric": metric, "seed": seed, "num_classes": num_classes, "device": device}),
        "fid_clip": (frechet_distance, (feats, test_feats), {}),
        "clip_score": (clip_score, scored, {}),
        "pad": (proxy_a_distance, (feats, test_feats), {"seed": seed}),
    }
    seconds = {}
    for name, (fn, args, kwargs) in calls.items():
        _, seconds[name] = timed(fn, *args, repeats=repeats, warmup=warmup, **kwargs)
    return seconds


def quality_record(dataset: str, *, feature_model: str, clip_score_text: str, clip_score_model: str, sources: dict,
                   timing: dict, seconds: dict, seconds_encode_prompts: float) -> dict:
    """quality.json: the dataset, the models and definitions of the metrics, the metrics per source
    (source_metrics), the timing setting and seconds (metric_timings) and the prompts' encoding time."""
    return {
        "dataset": dataset,
        "reference": "test",
        "feature_model": feature_model,
        "fid_definition": FID_DEFINITION,
        "clip_score_definition": CLIP_SCORE_DEFINITIONS[clip_score_text],
        "clip_score_text": clip_score_text,
        "clip_score_model": clip_score_model,
        "pad_definition": PAD_DEFINITION,
        "timing_definition": TIMING_DEFINITION,
        "sources": sources,
        "timing": timing,
        "seconds": seconds,
        "seconds_encode_prompts": seconds_encode_prompts,
    }


def summary_line(result: dict) -> str:
    """One line of a quality.json: the timed source's FID, CLIP score and PAD, and how many times
    the probe's mean time is CLER's."""
    gen = result["sources"][TIMED_SOURCE]
    means = {k: statistics.fmean(v) for k, v in result["seconds"].items()}
    return (f"generated FID(CLIP features) {gen['fid_clip']:.4g}  CLIP score {gen['clip_score']:.2f}  "
            f"PAD {gen['pad']:.3f}; probe/CLER time {means['probe'] / means['cler']:.0f}x")


def flat_metrics(result: dict) -> dict[str, float]:
    """quality.json's numbers as flat metric names: <metric>.<source, '/' as '.'> of each non-null
    QUALITY_METRICS value, seconds.<metric> the mean timed seconds, seconds.encode_prompts."""
    flat = {}
    for name, values in result["sources"].items():
        key = name.replace("/", ".")
        flat.update({f"{m}.{key}": values[m] for m in QUALITY_METRICS if values[m] is not None})
    flat.update({f"seconds.{k}": statistics.fmean(v) for k, v in result["seconds"].items()})
    flat["seconds.encode_prompts"] = result["seconds_encode_prompts"]
    return flat
