"""Image sets read and written without holding them whole: streamed writing gives the same files,
the sample grid reads only the images it shows, retrieval keeps bytes and decodes on demand."""

import hashlib
from pathlib import Path

import numpy as np

from genbench import storage
from genbench.figures.samples import grid_rows
from genbench.retrieval.search import Hit
from genbench.retrieval.select import ClassRetrieval, retrieved_images, select_shots


def files(root: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def test_a_streamed_set_has_the_files_of_a_whole_set_write(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 5, 3), dtype=np.uint8)
    rows = [{"key": f"k{i}", "class_index": i % 2} for i in range(7)]
    storage.write_image_set(tmp_path / "whole", images, rows, shard_size=3)
    taken = []

    def one_at_a_time():
        for image, row in zip(images, rows):
            taken.append(row["key"])
            yield image, row

    storage.write_image_stream(tmp_path / "stream", one_at_a_time(), shard_size=3)
    assert files(tmp_path / "whole") == files(tmp_path / "stream")
    assert sorted(files(tmp_path / "stream")) == ["manifest.parquet"] + [f"shard-0000{i}.{e}" for i in range(3) for e in ("done", "tar")]
    assert taken == [r["key"] for r in rows]


def test_grid_rows_and_load_images_read_only_the_shown_images(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(12, 4, 4, 3), dtype=np.uint8)
    rows = [{"key": f"k{i:02d}", "class_index": [0, 1, 1, 2][i % 4]} for i in range(12)]
    manifest = storage.write_image_set(tmp_path / "set", images, rows, shard_size=5)
    shown = grid_rows(manifest, per_class=2)
    assert shown["key"].tolist() == ["k00", "k01", "k02", "k03", "k04", "k07"]  # class 0: k00 k04; 1: k01 k02; 2: k03 k07
    decoded = []
    real = storage.decode_png
    monkeypatch.setattr(storage, "decode_png", lambda data: decoded.append(1) or real(data))
    got = storage.load_images(tmp_path / "set", shown)
    assert len(decoded) == 6
    np.testing.assert_array_equal(got, images[[0, 1, 2, 3, 4, 7]])


def test_retrieval_keeps_bytes_and_decodes_each_image_when_written():
    def png(value):
        return storage.encode_png(np.full((6, 6, 3), value, np.uint8))

    hits = [Hit(str(i), f"c{i}", 1.0, "q") for i in range(3)]
    kept, _ = select_shots(hits, {"0": png(10), "1": png(20), "2": png(30)}, shots=2, image_size=3)
    assert all(isinstance(k.data, bytes) for k in kept)
    result = ClassRetrieval(0, "a", hits, hits, kept=kept)
    stream = retrieved_images([result])
    first = next(stream)
    assert first.shape == (3, 3, 3) and (first == 10).all()
    assert (next(stream) == 20).all()
