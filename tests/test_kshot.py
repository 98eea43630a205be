"""The k-shot protocol (genbench.kshot) on single-label and multi-label training labels, and the
label forms manifests, feature files and metrics carry (genbench.labels). Hand-worked cases
where the draw is forced (a pool of exactly `shots` images), seeded properties otherwise."""

import numpy as np
import pandas as pd
import pytest

from genbench.errors import GenBenchError
from genbench.kshot import drawn_for, kshot_indices
from genbench.labels import feature_labels, manifest_label_columns, scoring_targets


def test_multiclass_forced_draw_takes_every_image_class_by_class():
    labels = np.array([2, 0, 1, 0, 2, 1])
    assert kshot_indices(labels, 3, 2, seed=5).tolist() == [1, 3, 2, 5, 0, 4]
    assert drawn_for(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


def test_multiclass_draw_is_seeded_per_class_and_sorted():
    labels = np.repeat(np.arange(4), 10)
    first = kshot_indices(labels, 4, 3, seed=0)
    assert first.tolist() == kshot_indices(labels, 4, 3, seed=0).tolist()
    assert first.tolist() != kshot_indices(labels, 4, 3, seed=1).tolist()
    blocks = first.reshape(4, 3)
    assert all((labels[b] == c).all() and (np.diff(b) > 0).all() for c, b in enumerate(blocks))


def test_multiclass_too_few_images_names_the_class():
    with pytest.raises(GenBenchError, match=r"prepare.shots = 3 but class 1 \('dog'\) has only 2 training images"):
        kshot_indices(np.array([0, 0, 0, 1, 1]), 2, 3, seed=0, classnames=["cat", "dog"])


def test_multilabel_forced_draw_skips_images_an_earlier_class_took():
    # image: 0 {0,1}  1 {0}  2 {1}  3 {1}. Class 0 has exactly 2 positives: {0, 1}. Class 1's
    # positives are {0, 2, 3}; 0 is taken, so {2, 3}. Class 1 ends with 3 positives in the set.
    labels = np.array([[1, 1], [1, 0], [0, 1], [0, 1]])
    picked = kshot_indices(labels, 2, 2, seed=9)
    assert picked.tolist() == [0, 1, 2, 3]
    assert labels[picked].sum(axis=0).tolist() == [2, 3]


def test_multilabel_class_short_after_earlier_draws_says_why():
    # class 0 takes both its positives {0, 1}; class 1's positives {0, 1, 2} leave only image 2.
    labels = np.array([[1, 1], [1, 1], [0, 1], [0, 0]])
    with pytest.raises(GenBenchError, match=r"class 1 \('b'\) has 1 training images left \(3 positives, 2 already drawn"):
        kshot_indices(labels, 2, 2, seed=0, classnames=["a", "b"])


def test_multilabel_draw_properties_on_random_labels():
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 6)) < 0.3).astype(np.int64)
    picked = kshot_indices(labels, 6, 4, seed=2)
    assert len(picked) == 24 and len(set(picked.tolist())) == 24
    for c, block in enumerate(picked.reshape(6, 4)):
        assert labels[block, c].all()
    assert (labels[picked].sum(axis=0) >= 4).all()
    assert picked.tolist() == kshot_indices(labels, 6, 4, seed=2).tolist()


def test_labels_of_the_wrong_width_are_refused():
    with pytest.raises(GenBenchError, match=r"\(N, 3\) multi-hot"):
        kshot_indices(np.zeros((4, 2), dtype=int), 3, 1, seed=0)


def test_manifest_columns_single_and_multi_label():
    names = ["a", "b", "c"]
    assert manifest_label_columns(np.array([2, 0]), names) == [
        {"class_index": 2, "class_name": "c", "labels": [2]}, {"class_index": 0, "class_name": "a", "labels": [0]}]
    multi = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 1]])
    assert manifest_label_columns(multi, names) == [
        {"class_index": 1, "class_name": "b", "labels": [1, 2]}, {"class_index": -1, "class_name": "", "labels": []},
        {"class_index": 0, "class_name": "a", "labels": [0, 2]}]
    assert [r["class_index"] for r in manifest_label_columns(multi[[0, 2]], names, drawn_for=np.array([2, 2]))] == [2, 2]


def test_feature_labels_and_scoring_targets():
    manifest = pd.DataFrame({"class_index": [1, -1, 0], "labels": [[1, 2], [], [0, 2]]})
    assert feature_labels(manifest, "multilabel", 3).tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 1]]
    assert feature_labels(manifest.drop(columns="labels"), "multilabel", 3).tolist() == [1, -1, 0]
    assert feature_labels(manifest.iloc[[0, 2]], "multiclass", 3).tolist() == [1, 0]
    assert scoring_targets(np.array([2, 0]), "multilabel", 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert scoring_targets(np.array([2, 0]), "multiclass", 3).tolist() == [2, 0]
