"""A FAISS index over the CLIP text embeddings of a pool's captions.

Embeddings are L2-normalised, so the inner product is the cosine similarity. The index kind is
chosen by pool size (`choose_index_kind`):

- `flat`: `IndexFlatIP`, exact search (pools up to `exact_max` captions);
- `ivfpq`: `IndexIVFPQ`, compressed (product-quantised codes in inverted lists; approximate,
  about 1/32 of the memory of float32 vectors), for pools above `exact_max`;
- `hnsw`: `IndexHNSWFlat`, a graph index over full vectors (fast, approximate; by request only).

An index directory holds `index.faiss` (faiss.write_index), `captions.parquet` (row i of the
index: pool id and caption) and `meta.json` (CLIP model, kind, count, dimension, pool path and
fingerprint), so a search reads back ids and captions and knows which text encoder to use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from genbench import storage
from genbench.errors import GenBenchError
from genbench.retrieval.pool import count_pool, iter_caption_batches, pool_fingerprint

INDEX_FILE = "index.faiss"
CAPTIONS_FILE = "captions.parquet"
META_FILE = "meta.json"
INDEX_KINDS = ("auto", "flat", "ivfpq", "hnsw")
HNSW_NEIGHBOURS = 32
PQ_BITS = 8


def choose_index_kind(count: int, kind: str = "auto", exact_max: int = 100_000) -> str:
    """The index kind for a pool of `count` captions: `kind` unless 'auto', which is exact
    (flat) up to `exact_max` captions and compressed (ivfpq) above."""
    if kind not in INDEX_KINDS:
        raise GenBenchError(f"index kind {kind!r} is not one of {', '.join(INDEX_KINDS)}")
    if kind != "auto":
        return kind
    return "flat" if count <= exact_max else "ivfpq"


def ivf_lists(count: int) -> int:
    """Inverted lists for IVF: about 4 sqrt(n), with at least 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def pq_subquantisers(dim: int) -> int:
    """PQ sub-vectors: the most that divide `dim` with at least 4 dimensions each (8 bits per code)."""
    for m in range(max(1, dim // 4), 0, -1):
        if dim % m == 0:
            return m
    return 1


def make_index(kind: str, dim: int, count: int):
    import faiss

    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        return faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    if kind == "ivfpq":
        if count < 2 ** PQ_BITS:
            raise GenBenchError(f"an ivfpq index needs at least {2 ** PQ_BITS} captions to train on, the pool has {count}; use kind flat")
        quantizer = faiss.IndexFlatIP(dim)
        return faiss.IndexIVFPQ(quantizer, dim, ivf_lists(count), pq_subquantisers(dim), PQ_BITS, faiss.METRIC_INNER_PRODUCT)
    raise GenBenchError(f"index kind {kind!r} is not one of {', '.join(INDEX_KINDS[1:])}")


def build_index(embeddings: np.ndarray, kind: str, *, nprobe: int = 16, seed: int = 0):
    """A trained, filled FAISS index of `kind` over L2-normalised float32 `embeddings` (N, D)."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = make_index(kind, x.shape[1], len(x))
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = x if len(x) <= 256 * 1024 else x[np.sort(rng.choice(len(x), 256 * 1024, replace=False))]
        index.cp.seed = seed
        index.pq.cp.seed = seed
        index.train(sample)
        index.nprobe = min(nprobe, index.nlist)
    index.add(x)
    return index


# A text encoder: list of captions -> (N, D) float32 L2-normalised embeddings.
TextEncoder = Callable[[list[str]], np.ndarray]


def embed_pool_captions(pool: str | Path, encode: TextEncoder, batch_size: int = 256) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, captions, embeddings) of every caption of the pool, encoded batch by batch."""
    ids, captions, chunks = [], [], []
    for batch_ids, batch_captions in iter_caption_batches(pool, batch_size):
        ids += batch_ids
        captions += batch_captions
        chunks.append(np.asarray(encode(batch_captions), dtype=np.float32))
    if not ids:
        raise GenBenchError(f"caption pool {str(pool)!r} is empty")
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise GenBenchError(f"caption pool {str(pool)!r} has the id {item_id!r} twice; pool ids must be unique")
        seen.add(item_id)
    return ids, captions, np.concatenate(chunks)


def write_caption_index(out_dir: str | Path, pool: str | Path, encode: TextEncoder, *, model: dict, kind: str = "auto",
                        exact_max: int = 100_000, nprobe: int = 16, batch_size: int = 256, seed: int = 0) -> dict:
    """Embed the pool's captions, build the index and write the index directory; returns its meta."""
    import faiss

    count = count_pool(pool)
    chosen = choose_index_kind(count, kind, exact_max)
    ids, captions, emb = embed_pool_captions(pool, encode, batch_size)
    index = build_index(emb, chosen, nprobe=nprobe, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(out_dir / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
    with storage.atomic_path(out_dir / CAPTIONS_FILE) as tmp:
        pd.DataFrame({"id": ids, "caption": captions}).to_parquet(tmp, index=False)
    meta = {
        "kind": chosen, "requested_kind": kind, "exact_max": exact_max, "count": len(ids), "dim": int(emb.shape[1]),
        "nprobe": nprobe if chosen == "ivfpq" else None, "pool": str(pool), "pool_fingerprint": pool_fingerprint(pool),
        "model": model, "faiss_version": faiss.__version__,
    }
    storage.atomic_write_json(out_dir / META_FILE, meta)
    return meta


@dataclass
class CaptionIndex:
    """A loaded index directory: the FAISS index, row -> (pool id, caption), and its meta."""

    index: object
    ids: np.ndarray
    captions: np.ndarray
    meta: dict

    @staticmethod
    def require(directory: str | Path) -> None:
        """Raise GenBenchError when a file of the index in `directory` is missing."""
        for name in (INDEX_FILE, CAPTIONS_FILE, META_FILE):
            if not (Path(directory) / name).is_file():
                raise GenBenchError(f"{Path(directory) / name} not found; build the index first (genbench index)")

    @classmethod
    def load(cls, directory: str | Path) -> "CaptionIndex":
        import faiss

        directory = Path(directory)
        cls.require(directory)
        index = faiss.read_index(str(directory / INDEX_FILE))
        table = pd.read_parquet(directory / CAPTIONS_FILE)
        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("nprobe") and hasattr(index, "nprobe"):
            index.nprobe = meta["nprobe"]
        if index.ntotal != len(table):
            raise GenBenchError(f"{directory}: index holds {index.ntotal} vectors but captions.parquet {len(table)} rows; rebuild it")
        return cls(index, table["id"].to_numpy(str), table["caption"].to_numpy(str), meta)

    @property
    def exact(self) -> bool:
        return self.meta["kind"] == "flat"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, rows), each (Q, k'), k' = min(k, size), best first; rows index ids/captions."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.index.d:
            raise GenBenchError(f"query dimension {q.shape[1]} does not match the index dimension {self.index.d}; "
                                "query with the CLIP model the index was built with")
        sims, rows = self.index.search(q, min(k, self.index.ntotal))
        return sims, rows
