"""Text-to-text search: class queries in, ranked caption hits out.

Query modes (how a class's several template queries become hits):
- `mean` (default): one query per class, the mean of the L2-normalised CLIP embeddings of the
  class name in every template, renormalised (CLIP's prompt ensembling, as for zero-shot
  prototypes); a hit's similarity is the cosine between that query and the caption embedding.
- `per_template`: one search per template; hits found by several templates are merged by pool
  id keeping the highest similarity (and the template that found it).
Either way the result is the top k distinct pool ids, best first.

Similarities reported for a compressed (non-flat) index are recomputed exactly: the hit captions
are re-encoded and compared with the query, after searching twice as deep as asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics.arrays import unit_norm
from genbench.retrieval.index import CaptionIndex, TextEncoder
from genbench.retrieval.pool import fetch_items

QUERY_MODES = ("mean", "per_template")
REFINE_DEPTH = 2


@dataclass(frozen=True)
class Hit:
    """One retrieved caption: pool id, caption, cosine similarity to the query, the query text,
    and (remote backends) the image bytes or URL when the service returns them."""

    pool_id: str
    caption: str
    similarity: float
    query: str
    image: bytes | None = None
    url: str | None = None


class Searcher(Protocol):
    """A search backend: ranked hits for a class's query texts, and the hits' image bytes."""

    def search(self, texts: list[str], k: int, mode: str) -> list[Hit]: ...

    def images(self, hits: list[Hit]) -> dict[str, bytes | None]: ...


def class_queries(classname: str, templates: list[str] | tuple[str, ...]) -> list[str]:
    """The class name in every template (templates hold one `{c}`)."""
    return [t.format(c=classname) for t in templates]


def check_mode(mode: str) -> str:
    if mode not in QUERY_MODES:
        raise GenBenchError(f"query mode {mode!r} is not one of {', '.join(QUERY_MODES)}")
    return mode


def merge_hits(hit_lists: list[list[Hit]], k: int) -> list[Hit]:
    """The top k hits by similarity over several result lists, one per pool id (its best)."""
    best: dict[str, Hit] = {}
    for hits in hit_lists:
        for hit in hits:
            if hit.pool_id not in best or hit.similarity > best[hit.pool_id].similarity:
                best[hit.pool_id] = hit
    return sorted(best.values(), key=lambda h: (-h.similarity, h.pool_id))[:k]


class LocalSearcher:
    """Searches a `CaptionIndex` with queries embedded by the index's own text encoder."""

    def __init__(self, index: CaptionIndex, encode: TextEncoder, pool: str | Path | None = None):
        self.index = index
        self.encode = encode
        self.pool = Path(pool) if pool is not None else Path(index.meta["pool"])

    def _search_vector(self, query: np.ndarray, label: str, k: int) -> list[Hit]:
        depth = k if self.index.exact else k * REFINE_DEPTH
        sims, rows = self.index.search(query[None, :], depth)
        pairs = [(float(s), int(r)) for s, r in zip(sims[0], rows[0]) if r >= 0]
        if not pairs:
            return []
        captions = [str(self.index.captions[r]) for _, r in pairs]
        if not self.index.exact:
            exact = np.asarray(self.encode(captions), dtype=np.float32) @ query
            pairs = [(float(s), r) for s, (_, r) in zip(exact, pairs)]
        hits = [Hit(str(self.index.ids[r]), str(self.index.captions[r]), s, label) for s, r in pairs]
        return merge_hits([hits], k)

    def search(self, texts: list[str], k: int, mode: str = "mean") -> list[Hit]:
        if not texts:
            raise GenBenchError("a search needs at least one query text")
        emb = np.asarray(self.encode(list(texts)), dtype=np.float32)
        if check_mode(mode) == "mean":
            return self._search_vector(unit_norm(emb.mean(axis=0)), " | ".join(texts), k)
        return merge_hits([self._search_vector(e, t, k) for e, t in zip(emb, texts)], k)

    def images(self, hits: list[Hit]) -> dict[str, bytes | None]:
        """Image bytes per pool id, read from the pool in one pass."""
        found = fetch_items(self.pool, {h.pool_id for h in hits})
        return {h.pool_id: found[h.pool_id].image if h.pool_id in found else None for h in hits}
