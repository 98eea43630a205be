"""Each source kind reads a tiny fabricated copy in that source's real on-disk format through the
real loader: torchvision's CIFAR-10 pickle batches, an ImageFolder-style EuroSAT, VOC 2007's XML
annotations, a CLIP benchmark WebDataset mirror (tar shards + classnames.txt), a manual download
(Hateful Memes, in test_datasets_labelmaps.py) and a user's image folder. No network."""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genbench.datasets import DATASETS, get_dataset, register_image_folder
from genbench.datasets.sources import label_map, per_class_split
from genbench.errors import GenBenchError


def colour(k: int) -> tuple[int, int, int]:
    """A distinct flat colour per class, so a loaded pixel tells which label the image had."""
    return (20 * k + 10, 250 - 20 * k, (70 * k) % 256)


def encoded(rgb, fmt: str, size=(20, 14)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def label_of(image: np.ndarray, classes: int, tol: int = 6) -> int:
    mean = image.reshape(-1, 3).mean(axis=0)
    hits = [k for k in range(classes) if np.all(np.abs(mean - colour(k)) <= tol)]
    assert len(hits) == 1, (mean, hits)
    return hits[0]


# --- torchvision: CIFAR-10's python pickle batches -------------------------------------------

def write_cifar10(root: Path, test_labels: list[int]) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)

    def batch(labels):
        data = np.stack([np.tile(np.array(colour(k), np.uint8)[:, None], (1, 1024)).reshape(3072) for k in labels])
        return {"batch_label": "fabricated", "labels": list(labels), "data": data, "filenames": [f"{i}.png" for i in range(len(labels))]}

    for i in range(1, 6):
        (base / f"data_batch_{i}").write_bytes(pickle.dumps(batch([i % 10, (i + 3) % 10])))
    (base / "test_batch").write_bytes(pickle.dumps(batch(test_labels)))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_cases_per_batch": 2}))


def test_cifar10_pickle_batches_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    # torchvision checks the md5 of the real archive's files, which a fabricated copy cannot match.
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    test_labels = [3, 0, 9, 3, 5, 1]
    write_cifar10(tmp_path, test_labels)
    spec = get_dataset("CIFAR-10")
    assert spec.loader.available(tmp_path).kind == "torchvision"
    test = spec.loader("test", tmp_path, 8)
    assert test.images.shape == (6, 8, 8, 3) and test.images.dtype == np.uint8
    assert test.labels.tolist() == test_labels
    assert [label_of(img, 10, tol=0) for img in test.images] == test_labels
    train = spec.loader("train", tmp_path, 16)
    assert train.labels.tolist() == [1, 4, 2, 5, 3, 6, 4, 7, 5, 8]
    assert train.images.shape == (10, 16, 16, 3)


def test_a_corrupt_torchvision_copy_is_one_user_error(tmp_path):
    write_cifar10(tmp_path, [0, 1])  # md5 of the fabricated files does not match the real archive
    with pytest.raises(GenBenchError) as err:
        get_dataset("cifar-10").loader("test", tmp_path, 8)
    message = str(err.value)
    assert "\n" not in message and "cifar-10" in message and "could not be read" in message
    assert "download=True" in message


# --- torchvision: EuroSAT, an ImageFolder ---------------------------------------------------

EUROSAT_FOLDERS = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake"]


def test_eurosat_image_folder_through_torchvision(tmp_path):
    for k, folder in enumerate(EUROSAT_FOLDERS):
        d = tmp_path / "eurosat" / "2750" / folder
        d.mkdir(parents=True)
        for i in range(3):
            (d / f"{folder}_{i + 1}.jpg").write_bytes(encoded(colour(k), "JPEG", size=(64, 64)))
    spec = get_dataset("eurosat")
    test = spec.loader("test", tmp_path, 12)
    # 3 images per class, fewer than the 500 test images per class of the seeded split: all are test.
    assert len(test) == 30 and len(spec.loader("train", tmp_path, 12)) == 0
    assert sorted(test.labels.tolist()) == sorted(list(range(10)) * 3)
    assert all(label_of(img, 10) == lab for img, lab in zip(test.images, test.labels))
    assert spec.classnames[EUROSAT_FOLDERS.index("SeaLake")] == "lake or sea"


# --- torchvision: VOC 2007 XML annotations, multi-label --------------------------------------

def voc_xml(objects):
    parts = "".join(
        f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        for name, d in objects
    )
    return ("<annotation><folder>VOC2007</folder><filename>x.jpg</filename><size><width>32</width>"
            f"<height>24</height><depth>3</depth></size><segmented>0</segmented>{parts}</annotation>")


