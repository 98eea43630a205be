"""The bootstrap stage trains the miniature models on the digits train split and never reads the test split."""

from __future__ import annotations

import dataclasses

import numpy as np

import stages.bootstrap as bootstrap
from genbench.datasets import digits, get_dataset


def test_digits_split_is_a_disjoint_cover_of_the_1797_scans():
    split = digits._split_indices()
    train, test = split["train"], split["test"]
    assert (len(train), len(test)) == (1257, 540)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(1797))


def test_bootstrap_reads_only_the_train_split(tmp_path, monkeypatch):
    spec = get_dataset("digits")
    asked = []

    def loader(split, root, image_size):
        asked.append(split)
        return spec.loader(split, root, image_size)

    def fake_train(images, labels, classnames, templates, out_dir, **kw):
        fake_train.seen.append(len(images))
        return {"final_loss": 0.0, "seconds": 0.0, "weights_sha256": "0" * 64, "path": str(out_dir)}

    fake_train.seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bootstrap, "get_dataset", lambda name: dataclasses.replace(spec, loader=loader))
    monkeypatch.setattr(bootstrap, "train_clip", fake_train)
    monkeypatch.setattr(bootstrap, "train_diffusion", fake_train)
    params = {name: field.default for name, field in bootstrap.SCHEMA.items()}
    result = bootstrap.work(params)
    assert asked == ["train"]
    assert fake_train.seen == [1257, 1257]
    assert result.metrics["clip_final_loss"] == 0.0
