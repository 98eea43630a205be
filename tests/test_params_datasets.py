"""A user's own image-folder dataset declared in params.yaml is listed and prepared like any other."""

import numpy as np
import yaml
from click.testing import CliRunner
from PIL import Image

from genbench import storage
from genbench.datasets import DATASETS
from stages.frame.cli import cli


def test_image_folder_from_params_is_listed_and_prepared(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            folder = tmp_path / "pets" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    params = {
        "profile": "embedded",
        "datasets": ["my-pets"],
        "image_folders": {"my-pets": {"root": str(tmp_path / "pets")}},
        "prepare": {"shots": 2, "image_size": 16},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        listed = CliRunner().invoke(cli, ["datasets"])
        assert listed.exit_code == 0 and "my-pets" in listed.output
        prepared = CliRunner().invoke(cli, ["prepare"])
        assert prepared.exit_code == 0, prepared.output
        manifest = storage.read_manifest(tmp_path / "data/my-pets/prepared/original")
        assert sorted(manifest["class_name"]) == ["cat", "cat", "dog", "dog"]
        assert len(storage.read_manifest(tmp_path / "data/my-pets/prepared/test")) == 4
    finally:
        DATASETS.pop("my-pets", None)


def test_bad_image_folder_entry_is_named(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"datasets": ["x"], "image_folders": {"x": {"rot": "d"}}}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["prepare"])
    assert result.exit_code == 2 and "'image_folders.x.rot' does not exist" in result.output
