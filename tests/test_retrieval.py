"""Caption pools, the FAISS index, text-to-text search, shot selection, MTS and the remote backend.

Search results are checked against brute-force numpy rankings of hand-made embeddings, and MTS
against a hand-worked example."""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from genbench import storage
from genbench.errors import GenBenchError
from genbench.retrieval.embedded_pool import composition, make_digits_pool
from genbench.retrieval.index import CaptionIndex, choose_index_kind, write_caption_index
from genbench.retrieval.pool import (
    PoolItem,
    count_pool,
    fetch_items,
    iter_caption_batches,
    iter_pool,
    pool_files,
    read_column,
    write_parquet_pool,
    write_webdataset_pool,
)
from genbench.retrieval.remote import RemoteSearcher
from genbench.retrieval.search import Hit, LocalSearcher, class_queries, merge_hits
from genbench.retrieval.select import ClassRetrieval, KeptImage, label_precision, mts_summary, retrieve_classes, select_shots


def png(value: int, size: int = 8) -> bytes:
    return storage.encode_png(np.full((size, size, 3), value, np.uint8))


def normalise(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# A hand-made pool: each caption has a fixed embedding, so the nearest captions of a query are known.
VECTORS = {
    "a cat": [1.0, 0.0, 0.0, 0.0],
    "a small cat": [0.9, 0.1, 0.0, 0.0],
    "a cat on a sofa": [0.8, 0.0, 0.3, 0.0],
    "a dog": [0.0, 1.0, 0.0, 0.0],
    "a big dog": [0.1, 0.9, 0.0, 0.1],
    "a car": [0.0, 0.0, 0.0, 1.0],
    "a red car": [0.0, 0.1, 0.1, 0.9],
    "sunset": [0.0, 0.0, 1.0, 0.0],
    "cat": [1.0, 0.05, 0.0, 0.0],
    "dog": [0.05, 1.0, 0.0, 0.0],
    "photo of a cat": [0.95, 0.0, 0.1, 0.0],
    "photo of a dog": [0.0, 0.95, 0.1, 0.0],
}


def encode(texts):
    return normalise([VECTORS[t] for t in texts]).astype(np.float32)


POOL_CAPTIONS = ["a cat", "a small cat", "a cat on a sofa", "a dog", "a big dog", "a car", "a red car", "sunset"]


@pytest.fixture
def hand_pool(tmp_path):
    items = [PoolItem(f"id{i}", c, png(20 * i), {"label": i}) for i, c in enumerate(POOL_CAPTIONS)]
    write_parquet_pool(tmp_path / "pool", items, shard_size=3)
    write_caption_index(tmp_path / "index", tmp_path / "pool", encode, model={"name": "hand"})
    return tmp_path


def brute_force(query, k):
    emb = encode(POOL_CAPTIONS).astype(np.float64)
    sims = emb @ query
    order = np.argsort(-sims, kind="stable")[:k]
    return [POOL_CAPTIONS[i] for i in order], sims[order]


def test_parquet_and_webdataset_pools_read_back(tmp_path):
    items = [PoolItem(f"k{i}", f"caption {i}", png(i), {"label": i % 3}) for i in range(7)]
    write_parquet_pool(tmp_path / "pq", items, shard_size=3)
    write_webdataset_pool(tmp_path / "wds" / "000.tar", items)
    assert pool_files(tmp_path / "pq")[0] == "parquet" and len(pool_files(tmp_path / "pq")[1]) == 3
    for path in (tmp_path / "pq", tmp_path / "wds"):
        back = list(iter_pool(path))
        assert [(b.id, b.caption, b.image, b.extra["label"]) for b in back] == [(i.id, i.caption, i.image, i.extra["label"]) for i in items]
        assert count_pool(path) == 7
        assert fetch_items(path, {"k5", "k1"})["k5"].image == png(5)
        batches = list(iter_caption_batches(path, 4))
        assert [len(ids) for ids, _ in batches] == [4, 3] and batches[1][1] == ["caption 4", "caption 5", "caption 6"]
    assert read_column(tmp_path / "pq", "label") == {f"k{i}": i % 3 for i in range(7)}
    assert read_column(tmp_path / "wds", "label") is None


def test_laion_style_parquet_columns(tmp_path):
    # img2dataset / Hugging Face layouts: key, text, and image bytes in a struct.
    table = pa.table({"key": ["000001", "000002"], "text": ["a cat", None], "url": ["http://127.0.0.1/img/1", "http://127.0.0.1/img/2"],
                      "jpg": [{"bytes": png(1), "path": None}, {"bytes": png(2), "path": None}]})
    (tmp_path / "laion").mkdir()
    pq.write_table(table, tmp_path / "laion" / "00000.parquet")
    items = list(iter_pool(tmp_path / "laion"))
    assert [(i.id, i.caption, i.image, i.extra) for i in items] == [
        ("000001", "a cat", png(1), {"url": "http://127.0.0.1/img/1"}), ("000002", "", png(2), {"url": "http://127.0.0.1/img/2"})]


def test_bad_pools_are_named(tmp_path):
    with pytest.raises(GenBenchError, match="not found"):
        pool_files(tmp_path / "nope")
    (tmp_path / "mixed").mkdir()
    write_parquet_pool(tmp_path / "mixed", [PoolItem("a", "x", png(0))])
    write_webdataset_pool(tmp_path / "mixed" / "a.tar", [PoolItem("b", "y", png(0))])
    with pytest.raises(GenBenchError, match="mixes parquet and tar"):
        pool_files(tmp_path / "mixed")
    (tmp_path / "nocap").mkdir()
    pq.write_table(pa.table({"id": ["a"], "image": [png(0)]}), tmp_path / "nocap" / "0.parquet")
    with pytest.raises(GenBenchError, match="no caption column"):
        list(iter_pool(tmp_path / "nocap"))
    write_parquet_pool(tmp_path / "dup", [PoolItem("a", "a cat", png(0)), PoolItem("a", "a dog", png(1))])
    with pytest.raises(GenBenchError, match="id 'a' twice"):
        write_caption_index(tmp_path / "i", tmp_path / "dup", encode, model={})


def test_index_kind_is_chosen_by_size():
    assert choose_index_kind(100, "auto", exact_max=1000) == "flat"
    assert choose_index_kind(1000, "auto", exact_max=1000) == "flat"
    assert choose_index_kind(1001, "auto", exact_max=1000) == "ivfpq"
    assert choose_index_kind(10, "hnsw") == "hnsw"
    with pytest.raises(GenBenchError, match="'lsh' is not one of"):
        choose_index_kind(10, "lsh")


def test_search_returns_the_known_nearest_captions(hand_pool):
    index = CaptionIndex.load(hand_pool / "index")
    assert index.meta["kind"] == "flat" and index.meta["count"] == len(POOL_CAPTIONS)
    searcher = LocalSearcher(index, encode)
    hits = searcher.search(["cat"], 3)
    expected, sims = brute_force(encode(["cat"])[0].astype(np.float64), 3)
    assert [h.caption for h in hits] == expected == ["a cat", "a small cat", "a cat on a sofa"]
    np.testing.assert_allclose([h.similarity for h in hits], sims, atol=1e-6)
    assert [h.pool_id for h in hits] == ["id0", "id1", "id2"]


def test_mean_query_is_the_renormalised_mean_of_template_embeddings(hand_pool):
    searcher = LocalSearcher(CaptionIndex.load(hand_pool / "index"), encode)
    texts = ["cat", "photo of a cat"]
    query = normalise(encode(texts).astype(np.float64).mean(axis=0))
    hits = searcher.search(texts, 4, "mean")
    expected, sims = brute_force(query, 4)
    assert [h.caption for h in hits] == expected
    np.testing.assert_allclose([h.similarity for h in hits], sims, atol=1e-6)
    assert hits[0].query == "cat | photo of a cat"


def test_per_template_query_merges_by_id_keeping_the_best(hand_pool):
    searcher = LocalSearcher(CaptionIndex.load(hand_pool / "index"), encode)
    hits = searcher.search(["cat", "dog"], 4, "per_template")
    per = {}
    for t in ("cat", "dog"):
        caps, sims = brute_force(encode([t])[0].astype(np.float64), 4)
        for c, s in zip(caps, sims):
            if s > per.get(c, (-2, ""))[0]:
                per[c] = (s, t)
    expected = sorted(per.items(), key=lambda kv: -kv[1][0])[:4]
    assert [(h.caption, h.query) for h in hits] == [(c, q) for c, (_, q) in expected]
    assert len({h.pool_id for h in hits}) == 4


def test_merge_hits_deduplicates():
    a = [Hit("1", "x", 0.5, "q1"), Hit("2", "y", 0.4, "q1")]
    b = [Hit("1", "x", 0.7, "q2"), Hit("3", "z", 0.1, "q2")]
    merged = merge_hits([a, b], 10)
    assert [(h.pool_id, h.similarity, h.query) for h in merged] == [("1", 0.7, "q2"), ("2", 0.4, "q1"), ("3", 0.1, "q2")]


def test_compressed_index_finds_the_exact_neighbours_and_rescoring_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    centres = normalise(rng.normal(size=(40, 16)))
    emb = normalise(centres[rng.integers(40, size=3000)] + 0.15 * rng.normal(size=(3000, 16))).astype(np.float32)
    captions = [f"c{i}" for i in range(3000)]
    table = dict(zip(captions, emb))
    enc = lambda texts: np.stack([table[t] for t in texts])  # noqa: E731
    write_parquet_pool(tmp_path / "pool", [PoolItem(c, c, b"") for c in captions], shard_size=1000)
    meta = write_caption_index(tmp_path / "index", tmp_path / "pool", enc, model={}, exact_max=1000, nprobe=8)
    assert meta["kind"] == "ivfpq"
    index = CaptionIndex.load(tmp_path / "index")
    searcher = LocalSearcher(index, enc)
    found = 0
    for q in range(50):
        exact = np.argsort(-(emb @ emb[q]))[:5]
        hits = searcher.search([captions[q]], 5)
        found += len({h.caption for h in hits} & {captions[i] for i in exact})
        np.testing.assert_allclose([h.similarity for h in hits], [float(table[h.caption] @ emb[q]) for h in hits], atol=1e-5)
    assert found / 250 >= 0.8  # recall@5 of the compressed index against exact search


def test_select_shots_skips_unreadable_and_duplicate_images():
    hits = [Hit(str(i), f"c{i}", 1 - i / 10, "q") for i in range(6)]
    images = {"0": png(10), "1": png(10), "2": b"not an image", "3": None, "4": png(40), "5": png(50)}
    kept, skipped = select_shots(hits, images, shots=2, image_size=4)
    assert [(k.hit.pool_id, k.rank) for k in kept] == [("0", 0), ("4", 4)]
    assert [(h.pool_id, why) for h, why in skipped] == [("1", "duplicate"), ("2", "unreadable"), ("3", "missing")]
    assert kept[0].image.shape == (4, 4, 3) and kept[0].sha256 == storage.sha256_bytes(png(10))


def test_non_square_images_are_centre_cropped():
    wide = np.zeros((4, 8, 3), np.uint8)
    wide[:, 2:6] = 255  # the centre 4x4 square is white
    kept, _ = select_shots([Hit("a", "c", 1.0, "q")], {"a": storage.encode_png(wide)}, 1, 4)
    assert (kept[0].image == 255).all()


def test_mts_matches_a_hand_worked_example():
    # class a: top-k similarities 0.9, 0.7, 0.5 -> 0.7; class b: 0.4, 0.2 -> 0.3; dataset: (0.7 + 0.3) / 2 = 0.5
    a = ClassRetrieval(0, "a", hits=[], mts_hits=[Hit(str(i), "", s, "a") for i, s in enumerate([0.9, 0.7, 0.5])])
    b = ClassRetrieval(1, "b", hits=[], mts_hits=[Hit(str(i), "", s, "b") for i, s in enumerate([0.4, 0.2])])
    a.kept = [KeptImage(Hit("x", "", 0.8, "a"), 0, b"", "s", 1)]
    summary = mts_summary([a, b])
    assert summary["mts"] == pytest.approx(0.5)
    assert summary["mts_per_class"] == pytest.approx({"a": 0.7, "b": 0.3})
    assert summary["kept_similarity_per_class"] == {"a": pytest.approx(0.8), "b": None}
    assert summary["mts_k"] == {"a": 3, "b": 2}


def test_retrieve_classes_end_to_end_on_the_hand_pool(hand_pool):
    searcher = LocalSearcher(CaptionIndex.load(hand_pool / "index"), encode)
    results = retrieve_classes(searcher, ["cat", "dog"], ["{c}", "photo of a {c}"], top_k=3, shots=2, mts_query="name",
                               mts_top_k=3, image_size=8)
    assert [k.hit.caption for k in results[0].kept] == ["a cat", "a small cat"]
    assert [k.hit.caption for k in results[1].kept] == ["a dog", "a big dog"]
    name_hits = brute_force(encode(["dog"])[0].astype(np.float64), 3)
    np.testing.assert_allclose([h.similarity for h in results[1].mts_hits], name_hits[1], atol=1e-6)
    labels = read_column(hand_pool / "pool", "label")
    assert label_precision(results, {k: (0 if v in (0, 1, 2) else 1 if v in (3, 4) else -1) for k, v in labels.items()})["label_precision"] == 1.0
    with pytest.raises(GenBenchError, match="exceeds top_k"):
        retrieve_classes(searcher, ["cat"], ["{c}"], top_k=2, shots=3)


class RankedSearcher:
    """Hits c0, c1, ... with similarities 1.00, 0.99, 0.98, ... for any query, as deep as asked."""

    def search(self, texts, k, mode):
        return [Hit(f"id{i}", f"c{i}", 1.0 - 0.01 * i, texts[0]) for i in range(k)]

    def images(self, hits):
        return {h.pool_id: png(int(h.pool_id[2:])) for h in hits}


def test_mts_averages_its_own_depth_not_top_k():
    # top_k 32 for the images, MTS over the top 10: mean(1.00 ... 0.91) = 0.955 (all 32 would give 0.845)
    results = retrieve_classes(RankedSearcher(), ["cat"], ["{c}"], top_k=32, shots=4, mts_top_k=10, image_size=8)
    assert len(results[0].hits) == 32 and len(results[0].mts_hits) == 10
    assert mts_summary(results)["mts"] == pytest.approx(0.955)
    assert mts_summary(retrieve_classes(RankedSearcher(), ["cat"], ["{c}"], top_k=32, shots=4, image_size=8))["mts"] \
        == pytest.approx(0.955)  # 10 by default
    with pytest.raises(GenBenchError, match="mts_top_k = 40"):
        retrieve_classes(RankedSearcher(), ["cat"], ["{c}"], top_k=32, shots=4, mts_top_k=40, mts_query="templates")


def test_mts_rescored_in_another_text_space_by_hand(hand_pool):
    # MTS space: another encoder, in which "sunset" and "a car" are near "cat". The MTS search goes
    # max(top_k, mts_top_k) = 8 deep in the index (every caption), re-scores, keeps the best 2.
    other = {**VECTORS, "sunset": [1.0, 0.05, 0.0, 0.0], "a car": [1.0, 0.05, 0.01, 0.0]}  # sunset is "cat" itself

    def rescore(query, captions):
        emb = normalise([other[c] for c in [query, *captions]])
        return emb[1:] @ emb[0]

    searcher = LocalSearcher(CaptionIndex.load(hand_pool / "index"), encode)
    results = retrieve_classes(searcher, ["cat"], ["{c}"], top_k=8, shots=2, mts_top_k=2, mts_rescore=rescore, image_size=8)
    emb = normalise([other[c] for c in ["cat", *POOL_CAPTIONS]])
    best = np.sort(emb[1:] @ emb[0])[::-1][:2]
    assert [h.caption for h in results[0].mts_hits] == ["sunset", "a car"]
    np.testing.assert_allclose([h.similarity for h in results[0].mts_hits], best)
    assert mts_summary(results)["mts"] == pytest.approx(best.mean())
    assert [k.hit.caption for k in results[0].kept] == ["a cat", "a small cat"]  # retrieval stays in the index's space


def test_class_queries_fill_every_template():
    assert class_queries("3", ["a photo of the digit {c}.", "{c}"]) == ["a photo of the digit 3.", "3"]


class KnnHandler(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/img/b.png":
            body = png(77)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        KnnHandler.requests.append(payload)
        if self.path != "/knn-service":
            self.send_response(500)
            self.end_headers()
            return
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        sims = {"3": (0.9, 0.6), "three": (0.8, 0.7)}[payload["text"].split()[-1]]
        results = [
            {"id": 1, "caption": "a", "url": None, "similarity": sims[0], "image": base64.b64encode(png(11)).decode()},
            {"id": 2, "caption": "b", "url": f"{host}/img/b.png", "similarity": sims[1]},
            {"id": 3, "caption": "c", "url": f"{host}/img/dead.png", "similarity": 0.1},
        ][: payload["num_images"]]
        body = json.dumps(results).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def knn_server():
    KnnHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KnnHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_backend_talks_to_a_knn_service(knn_server):
    searcher = RemoteSearcher(f"{knn_server}/knn-service", "laion_400m")
    hits = searcher.search(["digit 3", "digit three"], 3, "per_template")
    assert [(h.pool_id, h.similarity, h.query) for h in hits] == [("1", 0.9, "digit 3"), ("2", 0.7, "digit three"), ("3", 0.1, "digit 3")]
    sent = KnnHandler.requests[0]
    assert sent["modality"] == "text" and sent["text"] == "digit 3" and sent["num_images"] == 3 and sent["indice_name"] == "laion_400m"
    images = searcher.images(hits)
    assert images == {"1": png(11), "2": png(77), "3": None}
    results = retrieve_classes(searcher, ["3"], ["digit {c}"], top_k=3, shots=3, mode="per_template", mts_query="templates",
                               mts_top_k=3, image_size=8)
    assert [k.hit.pool_id for k in results[0].kept] == ["1", "2"] and results[0].skipped[0][1] == "missing"
    with pytest.raises(GenBenchError, match="needs the local index"):
        searcher.search(["digit 3"], 3, "mean")


def test_remote_backend_errors_name_the_url(knn_server):
    with pytest.raises(GenBenchError, match="answered HTTP 500"):
        RemoteSearcher(f"{knn_server}/wrong", "x").search(["digit 3"], 1, "per_template")
    with pytest.raises(GenBenchError, match="cannot reach the KNN service at http://127.0.0.1:9/knn-service"):
        RemoteSearcher("http://127.0.0.1:9/knn-service", "x", timeout=2).search(["digit 3"], 1, "per_template")
    with pytest.raises(GenBenchError, match="must be an http"):
        RemoteSearcher("knn.example/knn-service", "x")


def test_embedded_pool_is_deterministic_noisy_and_train_only():
    from pathlib import Path

    from genbench.datasets.digits import load

    items = make_digits_pool(16, seed=3, per_class=20, wrong_fraction=0.2, vague_fraction=0.2, distractor_fraction=0.1)
    again = make_digits_pool(16, seed=3, per_class=20, wrong_fraction=0.2, vague_fraction=0.2, distractor_fraction=0.1)
    assert [(i.id, i.caption, i.image) for i in items] == [(i.id, i.caption, i.image) for i in again]
    kinds = composition(items)
    assert sum(kinds.values()) == 220 and kinds["distractor"] == 20
    assert 20 <= kinds["wrong"] <= 60 and 20 <= kinds["vague"] <= 60  # about 20% each of 200
    train = load("train", Path("."), 16)
    for item in items:
        if item.extra["kind"] == "distractor":
            assert item.extra["label"] == -1 and item.extra["source_index"] == -1
        else:
            assert train.labels[item.extra["source_index"]] == item.extra["label"]
    wrong = [i for i in items if i.extra["kind"] == "wrong"]
    assert all(str(i.extra["label"]) not in i.caption for i in wrong)
    assert Image.open(io.BytesIO(items[0].image)).size == (16, 16)
    assert make_digits_pool(16, seed=4, per_class=20)[0].image != items[0].image
    with pytest.raises(GenBenchError, match="must not exceed 1"):
        make_digits_pool(16, wrong_fraction=0.6, vague_fraction=0.6)
