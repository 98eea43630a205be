"""Stage `retrieve`: the retrieval baseline for one dataset. Text-to-text search of the caption
index (or a clip-retrieval KNN service) with each class name in the dataset's templates; the
best `shots` distinct images per class become the retrieved image set (data/<ds>/retrieved,
shards + manifest rows with query, hit caption, similarity and pool id), and the mean text
similarity per class and per dataset goes to metrics/<ds>/retrieve.json."""

from __future__ import annotations

import click

from genbench import storage
from genbench.clip_models import load_clip
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.features import encode_texts
from genbench.retrieval.index import CaptionIndex
from genbench.retrieval.pool import read_column
from genbench.retrieval.remote import RemoteSearcher
from genbench.retrieval.search import QUERY_MODES, LocalSearcher
from genbench.retrieval.select import MTS_QUERIES, label_precision, mts_summary, retrieve_classes, retrieved_images, retrieved_rows
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.params import Field, positive
from stages.frame.paths import INDEX_DIR, DatasetPaths
from stages.frame.runner import StageResult

BACKENDS = ("local", "remote")
SCHEMA = {
    "backend": Field(str, "local", choices=BACKENDS, help="local (the index stage's data/index) | remote (a clip-retrieval KNN service)"),
    "url": Field((str, type(None)), None, help="remote: the service's /knn-service URL"),
    "indice_name": Field((str, type(None)), None, help="remote: the service's index name, e.g. laion_400m"),
    "query": Field(str, "mean", choices=QUERY_MODES, help="mean (one query: mean of the template embeddings) | per_template"),
    "mts_query": Field(str, "name", choices=MTS_QUERIES, help="name (the class name alone, as the paper's MTS) | templates"),
    "top_k": Field(int, 32, positive, help="hits searched per class for the retrieved images"),
    "mts_top_k": Field(int, 10, positive, help="hits MTS averages per class (released code: 10)"),
    "mts_model": Field((str, type(None)), None, help="CLIP text space of MTS; null: the index's (paper: ViT-B-32, as released)"),
    "mts_pretrained": Field((str, type(None)), None, help="its open_clip pretrained tag (paper: openai)"),
    "shots": Field(int, 16, positive, help="images kept per class, best first, deduplicated"),
    "image_size": Field(int, 32, positive, help="side of the square the kept images are resized to"),
    "device": Field(str, "auto"),
}


def check_values(p: dict) -> None:
    """The checks that need only the section's values (no device, index or service)."""
    if p["mts_query"] == "templates" and p["mts_top_k"] > p["top_k"]:
        raise GenBenchError(f"params key 'retrieve.mts_top_k' = {p['mts_top_k']} exceeds retrieve.top_k = {p['top_k']}, "
                            "whose hits mts_query 'templates' reuses; lower it or use mts_query: name")
    if p["shots"] > p["top_k"]:
        raise GenBenchError(f"params key 'retrieve.shots' = {p['shots']} exceeds retrieve.top_k = {p['top_k']}; search deeper")
    if p["backend"] == "remote":
        if not p["url"] or not p["indice_name"]:
            raise GenBenchError("retrieve.backend = 'remote' needs retrieve.url (the /knn-service endpoint) and retrieve.indice_name")
        if p["query"] == "mean":
            raise GenBenchError("retrieve.query = 'mean' needs the local index; use query: per_template with backend: remote")


def check(p: dict) -> None:
    check_values(p)
    resolve_device(p["device"], "retrieve.device")
    if p["backend"] == "local":
        CaptionIndex.require(INDEX_DIR)


def make_searcher(p: dict):
    """(searcher, description, pool path or None) for the configured backend."""
    if p["backend"] == "remote":
        return RemoteSearcher(p["url"], p["indice_name"]), {"url": p["url"], "indice_name": p["indice_name"]}, None
    index = CaptionIndex.load(INDEX_DIR)
    model = index.meta["model"]
    device = resolve_device(p["device"], "retrieve.device")
    bundle = load_clip(model["name"], model["pretrained"], seed=model["seed"], device=device)
    searcher = LocalSearcher(index, lambda texts: encode_texts(bundle, texts, device=device))
    about = {k: index.meta[k] for k in ("kind", "count", "pool", "pool_fingerprint", "model", "faiss_version")}
    return searcher, about, index.meta["pool"]


def mts_rescorer(p: dict, about: dict):
    """(query, captions) -> cosines in the MTS text space, or None when MTS stays in the index's
    own space (mts_model null, or the local index's model)."""
    if p["mts_model"] is None:
        return None
    index_model = about.get("model") or {}
    if p["backend"] == "local" and (index_model.get("name"), index_model.get("pretrained")) == (p["mts_model"], p["mts_pretrained"]):
        return None
    device = resolve_device(p["device"], "retrieve.device")
    bundle = load_clip(p["mts_model"], p["mts_pretrained"], device=device)

    def rescore(query: str, captions: list[str]):
        feats = encode_texts(bundle, [query, *captions], device=device).astype("float64")
        return feats[1:] @ feats[0]

    return rescore


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    searcher, about, pool = make_searcher(p)
    results = retrieve_classes(searcher, meta["classnames"], meta["templates"], top_k=p["top_k"], shots=p["shots"],
                               mode=p["query"], mts_query=p["mts_query"], image_size=p["image_size"],
                               mts_top_k=p["mts_top_k"], mts_rescore=mts_rescorer(p, about))
    empty = [r.class_name for r in results if not r.kept]
    if empty:
        raise GenBenchError(f"retrieve: class {empty[0]!r} kept no image (all top-{p['top_k']} hits unreadable or duplicates); raise retrieve.top_k")
    rows = retrieved_rows(paths.dataset, results, p["backend"])
    out = paths.retrieved
    with storage.atomic_dir(out) as tmp:
        storage.write_image_stream(tmp, zip(retrieved_images(results), rows))
    skipped: dict[str, int] = {}
    for r in results:
        for _, reason in r.skipped:
            skipped[reason] = skipped.get(reason, 0) + 1
    labels = read_column(pool, "label") if pool else None
    summary = {
        "dataset": paths.dataset, "backend": p["backend"], "query": p["query"], "mts_query": p["mts_query"],
        "top_k": p["top_k"], "mts_top_k": p["mts_top_k"], "mts_space": f"{p['mts_model']}|{p['mts_pretrained']}" if p["mts_model"] else "index",
        "shots": p["shots"], "index": about, **mts_summary(results),
        "images": len(rows), "images_per_class": {r.class_name: len(r.kept) for r in results}, "skipped": skipped,
        **(label_precision(results, labels) if labels is not None else {"label_precision": None, "label_precision_per_class": {}}),
    }
    metrics_path = paths.metrics / "retrieve.json"
    storage.atomic_write_json(metrics_path, summary)
    precision = f", label precision {summary['label_precision']:.2f}" if summary["label_precision"] is not None else ""
    click.echo(f"retrieve: {len(rows)} images for {len(results)} classes, MTS {summary['mts']:.3f}{precision} -> {out}")
    flat = {"mts": summary["mts"], "images_retrieved": len(rows)}
    if summary["label_precision"] is not None:
        flat["label_precision"] = summary["label_precision"]
    return StageResult(metrics=flat, artifacts=[metrics_path], items=len(rows), data_type="retrieved",
                       tags={"retrieve_backend": p["backend"]})


command = dataset_stage_command(
    "retrieve", SCHEMA, work, "Retrieve images per class from the caption index and score MTS (params: retrieve.*).", check,
    requires=lambda paths, p: [paths.prepared / "meta.json"],
)
