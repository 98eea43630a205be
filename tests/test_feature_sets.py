"""The feature sets the scoring stages read (genbench.feature_sets)."""

import numpy as np

from genbench import storage
from genbench.feature_sets import external_sets, real_test_set, targets
from genbench.features import save_features

MULTICLASS = {"classnames": ["a", "b", "c"], "templates": ["{c}"], "metric": "accuracy"}
MULTILABEL = {**MULTICLASS, "task": "multilabel", "metric": "11-point mAP"}


def test_targets_are_multi_hot_only_for_a_multi_label_dataset():
    assert targets(MULTICLASS, np.array([2, 0]), "x").tolist() == [2, 0]
    assert targets(MULTILABEL, np.array([2, 0]), "x").tolist() == [[0, 0, 1], [1, 0, 0]]


def test_external_sets_split_the_generated_features_by_strategy(tmp_path):
    features, generated = tmp_path / "features", tmp_path / "generated"
    features.mkdir()
    gen = np.arange(8, dtype=np.float32).reshape(4, 2)
    save_features(features / "generated.safetensors", gen, np.array([0, 1, 2, 0]), {})
    save_features(features / "original.safetensors", gen[:2], np.array([1, 2]), {})
    save_features(features / "test.safetensors", gen[:3], np.array([0, 1, 2]), {})
    storage.write_manifest(generated, [{"key": str(i), "strategy": s} for i, s in enumerate(["ST", "DT", "ST", "DT"])])
    sets = external_sets(features, generated, MULTICLASS)
    assert list(sets) == ["generated", "generated/ST", "generated/DT", "original"]  # no retrieved features: no set
    np.testing.assert_array_equal(sets["generated/ST"][0], gen[[0, 2]])
    assert sets["generated/DT"][1].tolist() == [1, 0] and sets["original"][1].tolist() == [1, 2]
    save_features(features / "retrieved.safetensors", gen[:1], np.array([2]), {})
    multi = external_sets(features, generated, MULTILABEL)
    assert multi["retrieved"][1].tolist() == [[0, 0, 1]] and multi["generated"][1].shape == (4, 3)
    feats, labels = real_test_set(features, MULTILABEL)
    np.testing.assert_array_equal(feats, gen[:3])
    assert labels.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
