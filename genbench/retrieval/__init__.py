"""The retrieval baseline of GenBench: caption pools, a FAISS index over their CLIP text
embeddings, text-to-text search per class, the retrieved image set, mean text similarity, and
the reference filter textual inversion uses on retrieved images.

Modules: `pool` (read and write pools), `embedded_pool` (the embedded default's noisy digits
pool), `index` (build and load the index), `search` (local search, query modes), `remote`
(a clip-retrieval KNN service), `select` (shots per class, manifest rows, MTS), `filter`
(captioner + similarity reference filter).
"""

from genbench.retrieval.index import CaptionIndex, choose_index_kind, write_caption_index
from genbench.retrieval.pool import PoolItem, count_pool, iter_pool, write_parquet_pool, write_webdataset_pool
from genbench.retrieval.search import Hit, LocalSearcher, class_queries, merge_hits
from genbench.retrieval.select import ClassRetrieval, mts_summary, retrieve_classes, retrieved_rows

__all__ = [
    "CaptionIndex",
    "ClassRetrieval",
    "Hit",
    "LocalSearcher",
    "PoolItem",
    "choose_index_kind",
    "class_queries",
    "count_pool",
    "iter_pool",
    "merge_hits",
    "mts_summary",
    "retrieve_classes",
    "retrieved_rows",
    "write_caption_index",
    "write_parquet_pool",
    "write_webdataset_pool",
]
