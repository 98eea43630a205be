import json
import tarfile

import numpy as np
import pytest

from genbench import storage


def _records(n, offset=0):
    rng = np.random.default_rng(offset)
    return [
        storage.Record(png=storage.encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
                       row={"key": f"img-{offset + i:04d}", "class_index": i % 3})
        for i in range(n)
    ]


def test_shard_round_trip_and_manifest(tmp_path):
    recs = _records(5)
    rows = storage.write_shard(tmp_path, 0, recs, plan_hash="p")
    assert [r["key"] for r in rows] == [f"img-{i:04d}" for i in range(5)]
    assert rows[0]["sha256"] == storage.sha256_bytes(recs[0].png)
    with tarfile.open(tmp_path / "shard-00000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["img-0000.png", "img-0000.json"]  # WebDataset layout: key.ext, grouped by key
    storage.write_manifest(tmp_path, rows)
    images, manifest = storage.load_image_set(tmp_path)
    assert images.shape == (5, 8, 8, 3)
    assert np.array_equal(images[3], storage.decode_png(recs[3].png))
    assert list(manifest["class_index"]) == [0, 1, 2, 0, 1]


def test_completed_shard_requires_sidecar_hash_and_plan(tmp_path):
    storage.write_shard(tmp_path, 0, _records(3), plan_hash="p1")
    assert storage.completed_shard_rows(tmp_path, 0, "p1") is not None
    assert storage.completed_shard_rows(tmp_path, 0, "other-plan") is None
    # a truncated tar no longer matches its recorded sha256
    tar = tmp_path / "shard-00000.tar"
    tar.write_bytes(tar.read_bytes()[:100])
    assert storage.completed_shard_rows(tmp_path, 0, "p1") is None
    # a tar without its sidecar (killed between the two renames) is not complete
    storage.write_shard(tmp_path, 1, _records(2), plan_hash="p1")
    (tmp_path / "shard-00001.done").unlink()
    assert storage.completed_shard_rows(tmp_path, 1, "p1") is None


def test_corrupt_image_is_detected_on_read(tmp_path):
    rows = storage.write_shard(tmp_path, 0, _records(2), plan_hash="p")
    path = tmp_path / "shard-00000.tar"
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    import io

    with tarfile.open(path, "w") as tar:
        for m, data in members:
            if m.name.endswith(".png") and m.name.startswith("img-0001"):
                data = storage.encode_png(np.zeros((8, 8, 3), np.uint8))
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    with pytest.raises(ValueError, match="corrupt"):
        list(storage.iter_shard(path))
    assert json.loads((tmp_path / "shard-00000.done").read_text())["rows"] == rows


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with storage.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_whole(tmp_path):
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with storage.atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_png_encoding_is_deterministic():
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    assert storage.encode_png(img) == storage.encode_png(img.copy())
