"""From ranked hits to a retrieved image set, and the mean text similarity of the search.

Per class: search the top-k captions for the class's template queries, walk the hits best
first, keep an image unless it cannot be read or repeats one already kept for the class (same
bytes), until `shots` are kept. Kept images are centre-cropped to a square and resized, so the
set stacks like the other image sets.

MTS follows the paper (Section 3.3) and its released code: per class, the mean similarity of the
top `mts_top_k` hits (10, as released) for the class-name query, its own depth apart from the
retrieval's `top_k`; `mts_query="name"` searches the bare class name for it (the paper), and
`"templates"` reuses the retrieval query's hits. The dataset MTS is the mean over classes
(`genbench.metrics.mean_text_similarity`).

The released MTS is measured in CLIP ViT-B/32 text space (LAION-400M's published index). When the
index is in another space, `mts_rescore` (query, captions) -> cosines re-measures the hits in the
MTS space: the MTS search goes max(top_k, mts_top_k) deep in the index, the hits are re-scored and
the best `mts_top_k` of them by the new cosine are averaged (exact when the MTS space's own top
hits are among the index's candidates; docs/retrieval.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from genbench import storage
from genbench.errors import GenBenchError
from genbench.metrics import mean_text_similarity, per_class_text_similarity
from genbench.retrieval.search import Hit, Searcher, check_mode, class_queries

MTS_QUERIES = ("name", "templates")


@dataclass(frozen=True)
class KeptImage:
    """A kept hit and its fetched bytes; the square image is decoded each time it is read, so
    a retrieval holds encoded bytes, not the decoded images of every class."""

    hit: Hit
    rank: int
    data: bytes
    sha256: str
    image_size: int

    @property
    def image(self) -> np.ndarray:
        return decode_square(self.data, self.image_size)


@dataclass
class ClassRetrieval:
    """One class's search: the top-k hits, the MTS query's hits, and what was kept or skipped."""

    class_index: int
    class_name: str
    hits: list[Hit]
    mts_hits: list[Hit]
    kept: list[KeptImage] = field(default_factory=list)
    skipped: list[tuple[Hit, str]] = field(default_factory=list)


def decode_square(data: bytes | None, size: int) -> np.ndarray | None:
    """RGB uint8 (size, size, 3): centre square crop, bilinear resize; None if unreadable."""
    if not data:
        return None
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    img = img.convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR))


def select_shots(hits: list[Hit], images: dict[str, bytes | None], shots: int, image_size: int) -> tuple[list[KeptImage], list[tuple[Hit, str]]]:
    """Keep up to `shots` hits in rank order, skipping unreadable images and repeated bytes."""
    kept, skipped, seen = [], [], set()
    for rank, hit in enumerate(hits):
        if len(kept) == shots:
            break
        data = images.get(hit.pool_id)
        if decode_square(data, image_size) is None:
            skipped.append((hit, "missing" if not data else "unreadable"))
            continue
        digest = storage.sha256_bytes(data)
        if digest in seen:
            skipped.append((hit, "duplicate"))
            continue
        seen.add(digest)
        kept.append(KeptImage(hit, rank, data, digest, image_size))
    return kept, skipped


MtsRescore = Callable[[str, list[str]], np.ndarray]


def rescore_hits(hits: list[Hit], query: str, rescore: MtsRescore, k: int) -> list[Hit]:
    """The best `k` of `hits` by the cosine `rescore(query, captions)` gives, best first, with
    that cosine as their similarity (ties keep the index's order)."""
    if not hits:
        return []
    cosines = np.asarray(rescore(query, [h.caption for h in hits]), dtype=np.float64)
    order = np.argsort(-cosines, kind="stable")[:k]
    return [replace(hits[i], similarity=float(cosines[i])) for i in order]


def _mts_hits(searcher: Searcher, name: str, hits: list[Hit], *, mts_query: str, depth: int, mts_top_k: int,
              mode: str, rescore: MtsRescore | None) -> list[Hit]:
    found = hits if mts_query == "templates" else searcher.search([name], depth, mode)
    return rescore_hits(found, name, rescore, mts_top_k) if rescore else found[:mts_top_k]


def retrieve_classes(searcher: Searcher, classnames: list[str], templates: list[str], *, top_k: int, shots: int,
                     mode: str = "mean", mts_query: str = "name", image_size: int = 32, mts_top_k: int = 10,
                     mts_rescore: MtsRescore | None = None) -> list[ClassRetrieval]:
    """Search, fetch and select for every class (one pass over the pool for all images); MTS
    from the top `mts_top_k` hits of the MTS query, re-measured by `mts_rescore` when given."""
    check_mode(mode)
    if mts_query not in MTS_QUERIES:
        raise GenBenchError(f"MTS query {mts_query!r} is not one of {', '.join(MTS_QUERIES)}")
    if shots > top_k:
        raise GenBenchError(f"shots = {shots} exceeds top_k = {top_k}; search at least as deep as the shots kept")
    if mts_top_k < 1 or (mts_query == "templates" and mts_top_k > top_k):
        raise GenBenchError(f"mts_top_k = {mts_top_k} must be at least 1 and, with mts_query 'templates' (which reuses "
                            f"the retrieval hits), at most top_k = {top_k}")
    depth = max(top_k, mts_top_k) if mts_rescore else mts_top_k
    results = []
    for index, name in enumerate(classnames):
        hits = searcher.search(class_queries(name, templates), top_k, mode)
        mts_hits = _mts_hits(searcher, name, hits, mts_query=mts_query, depth=depth, mts_top_k=mts_top_k,
                             mode=mode, rescore=mts_rescore)
        if not hits or not mts_hits:
            raise GenBenchError(f"class {name!r}: the search returned no hits; is the pool empty?")
        results.append(ClassRetrieval(index, name, hits, mts_hits))
    images = searcher.images([h for r in results for h in r.hits])
    for r in results:
        r.kept, r.skipped = select_shots(r.hits, images, shots, image_size)
    return results


def retrieved_rows(dataset: str, results: list[ClassRetrieval], backend: str) -> list[dict]:
    """The manifest rows of the kept images (query, hit caption, similarity, pool id, rank)."""
    rows = []
    for r in results:
        for n, kept in enumerate(r.kept):
            rows.append({
                "key": f"{dataset}-retrieved-{r.class_index:04d}-{n:05d}", "dataset": dataset, "split": "retrieved",
                "class_index": r.class_index, "class_name": r.class_name, "strategy": "retrieved", "shot": n,
                "rank": kept.rank, "query": kept.hit.query, "caption": kept.hit.caption, "similarity": kept.hit.similarity,
                "pool_id": kept.hit.pool_id, "url": kept.hit.url, "source_sha256": kept.sha256, "backend": backend,
            })
    return rows


def retrieved_images(results: list[ClassRetrieval]) -> Iterator[np.ndarray]:
    """The kept images in the order of `retrieved_rows`, decoded one at a time."""
    for r in results:
        for kept in r.kept:
            yield kept.image


def mts_summary(results: list[ClassRetrieval]) -> dict:
    """Per-class and dataset MTS, plus the mean similarity of the kept images per class."""
    per_class = per_class_text_similarity([np.array([h.similarity for h in r.mts_hits]) for r in results])
    kept_sim = {r.class_name: float(np.mean([k.hit.similarity for k in r.kept])) if r.kept else None for r in results}
    return {
        "mts": mean_text_similarity([np.array([h.similarity for h in r.mts_hits]) for r in results]),
        "mts_per_class": {r.class_name: float(v) for r, v in zip(results, per_class)},
        "kept_similarity_per_class": kept_sim,
        "mts_k": {r.class_name: len(r.mts_hits) for r in results},
    }


def label_precision(results: list[ClassRetrieval], labels: dict[str, object]) -> dict:
    """Fraction of kept images whose ground-truth pool label is their class (pools that carry
    labels only, like the embedded one), overall and per class."""
    per_class = {}
    for r in results:
        if r.kept:
            per_class[r.class_name] = float(np.mean([labels.get(k.hit.pool_id) == r.class_index for k in r.kept]))
    kept = [labels.get(k.hit.pool_id) == r.class_index for r in results for k in r.kept]
    return {"label_precision": float(np.mean(kept)) if kept else None, "label_precision_per_class": per_class}