def test_voc2007_annotations_give_multi_hot_labels(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    images = {
        "000001": [("dog", 0), ("person", 1)],  # person only difficult: not counted
        "000002": [("cat", 0)],                   # a single object
        "000004": [("dog", 0), ("dog", 0), ("chair", 0), ("tvmonitor", 0)],
    }
    for stem, objects in images.items():
        (voc / "Annotations" / f"{stem}.xml").write_text(voc_xml(objects))
        (voc / "JPEGImages" / f"{stem}.jpg").write_bytes(encoded((90, 90, 90), "JPEG", size=(32, 24)))
    (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(images) + "\n")
    spec = get_dataset("voc2007")
    test = spec.loader("test", tmp_path, 10)
    assert test.labels.shape == (3, 20) and test.images.shape == (3, 10, 10, 3)
    present = [{spec.classnames[j] for j in np.flatnonzero(row)} for row in test.labels]
    assert present == [{"dog"}, {"cat"}, {"dog", "chair", "tvmonitor"}]


# --- CLIP benchmark WebDataset mirror ----------------------------------------------------------

def write_shard(path: Path, samples):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def write_wds(root: Path, repo: str, classnames, split_labels: dict, fmt_cycle=("WEBP", "PNG", "JPEG")):
    base = root / repo
    for split, shards in split_labels.items():
        for s, labels in enumerate(shards):
            samples = []
            for i, k in enumerate(labels):
                fmt = fmt_cycle[(s + i) % len(fmt_cycle)]
                ext = {"WEBP": "webp", "PNG": "png", "JPEG": "jpg"}[fmt]
                samples.append((f"s{s:02d}{i:04d}", {ext: encoded(colour(k), fmt), "cls": str(k).encode()}))
            write_shard(base / split / f"{s}.tar", samples)
        (base / split / "nshards.txt").write_text(str(len(shards)))
    (base / "classnames.txt").write_text("\n".join(classnames) + "\n")
    (base / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")


def test_webdataset_mirror_shards_in_order(tmp_path):
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_wds(tmp_path, "wds_cifar10", names, {"test": [[0, 1, 2], [9, 8]], "train": [[4]]})
    spec = get_dataset("cifar10")
    assert spec.loader.available(tmp_path).kind == "webdataset"
    test = spec.loader("test", tmp_path, 9)
    assert test.labels.tolist() == [0, 1, 2, 9, 8]
    assert [label_of(img, 10) for img in test.images] == [0, 1, 2, 9, 8]
    assert spec.loader("train", tmp_path, 9).labels.tolist() == [4]


def test_webdataset_labels_are_mapped_to_the_registry_order_by_class_name(tmp_path):
    # The FER-2013 mirror lists classes alphabetically; the registry follows the csv's emotion ids.
    mirror = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
    write_wds(tmp_path, "wds_fer2013", mirror, {"test": [[4, 5, 6, 0]]})
    spec = get_dataset("fer-2013")
    test = spec.loader("test", tmp_path, 8)
    assert [spec.classnames[k] for k in test.labels] == ["neutral", "sad", "surprised", "angry"]
    assert test.labels.tolist() == [6, 4, 5, 0]


def test_webdataset_multilabel_npy(tmp_path):
    spec = get_dataset("voc-2007")
    mirror = list(reversed(spec.classnames))  # columns in another order, matched by name
    rows = [np.eye(20, dtype=np.int64)[0] + np.eye(20, dtype=np.int64)[5], np.eye(20, dtype=np.int64)[19]]
    samples = []
    for i, row in enumerate(rows):
        buf = io.BytesIO()
        np.save(buf, row)
        samples.append((f"k{i}", {"png": encoded((1, 2, 3), "PNG"), "npy": buf.getvalue()}))
    write_shard(tmp_path / "wds_voc2007_multilabel" / "test" / "0.tar", samples)
    (tmp_path / "wds_voc2007_multilabel" / "classnames.txt").write_text("\n".join(mirror))
    test = spec.loader("test", tmp_path, 4)
    present = [{spec.classnames[j] for j in np.flatnonzero(r)} for r in test.labels]
    assert present == [{mirror[0], mirror[5]}, {mirror[19]}]


def test_webdataset_copy_without_the_split_or_with_foreign_classes(tmp_path):
    write_wds(tmp_path, "wds_cifar10", ["airplane"] * 3, {"test": [[0, 1]]})
    with pytest.raises(GenBenchError, match="no 'train' split"):
        get_dataset("cifar10").loader("train", tmp_path, 8)
    with pytest.raises(GenBenchError, match="lists 3 classes"):
        get_dataset("cifar10").loader("test", tmp_path, 8)


# --- not available locally -----------------------------------------------------------------------

@pytest.mark.parametrize("name, expect", [
    ("cifar-10", ["torchvision.datasets.CIFAR10(", "download=True", "hf download clip-benchmark/wds_cifar10"]),
    ("imagenet-1k", ["image-net.org", "ILSVRC2012_img_val.tar", "wds_imagenet1k"]),
    ("fer-2013", ["kaggle.com", "fer2013.csv"]),
    ("hateful-memes", ["dev_seen.jsonl", "Meta"]),
    ("kitti-distance", ["wds_vtab-kitti_closest_vehicle_distance"]),
])
def test_missing_data_is_one_message_saying_where_it_looked_and_how_to_get_it(tmp_path, name, expect):
    with pytest.raises(GenBenchError) as err:
        get_dataset(name).loader("test", tmp_path, 8)
    message = str(err.value)
    assert "\n" not in message
    assert name in message and str(tmp_path) in message
    for text in expect:
        assert text in message


def test_bad_split_and_image_size(tmp_path):
    with pytest.raises(GenBenchError, match="split 'val'"):
        get_dataset("mnist").loader("val", tmp_path, 8)
    with pytest.raises(GenBenchError, match="image size"):
        get_dataset("mnist").loader("test", tmp_path, 0)


# --- a user's image folder --------------------------------------------------------------------------

@pytest.fixture
def registered():
    names = []
    yield names
    for name in names:
        DATASETS.pop(name, None)


def make_folder(root: Path, layout: dict):
    for split, classes in layout.items():
        for k, (folder, count) in enumerate(classes):
            d = root / split / folder
            d.mkdir(parents=True)
            for i in range(count):
                (d / f"{i}.png").write_bytes(encoded(colour(k), "PNG"))


def test_image_folder_registration_and_loading(tmp_path, registered):
    make_folder(tmp_path / "mine", {"test": [("golden_retriever", 2), ("tabby_cat", 3)],
                                    "train": [("golden_retriever", 1), ("tabby_cat", 1)]})
    spec = register_image_folder("my-pets", tmp_path / "mine", templates=["a photo of my {c}."])
    registered.append("my-pets")
    assert get_dataset("MY-PETS") is spec and spec.group == "Custom"
    assert spec.classnames == ("golden_retriever", "tabby_cat")
    test = spec.loader("test", tmp_path / "elsewhere", 6)  # an explicit folder ignores the data root
    assert test.labels.tolist() == [0, 0, 1, 1, 1]
    assert [label_of(img, 2) for img in test.images] == [0, 0, 1, 1, 1]
    assert spec.loader("train", tmp_path, 6).labels.tolist() == [0, 1]

    named = register_image_folder("my-pets", tmp_path / "mine", classnames=["tabby cat", "golden retriever"])
    assert named.loader("test", tmp_path, 6).labels.tolist() == [1, 1, 0, 0, 0]


def test_image_folder_errors(tmp_path, registered):
    make_folder(tmp_path / "f", {"test": [("a", 1), ("b", 1)]})
    with pytest.raises(GenBenchError, match="taken by the built-in dataset 'cifar-10'"):
        register_image_folder("CIFAR10", tmp_path / "f")
    with pytest.raises(GenBenchError, match="placeholder"):
        register_image_folder("f1", tmp_path / "f", templates=["a photo"])
    with pytest.raises(GenBenchError, match="metric 'top5'"):
        register_image_folder("f1", tmp_path / "f", metric="top5")
    with pytest.raises(GenBenchError, match="no test/<class>/"):
        register_image_folder("f1", tmp_path / "empty")
    spec = register_image_folder("f2", tmp_path / "f", classnames=["a"])
    registered.append("f2")
    with pytest.raises(GenBenchError, match="folder .* is not one of its classes"):
        spec.loader("test", tmp_path, 4)


# --- helpers ------------------------------------------------------------------------------------------

def test_label_map_rules():
    ours = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]
    assert label_map(None, ours, "x").tolist() == list(range(7))
    assert label_map(["Angry", "Disgusted", "Fearful", "Happy", "Sad", "Surprised", "Neutral"], ours, "x").tolist() == list(range(7))
    alphabetical = sorted(ours)
    assert [ours[i] for i in label_map(alphabetical, ours, "x")] == alphabetical
    assert label_map([f"{d} - x" for d in range(7)], ours, "x").tolist() == list(range(7))
    with pytest.raises(GenBenchError):
        label_map(["a", "b"], ours, "x")


def test_per_class_split_is_disjoint_seeded_and_sized():
    labels = np.repeat(np.arange(4), [10, 7, 5, 2])
    test = per_class_split(labels, "test", test_per_class=3)
    train = per_class_split(labels, "train", test_per_class=3)
    assert set(test) & set(train) == set() and len(test) + len(train) == len(labels)
    assert np.bincount(labels[test]).tolist() == [3, 3, 3, 2]
    assert per_class_split(labels, "test", test_per_class=3).tolist() == test.tolist()
    assert np.bincount(labels[per_class_split(labels, "train", train_per_class=4)]).tolist() == [4, 4, 4, 2]


# --- manual download: RESISC-45's class folders ---------------------------------------------------

def test_resisc45_class_folders(tmp_path):
    spec = get_dataset("RESISC-45")
    for k, name in enumerate(spec.classnames):
        d = tmp_path / "NWPU-RESISC45" / name.replace(" ", "_")
        d.mkdir(parents=True)
        for i in range(2):
            (d / f"{name.replace(' ', '_')}_{i + 1:03d}.jpg").write_bytes(encoded((5 * k, 100, 200), "JPEG", size=(32, 32)))
    assert spec.loader.available(tmp_path).kind == "manual"
    test = spec.loader("test", tmp_path, 8)
    # 2 images per class, fewer than the 560 test images per class of the seeded split: all are test.
    assert np.bincount(test.labels).tolist() == [2] * 45
    red = test.images[..., 0].reshape(len(test), -1).mean(axis=1)
    assert np.all(np.abs(red - 5 * test.labels) <= 4)
    assert spec.classnames[int(test.labels[np.argmax(red)])] == "wetland"
