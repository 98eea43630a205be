"""prepare at scale: labels first, only the chosen images decoded, the test split streamed into
shards batch by batch, and the same bytes as before on the embedded default."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from genbench import storage
from genbench.datasets import DATASETS, register_image_folder
from genbench.subsample import per_class_subsample
from stages import prepare
from stages.frame.cli import cli
from stages.frame.paths import DatasetPaths
from stages.frame.params import validate_section

FIXTURE = Path(__file__).parent / "data" / "prepare_digits_main.json"
CLASSES = ("ant", "bee", "cat")


@pytest.fixture
def folder(tmp_path):
    """An image folder of 3 classes, 10 train and 12 test images each, every file distinct."""
    rng = np.random.default_rng(1)
    for split, n in (("train", 10), ("test", 12)):
        for cls in CLASSES:
            d = tmp_path / "folder" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
    register_image_folder("scale-folder", tmp_path / "folder")
    yield tmp_path / "folder"
    DATASETS.pop("scale-folder", None)


@pytest.fixture
def opened(monkeypatch):
    """Every image file PIL opens, in order, and how many PNGs the shard writer had encoded then."""
    log, encoded = [], [0]
    real_open, real_encode = Image.open, storage.encode_png

    def spy_open(fp, *args, **kwargs):
        if isinstance(fp, (str, Path)):
            log.append((Path(fp), encoded[0]))
        return real_open(fp, *args, **kwargs)

    def spy_encode(image):
        encoded[0] += 1
        return real_encode(image)

    monkeypatch.setattr(Image, "open", spy_open)
    monkeypatch.setattr(storage, "encode_png", spy_encode)
    return log, encoded


def run_prepare(tmp_path, monkeypatch, **overrides):
    monkeypatch.chdir(tmp_path)
    p = validate_section({"image_size": 8, "shots": 2, "seed": 3, **overrides}, "prepare", prepare.SCHEMA)
    prepare.work(p, DatasetPaths("scale-folder"))
    return tmp_path / "data" / "scale-folder" / "prepared"


def test_only_the_chosen_training_images_are_decoded(tmp_path, monkeypatch, folder, opened):
    out = run_prepare(tmp_path, monkeypatch)
    log, _ = opened
    original = storage.read_manifest(out / "original")
    train_files = sorted((folder / "train").rglob("*.png"))
    chosen = {train_files[i] for i in original["source_index"]}
    assert len(chosen) == 6
    opened_train = [path for path, _ in log if path.parent.parent.name == "train"]
    assert sorted(opened_train) == sorted(chosen)  # each chosen image once, no other training image
    assert len([p for p, _ in log if p.parent.parent.name == "test"]) == 36


def test_the_test_split_is_decoded_and_written_batch_by_batch(tmp_path, monkeypatch, folder, opened):
    out = run_prepare(tmp_path, monkeypatch, batch_size=4, workers=2)
    log, _ = opened
    test_opens = [enc for path, enc in log if path.parent.parent.name == "test"]
    ahead = [k + 1 - enc for k, enc in enumerate(test_opens)]  # decoded but not yet written, at each decode
    assert len(test_opens) == 36 and max(ahead) <= 2 * 4
    assert len(storage.read_manifest(out / "test")) == 36


def test_batch_and_worker_settings_do_not_change_the_bytes(tmp_path, monkeypatch, folder):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    a = run_prepare(tmp_path / "a", monkeypatch, batch_size=5, workers=3)
    b = run_prepare(tmp_path / "b", monkeypatch, batch_size=256, workers=1)
    assert tree_hashes(a) == tree_hashes(b)


def test_test_per_class_writes_a_seeded_per_class_subsample(tmp_path, monkeypatch, folder):
    out = run_prepare(tmp_path, monkeypatch, test_per_class=5)
    test = storage.read_manifest(out / "test")
    assert test["class_name"].value_counts().to_dict() == {c: 5 for c in CLASSES}
    labels = np.repeat(np.arange(3), 12)
    rng = np.random.default_rng(3)  # the protocol by hand: class by class, a permutation, its first 5
    expected = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:5] for c in range(3)]))
    assert test["source_index"].tolist() == expected.tolist()
    assert test["key"].tolist() == [f"scale-folder-test-{i:06d}" for i in range(15)]
    assert json.loads((out / "meta.json").read_text())["num_test"] == 15


def test_per_class_subsample_rules():
    labels = np.array([0, 1, 1, 2, 2, 2, 1])
    assert per_class_subsample(labels, 3, None, 0).tolist() == list(range(7))
    picked = per_class_subsample(labels, 3, 2, 0)
    assert np.bincount(labels[picked], minlength=3).tolist() == [1, 2, 2]
    assert picked.tolist() == sorted(picked.tolist())
    assert per_class_subsample(labels, 3, 2, 0).tolist() == picked.tolist()
    multi = np.array([[1, 0], [1, 1], [0, 1], [0, 1], [1, 0]])
    got = per_class_subsample(multi, 2, 1, 0)
    assert all(multi[got, c].sum() >= 1 for c in range(2)) and len(got) <= 2


def tree_hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_digits_prepare_is_byte_identical_to_the_whole_split_code(tmp_path, monkeypatch):
    """Hashes recorded from the code that decoded whole splits (main before label-first access, with the
    manifests' label lists of the multilabel work, which label-first access reproduces byte for byte):
    `genbench prepare --dataset digits` with image_size 32, shots 16, seed 0."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"datasets": ["digits"], "prepare": {"image_size": 32, "shots": 16, "seed": 0, "data_root": "data/raw"}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = CliRunner().invoke(cli, ["prepare", "--dataset", "digits"])
    assert result.exit_code == 0, result.output
    assert tree_hashes(tmp_path / "data" / "digits" / "prepared") == json.loads(FIXTURE.read_text())
