"""Label maps that the paper's released code got wrong, checked against the datasets' own
documentation: KITTI closest-vehicle distance (VTAB's definition) and Hateful Memes (label 1 is
hateful). Hand-worked examples, not the code's own output."""

import io
import json
import tarfile

import pytest
from PIL import Image

from genbench.datasets import get_dataset
from genbench.datasets.kitti import closest_vehicle_distance_label, parse_label_file
from genbench.errors import GenBenchError

KITTI_CLASSES = (
    "a photo i took of a car on my left or right side.",
    "a photo i took with a car nearby.",
    "a photo i took with a car in the distance.",
    "a photo i took with no car.",
)


@pytest.mark.parametrize("objects, label", [
    ([], 3),                                   # nothing in the image
    ([("Pedestrian", 3.0), ("Cyclist", 4.0)], 3),  # people are not vehicles
    ([("Car", 5.0)], 0),
    ([("Car", 8.0)], 0),                       # 8 m is not beyond the 8 m threshold
    ([("Van", 8.01)], 1),
    ([("Truck", 20.0)], 1),
    ([("Car", 20.5)], 2),
    ([("Car", 60.0), ("Van", 6.0)], 0),        # the closest vehicle decides
    ([("Tram", 4.0), ("Car", 35.0)], 2),       # trams are not among VTAB's vehicles
    ([("Car", 999.5)], 3),                     # beyond VTAB's last threshold counts as no car
])
def test_kitti_closest_vehicle_distance_label(objects, label):
    assert closest_vehicle_distance_label(objects) == label


def test_kitti_label_ids_name_the_documented_classes():
    spec = get_dataset("KITTI Distance")
    assert spec.classnames == KITTI_CLASSES
    assert spec.templates == ("{c}",)
    assert spec.classnames[closest_vehicle_distance_label([("Car", 2.5)])].endswith("on my left or right side.")
    assert spec.classnames[closest_vehicle_distance_label([("Car", 12.0)])].endswith("a car nearby.")
    assert spec.classnames[closest_vehicle_distance_label([("Car", 45.0)])].endswith("in the distance.")
    assert spec.classnames[closest_vehicle_distance_label([])].endswith("no car.")


def test_kitti_object_label_file_format():
    text = (
        "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
        "Van 0.00 1 1.99 200.00 170.00 260.00 210.00 2.10 1.90 4.80 -9.10 1.80 15.25 1.80\n"
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
    )
    objects = parse_label_file(text)
    assert objects == [("Car", 46.70), ("Van", 15.25), ("DontCare", -1000.0)]
    assert closest_vehicle_distance_label(objects) == 1  # the van, 15.25 m away


def test_kitti_mirror_labels_keep_their_meaning(tmp_path):
    base = tmp_path / "wds_vtab-kitti_closest_vehicle_distance"
    (base / "test").mkdir(parents=True)
    with tarfile.open(base / "test" / "0.tar", "w") as tar:
        for i, label in enumerate([3, 0, 2, 1]):
            buf = io.BytesIO()
            Image.new("RGB", (40, 12), (i * 40, 0, 0)).save(buf, format="PNG")
            for ext, data in (("png", buf.getvalue()), ("cls", str(label).encode())):
                info = tarfile.TarInfo(f"{i:06d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (base / "classnames.txt").write_text("\n".join(KITTI_CLASSES) + "\n")
    spec = get_dataset("kitti")
    test = spec.loader("test", tmp_path, 8)
    assert [spec.classnames[k] for k in test.labels] == [KITTI_CLASSES[3], KITTI_CLASSES[0], KITTI_CLASSES[2], KITTI_CLASSES[1]]


def write_memes(root, split_file, rows):
    base = root / "hateful_memes"
    (base / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for meme_id, label in rows:
        Image.new("RGB", (30, 20), (200, label * 200, 10)).save(base / "img" / f"{meme_id}.png")
        lines.append(json.dumps({"id": meme_id, "img": f"img/{meme_id}.png", "label": label, "text": "some caption"}))
    (base / split_file).write_text("\n".join(lines) + "\n")


def test_hateful_memes_label_1_is_hateful(tmp_path):
    # The dataset's README: "label" is 1 for hateful, 0 for not hateful.
    write_memes(tmp_path, "dev_seen.jsonl", [(42953, 0), (23058, 1), (13894, 1)])
    write_memes(tmp_path, "train.jsonl", [(11111, 1), (22222, 0)])
    spec = get_dataset("Hateful Memes")
    assert spec.loader.available(tmp_path).kind == "manual"
    test = spec.loader("test", tmp_path, 10)
    assert test.labels.tolist() == [0, 1, 1]
    assert [spec.classnames[k] for k in test.labels] == ["meme", "hatespeech meme", "hatespeech meme"]
    # the green channel carries the label the file was written with
    assert (test.images[:, :, :, 1].mean(axis=(1, 2)) > 100).tolist() == [False, True, True]
    assert spec.extra["positive_class"] == spec.classnames.index("hatespeech meme") == 1
    assert spec.loader("train", tmp_path, 10).labels.tolist() == [1, 0]


def test_hateful_memes_rejects_unknown_labels(tmp_path):
    write_memes(tmp_path, "dev_seen.jsonl", [(1, 0)])
    path = tmp_path / "hateful_memes" / "dev_seen.jsonl"
    path.write_text(path.read_text() + json.dumps({"id": 2, "img": "img/1.png", "label": 2}) + "\n")
    with pytest.raises(GenBenchError, match="label 2, expected 0 or 1"):
        get_dataset("hateful-memes").loader("test", tmp_path, 8)
