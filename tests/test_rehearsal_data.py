"""Stand-in data for the rehearsal, read back through the kit's own readers: each of the 22
datasets through `get_dataset(name).loader` (torchvision's parsers where torchvision is the
source), the caption pool through `genbench.retrieval.pool` and a local caption search."""

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genbench.datasets import GENBENCH, get_dataset
from genbench.datasets.standin import STANDIN_ENV
from genbench.errors import GenBenchError
from genbench.rehearsal.data import (ALL_DATASETS, MARKER, WRITERS, write_standin_data,
                                     write_standin_dataset, write_standin_pool)
from genbench.retrieval.index import CaptionIndex, write_caption_index
from genbench.retrieval.pool import count_pool, iter_pool
from genbench.retrieval.search import LocalSearcher

TRAIN, TEST, SIZE = 2, 1, 16


@pytest.fixture(autouse=True)
def standin_switch(monkeypatch):
    monkeypatch.setenv(STANDIN_ENV, "1")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("standin")
    records = write_standin_data(ALL_DATASETS, root, train_per_class=TRAIN, test_per_class=TEST, image_size=SIZE, seed=0)
    return root, {r["name"]: r for r in records}


def test_every_registered_dataset_has_a_stand_in():
    assert set(WRITERS) == {spec.name for spec in GENBENCH} and len(WRITERS) == 22
    assert sum(get_dataset(n).num_classes for n in WRITERS) == 2548


def expected_per_class(name: str) -> dict[str, int]:
    """Images per class the reader must see: the request, or what the reader's split rule fixes,
    checked against Table 4's validation sizes (SUN-397 19,850, EuroSAT 5,000, RESISC-45 25,200)."""
    spec = get_dataset(name)
    expected = {"train": TRAIN, "test": TEST}
    if name == "caltech-101":
        expected["train"] = 30
    elif name in ("sun-397", "eurosat", "resisc-45"):
        expected["test"] = spec.extra["paper_validation_size"] // spec.num_classes
    return expected


def nearest_mean_accuracy(train, test, classes: int) -> float:
    x = train.images.reshape(len(train), -1).astype(np.float64)
    means = np.stack([x[train.labels == k].mean(axis=0) for k in range(classes)])
    y = test.images.reshape(len(test), -1).astype(np.float64)
    d = (y ** 2).sum(axis=1)[:, None] - 2 * y @ means.T + (means ** 2).sum(axis=1)[None, :]
    return float((d.argmin(axis=1) == test.labels).mean())


@pytest.mark.parametrize("name", [n for n in ALL_DATASETS if n != "voc-2007"])
def test_single_label_stand_in_reads_back_through_the_kit_loader(written, name):
    root, records = written
    spec, record = get_dataset(name), records[name]
    assert spec.loader.available(root) is spec.loader.sources[0]
    assert record["layout"] == spec.loader.sources[0].kind and Path(record["path"]).is_dir()
    assert record["bytes"] > 0 and record["images"] > 0
    expected = expected_per_class(name)
    splits = {}
    for split in ("train", "test"):
        data = spec.loader(split, root, SIZE)
        splits[split] = data
        counts = np.bincount(data.labels, minlength=spec.num_classes)
        assert counts.tolist() == [expected[split]] * spec.num_classes, split
        assert record["per_class"][split] == counts.tolist()
        assert data.images.shape == (len(data), SIZE, SIZE, 3)
    assert record["images"] == len(splits["train"]) + len(splits["test"])
    # the images carry their labels: each test image is nearest to its own class's training mean
    assert nearest_mean_accuracy(splits["train"], splits["test"], spec.num_classes) >= 0.9


def xml_positives(voc: Path, image_set: str, classnames) -> np.ndarray:
    """Multi-hot labels parsed from the XML files directly: a class counts unless all its objects
    in the image are difficult."""
    stems = (voc / "ImageSets" / "Main" / f"{image_set}.txt").read_text().split()
    rows = np.zeros((len(stems), len(classnames)), dtype=np.int64)
    for i, stem in enumerate(stems):
        for obj in ET.parse(voc / "Annotations" / f"{stem}.xml").getroot().iter("object"):
            if obj.findtext("difficult") != "1":
                rows[i, classnames.index(obj.findtext("name"))] = 1
    return rows


def test_voc_stand_in_is_multi_label_with_difficult_objects(written):
    root, records = written
    spec = get_dataset("voc-2007")
    voc = root / "VOCdevkit" / "VOC2007"
    difficult = sum(o.findtext("difficult") == "1" for p in (voc / "Annotations").glob("*.xml")
                    for o in ET.parse(p).getroot().iter("object"))
    assert difficult > 0
    for split, image_set in (("train", "trainval"), ("test", "test")):
        data = spec.loader(split, root, SIZE)
        assert data.labels.shape == (len(data), 20) and set(np.unique(data.labels)) <= {0, 1}
        assert (data.labels.sum(axis=1) == 2).any() and (data.labels.sum(axis=1) >= 1).all()
        assert (data.labels.sum(axis=0) >= 1).all()
        assert data.labels.tolist() == xml_positives(voc, image_set, list(spec.classnames)).tolist()
        assert records["voc-2007"]["per_class"][split] == data.labels.sum(axis=0).tolist()


def test_cifar_stand_in_needs_the_switch(written, monkeypatch):
    root, _ = written
    monkeypatch.delenv(STANDIN_ENV)
    with pytest.raises(GenBenchError, match="could not be read"):
        get_dataset("cifar-10").loader("test", root, SIZE)
    monkeypatch.setenv(STANDIN_ENV, "1")
    assert len(get_dataset("cifar-10").loader("test", root, SIZE)) == 10


