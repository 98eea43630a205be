"""Label-first access: every source kind gives a split's labels without decoding an image, and
decodes exactly the images asked for, the same pixels as the whole-split loader."""

import io

import numpy as np
import pytest

from genbench.datasets import DATASETS, get_dataset, register_image_folder
from genbench.datasets import sources, torchvision_source, webdataset_source
from genbench.datasets.access import SplitReader
from genbench.errors import GenBenchError
from test_datasets_sources import encoded, make_folder, voc_xml, write_cifar10, write_shard, write_wds


@pytest.fixture
def decodes(monkeypatch):
    """How many images the sources have turned into arrays."""
    count = [0]
    for module in (sources, torchvision_source, webdataset_source):
        real = module.square_rgb

        def counting(image, size, real=real):
            count[0] += 1
            return real(image, size)

        monkeypatch.setattr(module, "square_rgb", counting)
    return count


def check_label_first(spec, root, size, expected_labels, chosen, decodes):
    reader = spec.open_split("test", root, size)
    assert isinstance(reader, SplitReader) and decodes[0] == 0
    np.testing.assert_array_equal(reader.labels, expected_labels)
    got = reader.decode(chosen, workers=2)
    assert decodes[0] == len(chosen)
    whole = spec.loader("test", root, size)
    np.testing.assert_array_equal(got, whole.images[chosen])
    batches = list(reader.batches(list(range(len(reader))), batch_size=2, workers=2))
    assert [len(b) for b in batches] == [2] * (len(reader) // 2) + ([1] if len(reader) % 2 else [])
    np.testing.assert_array_equal(np.concatenate(batches), whole.images)


def test_torchvision_cifar10(tmp_path, monkeypatch, decodes):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    write_cifar10(tmp_path, [3, 0, 9, 3, 5])
    check_label_first(get_dataset("cifar-10"), tmp_path, 8, [3, 0, 9, 3, 5], [4, 1], decodes)


def test_torchvision_voc_multi_hot(tmp_path, decodes):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    objects = {"000001": [("dog", 0), ("person", 1)], "000002": [("cat", 0), ("chair", 0)], "000003": [("cat", 1)]}
    for k, (stem, objs) in enumerate(objects.items()):
        (voc / "Annotations" / f"{stem}.xml").write_text(voc_xml(objs))
        (voc / "JPEGImages" / f"{stem}.jpg").write_bytes(encoded((40 * k, 90, 90), "JPEG", size=(32, 24)))
    (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(objects) + "\n")
    spec = get_dataset("voc-2007")
    expected = np.zeros((3, 20), dtype=np.int64)
    for row, names in enumerate([["dog"], ["cat", "chair"], []]):
        for name in names:
            expected[row, spec.classnames.index(name)] = 1
    check_label_first(spec, tmp_path, 10, expected, [2, 0], decodes)


def test_webdataset_mirror(tmp_path, decodes):
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_wds(tmp_path, "wds_cifar10", names, {"test": [[0, 1, 2], [9, 8]]})
    check_label_first(get_dataset("cifar10"), tmp_path, 9, [0, 1, 2, 9, 8], [3], decodes)


def test_webdataset_multilabel_and_unlabelled_samples(tmp_path, decodes):
    spec = get_dataset("voc-2007")
    row = np.eye(20, dtype=np.int64)[4]
    buf = io.BytesIO()
    np.save(buf, row)
    write_shard(tmp_path / "wds_voc2007_multilabel" / "test" / "0.tar",
                [("k0", {"png": encoded((1, 2, 3), "PNG"), "npy": buf.getvalue()}), ("k1", {"txt": b"no image"})])
    (tmp_path / "wds_voc2007_multilabel" / "classnames.txt").write_text("\n".join(spec.classnames))
    check_label_first(spec, tmp_path, 4, row[None], [0], decodes)
    write_shard(tmp_path / "wds_voc2007_multilabel" / "test" / "0.tar", [("k0", {"png": encoded((1, 2, 3), "PNG")})])
    with pytest.raises(GenBenchError, match="no .cls or .npy label"):
        spec.open_split("test", tmp_path, 4)


def test_image_folder(tmp_path, decodes):
    make_folder(tmp_path / "mine", {"test": [("ant", 2), ("bee", 3)]})
    spec = register_image_folder("access-folder", tmp_path / "mine")
    try:
        check_label_first(spec, tmp_path, 6, [0, 0, 1, 1, 1], [4, 0, 2], decodes)
    finally:
        DATASETS.pop("access-folder", None)


def test_a_file_that_breaks_at_decode_time_is_one_user_error(tmp_path):
    make_folder(tmp_path / "mine", {"test": [("ant", 2)]})
    (tmp_path / "mine" / "test" / "ant" / "1.png").write_bytes(b"truncated")
    spec = register_image_folder("access-broken", tmp_path / "mine")
    try:
        reader = spec.open_split("test", tmp_path, 6)
        assert reader.decode([0]).shape == (1, 6, 6, 3)
        with pytest.raises(GenBenchError, match="could not be read .* replace it"):
            reader.decode([1])
    finally:
        DATASETS.pop("access-broken", None)


def test_digits_reader_matches_the_whole_split_loader():
    spec = get_dataset("digits")
    reader = spec.open_split("test", ".", 16)
    whole = spec.loader("test", ".", 16)
    np.testing.assert_array_equal(reader.labels, whole.labels)
    np.testing.assert_array_equal(reader.decode([5, 0, 539]), whole.images[[5, 0, 539]])
