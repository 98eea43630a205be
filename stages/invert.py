"""Stage `invert`: textual inversion per class of one dataset, on each kind of reference data.

References per class (genbench.inversion_references): `original`, the first `original_shots`
k-shot originals (data/<ds>/prepared/original); `retrieved`, the retrieved images
(data/<ds>/retrieved) whose caption is similar enough to the class name (`filter_*`; the paper:
BLIP-2 captions, BERT similarity, 0.8). For each source genbench.inversion_training writes
data/<ds>/inversion/<source>/ (class-*.safetensors, tokens.json, references.parquet,
losses.parquet), and the stage a summary to metrics/<ds>/invert.json. The cost is amortised over
the generated images.
"""

from __future__ import annotations

from pathlib import Path

import click

from genbench import storage
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.generators import DTYPES
from genbench.inversion_references import original_references, retrieved_references
from genbench.inversion_training import invert_sources
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult

SOURCES = ("original", "retrieved")
SCHEMA = {
    "model": Field(str, "tiny-sd", help="the generator generate uses: built-in name, local folder or hub id"),
    "revision": Field((str, type(None)), None),
    "dtype": Field(str, "float32", choices=DTYPES),
    "device": Field(str, "auto"),
    "seed": Field(int, 0, non_negative, help="built-in model weights and the training draws"),
    "resolution": Field(int, 32, positive, help="training image side (SD 2.1 base: 512)"),
    "references": Field(list, list(SOURCES), help="reference data to invert: original and/or retrieved"),
    "original_shots": Field(int, 5, positive, help="k-shot originals per class used as references"),
    "filter_captioner": Field(str, "pool-caption", help="pool-caption (offline) | blip2:<model> (paper)"),
    "filter_similarity": Field(str, "clip-text", help="clip-text (offline) | bert:<model> (paper)"),
    "filter_clip_model": Field(str, "tiny-clip", help="CLIP model of the clip-text similarity"),
    "filter_clip_pretrained": Field((str, type(None)), None),
    "filter_threshold": Field(float, 0.8, help="keep retrieved references whose caption similarity reaches this"),
    "min_references": Field(int, 1, non_negative, help="keep at least this many best-scoring references per class"),
    "steps": Field(int, 10, positive, help="training steps per class (paper: 1000)"),
    "learning_rate": Field(float, 5e-3, positive),
    "batch_size": Field(int, 2, positive, help="reference images per step"),
    "eval_draws": Field(int, 4, positive, help="fixed draws of the before/after evaluation loss"),
}


def check_values(p: dict) -> None:
    """The checks that need only the section's values (no device, files or models)."""
    bad = [s for s in p["references"] if s not in SOURCES]
    if bad or not p["references"] or len(set(p["references"])) != len(p["references"]):
        raise GenBenchError(f"params key 'invert.references' = {p['references']!r} must list distinct sources from {', '.join(SOURCES)}")


def check(p: dict) -> None:
    check_values(p)
    resolve_device(p["device"], "invert.device")


def required_inputs(paths: DatasetPaths, p: dict) -> list[Path]:
    """The prepared metadata and the manifest of each reference source in invert.references."""
    folders = {"original": paths.prepared / "original", "retrieved": paths.retrieved}
    return [paths.prepared / "meta.json", *(folders[s] / storage.MANIFEST for s in p["references"])]


def work(p: dict, paths: DatasetPaths) -> StageResult:
    spec = paths.read_meta()
    device = resolve_device(p["device"], "invert.device")
    gathered = {source: original_references(paths.prepared / "original", p["original_shots"]) if source == "original"
                else retrieved_references(paths.retrieved, p, device) for source in p["references"]}
    summary = invert_sources(p, spec, gathered, paths.inversion, device)
    metrics_path = paths.metrics / "invert.json"
    storage.atomic_write_json(metrics_path, summary)
    flat = {}
    for source, s in summary["sources"].items():
        click.echo(f"invert: {source}: {s['classes_trained']} tokens from {s['references_kept']}/{s['references_considered']} "
                   f"references, eval loss {s['mean_eval_loss_before']:.4f} -> {s['mean_eval_loss_after']:.4f}")
        flat.update({f"{source}.tokens": s["classes_trained"], f"{source}.references_kept": s["references_kept"],
                     f"{source}.eval_loss_before": s["mean_eval_loss_before"], f"{source}.eval_loss_after": s["mean_eval_loss_after"]})
    trained = sum(s["classes_trained"] for s in summary["sources"].values())
    return StageResult(metrics={k: v for k, v in flat.items() if v is not None}, artifacts=[metrics_path], items=trained,
                       data_type="generated", tags={"generator": p["model"]})


command = dataset_stage_command(
    "invert", SCHEMA, work,
    "Textual inversion: one learned token per class from original or retrieved images (params: invert.*).", check,
    requires=required_inputs,
)
