"""Stage `finetune`: the CLIP image encoder fine-tuned with a linear head on `shots` images per
class of each listed set (5-shot generated and 5-shot original by default), scored on the real
test set with the dataset's metric (Figure 10). The science is genbench.finetune."""

from __future__ import annotations

import click

from genbench import storage
from genbench.clip_models import check_clip_source, check_pretrained_used, load_clip
from genbench.devices import resolve_device
from genbench.finetune import FinetuneSettings, finetune_encoder, kshot_indices
from genbench.labels import feature_labels, scoring_targets
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult


def _positive_float(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _sets_check(value: list) -> str | None:
    bad = [v for v in value if not isinstance(v, str) or v.split("/")[0] not in ("generated", "original", "retrieved")]
    return f"may list only generated, generated/<strategy>, original, retrieved (not {bad[0]!r})" if bad else None


SCHEMA = {
    "model": Field(str, "tiny-clip", help="the CLIP model to fine-tune (as embed.model)"),
    "pretrained": Field((str, type(None)), None, help="as embed.pretrained"),
    "model_seed": Field(int, 0, non_negative, help="seed of a built-in CLIP (as embed.seed)"),
    "device": Field(str, "auto"),
    "sets": Field(list, ["generated", "original"], _sets_check, help="image sets to fine-tune on, each on its own"),
    "shots": Field(int, 5, positive, help="training images per class drawn from each set (paper: 5)"),
    "epochs": Field(int, 3, non_negative, help="passes over the training images (0: the linear probe on frozen features)"),
    "batch_size": Field(int, 32, positive),
    "learning_rate": Field(float, 1e-4, _positive_float, help="AdamW learning rate of the image encoder"),
    "head_learning_rate": Field(float, 1e-3, _positive_float, help="AdamW learning rate of the linear head"),
    "weight_decay": Field(float, 0.0, non_negative),
    "head_l2": Field(float, 1e-3, _positive_float, help="L2 strength of the initial head's probe fit"),
    "seed": Field(int, 0, non_negative, help="k-shot draw, training order and head initialisation"),
}


def image_set(paths: DatasetPaths, name: str):
    """(directory, manifest rows) of a set name: generated/<strategy> is the generated set's rows of that strategy."""
    base, _, strategy = name.partition("/")
    directory = {"generated": paths.generated, "original": paths.prepared / "original", "retrieved": paths.retrieved}[base]
    manifest = storage.verify_image_set(directory)
    if strategy:
        manifest = manifest[manifest["strategy"] == strategy]
    return directory, manifest.reset_index(drop=True)


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    task, n = meta.get("task", "multiclass"), len(meta["classnames"])
    device = resolve_device(p["device"], "finetune.device")
    bundle = load_clip(p["model"], p["pretrained"], seed=p["model_seed"], device=device)
    test_images, test_manifest = storage.load_image_set(paths.prepared / "test")
    test_labels = scoring_targets(feature_labels(test_manifest, task, n), task, n, "test labels")
    settings = FinetuneSettings(epochs=p["epochs"], batch_size=p["batch_size"], learning_rate=p["learning_rate"],
                                head_learning_rate=p["head_learning_rate"], weight_decay=p["weight_decay"],
                                head_l2=p["head_l2"], seed=p["seed"], device=device)
    out_path = paths.metrics / "finetune.json"
    result = {"metric": meta["metric"], "model": f"{p['model']}|{p['pretrained']}", "shots": p["shots"], "sets": {}}
    for name in p["sets"]:
        directory, manifest = image_set(paths, name)
        rows = manifest.iloc[kshot_indices(manifest["class_index"].to_numpy(), p["shots"], p["seed"])]
        images = storage.load_images(directory, rows)
        targets = scoring_targets(feature_labels(rows, task, n), task, n, f"{name} labels")
        out = finetune_encoder(bundle, images, targets, test_images, test_labels, num_classes=n, metric=meta["metric"],
                               settings=settings, progress=True)
        result["sets"][name] = out
        click.echo(f"finetune: {name}: {out['score']:.2f} (head only {out['head_only_score']:.2f}, "
                   f"loss {out['train_loss'][0]:.3f} -> {out['train_loss'][-1]:.3f})")
    storage.atomic_write_json(out_path, result)
    flat = {f"finetune.{n_.replace('/', '.')}": s["score"] for n_, s in result["sets"].items()}
    return StageResult(metrics=flat, artifacts=[out_path], tags={"clip_model": result["model"]})


def check(p: dict) -> None:
    """Before a run opens: the CLIP model's files."""
    check_pretrained_used(p["model"], p["pretrained"], "finetune")
    check_clip_source(p["model"], p["pretrained"])


def requires(paths: DatasetPaths, p: dict) -> list:
    dirs = {"generated": paths.generated, "original": paths.prepared / "original", "retrieved": paths.retrieved}
    return [paths.prepared / "meta.json", paths.prepared / "test" / storage.MANIFEST,
            *(dirs[s.split("/")[0]] / storage.MANIFEST for s in p["sets"])]


command = dataset_stage_command(
    "finetune", SCHEMA, work,
    "Fine-tune the CLIP image encoder with a linear head on k-shot generated and original data, scored on the test set "
    "(params: finetune.*).", check=check, requires=requires)