def test_a_rewrite_replaces_the_stand_in(tmp_path):
    first = write_standin_dataset("dtd", tmp_path, train_per_class=3, test_per_class=2, image_size=SIZE, seed=0)
    second = write_standin_dataset("dtd", tmp_path, train_per_class=1, test_per_class=1, image_size=SIZE, seed=1)
    assert first["images"] == 47 * 5 and second["images"] == 47 * 2
    assert len(get_dataset("dtd").loader("train", tmp_path, SIZE)) == 47
    assert (Path(second["path"]) / MARKER).is_file()


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "caltech-101", "train_per_class": 31}, "exactly 30 train images per class"),
    ({"name": "resisc-45", "test_per_class": 561}, "exactly 560 test"),
    ({"name": "no-such-set"}, "unknown dataset"),
    ({"name": "digits"}, "has no stand-in"),
    ({"name": "dtd", "test_per_class": 0}, "must be a positive integer"),
    ({"name": "dtd", "image_size": 4}, "at least 8 pixels"),
    ({"name": "dtd", "seed": -1}, "non-negative integer"),
])
def test_bad_requests_are_one_user_error(tmp_path, kwargs, message):
    args = {"train_per_class": TRAIN, "test_per_class": TEST, "image_size": SIZE, "seed": 0, **kwargs}
    with pytest.raises(GenBenchError, match=message):
        write_standin_dataset(args.pop("name"), tmp_path, **args)
    assert list(tmp_path.iterdir()) == []


def test_real_data_is_never_overwritten(tmp_path):
    real = tmp_path / "dtd" / "dtd" / "labels"
    real.mkdir(parents=True)
    (real / "test1.txt").write_text("banded/banded_0001.jpg\n")
    with pytest.raises(GenBenchError, match="is not a stand-in"):
        write_standin_dataset("dtd", tmp_path, train_per_class=1, test_per_class=1, image_size=SIZE, seed=0)
    assert (real / "test1.txt").read_text() == "banded/banded_0001.jpg\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dtd"]


# --- caption pool -------------------------------------------------------------------------------

POOL_SETS = ["cifar-10", "dtd", "imagenet-1k"]


class BagOfWords:
    """An independent text encoder: word counts over a fixed vocabulary, L2-normalised."""

    def __init__(self, texts):
        words = sorted({w for t in texts for w in self.words(t)})
        self.index = {w: i for i, w in enumerate(words)}

    @staticmethod
    def words(text):
        return re.findall(r"[a-z0-9]+", text.lower())

    def __call__(self, texts):
        out = np.zeros((len(texts), len(self.index)), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in self.words(text):
                out[i, self.index[word]] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.mark.parametrize("layout", ["parquet", "webdataset"])
def test_pool_reads_back_with_per_class_captions(tmp_path, layout):
    per_class = 3
    record = write_standin_pool(POOL_SETS, tmp_path / "pool", per_class=per_class, seed=0, layout=layout,
                                image_size=SIZE, shard_size=1000)
    items = list(iter_pool(tmp_path / "pool"))
    classes = sum(get_dataset(n).num_classes for n in POOL_SETS)
    assert len(items) == record["items"] == count_pool(tmp_path / "pool")
    assert record["class_items"] == classes * per_class and record["vague"] > 0 and record["distractors"] > 0
    assert record["shards"] == -(-len(items) // 1000)
    assert len({i.id for i in items}) == len(items) and len({i.image for i in items}) == len(items)
    for item in items[:50]:
        assert Image.open(io.BytesIO(item.image)).size == (SIZE, SIZE)
    for name in POOL_SETS:
        by_class = {}
        for item in items:
            if item.extra["dataset"] == name:
                by_class.setdefault(item.extra["class_index"], []).append(item)
        assert sorted(by_class) == list(range(get_dataset(name).num_classes))
        for k, classname in enumerate(get_dataset(name).classnames):
            assert len(by_class[k]) == per_class and all(classname in i.caption for i in by_class[k])
    assert {i.extra["kind"] for i in items} == {"class", "vague", "distractor"}


def test_pool_search_finds_per_class_hits_for_a_class_name(tmp_path):
    per_class = 4
    write_standin_pool(POOL_SETS, tmp_path / "pool", per_class=per_class, seed=0, image_size=SIZE)
    queries = ("automobile", "honeycombed", "goldfish")
    encode = BagOfWords([i.caption for i in iter_pool(tmp_path / "pool", with_images=False)] + list(queries))
    write_caption_index(tmp_path / "index", tmp_path / "pool", encode, model={"name": "bag-of-words"}, kind="flat")
    searcher = LocalSearcher(CaptionIndex.load(tmp_path / "index"), encode)
    for classname in queries:
        hits = searcher.search([classname], per_class)
        assert len(hits) == per_class and all(classname in h.caption for h in hits)
        images = searcher.images(hits)
        assert all(images[h.pool_id] for h in hits)


def test_pool_refuses_bad_input_and_real_pools(tmp_path):
    with pytest.raises(GenBenchError, match="pool layout"):
        write_standin_pool(["dtd"], tmp_path / "pool", per_class=1, seed=0, layout="csv")
    with pytest.raises(GenBenchError, match="at least one dataset"):
        write_standin_pool([], tmp_path / "pool", per_class=1, seed=0)
    real = tmp_path / "laion"
    real.mkdir()
    (real / "00000.parquet").write_bytes(b"real shard")
    with pytest.raises(GenBenchError, match="is not a stand-in"):
        write_standin_pool(["dtd"], real, per_class=1, seed=0)
    assert [p.name for p in real.iterdir()] == ["00000.parquet"]
