import numpy as np
import pytest
import torch

from genbench.clip_models import build_tiny_clip, load_clip, save_clip
from genbench.errors import GenBenchError
from genbench.features import encode_images, encode_texts, load_features, save_features, text_prototypes


def test_tiny_clip_is_seeded():
    a, _ = build_tiny_clip(0)
    b, _ = build_tiny_clip(0)
    c, _ = build_tiny_clip(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_local_dir_round_trip_through_open_clip(tmp_path):
    model, cfg = build_tiny_clip(3)
    save_clip(model, cfg, tmp_path / "clip")
    assert (tmp_path / "clip" / "open_clip_model.safetensors").is_file()
    loaded = load_clip(f"local-dir:{tmp_path / 'clip'}")
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    ref = load_clip("tiny-clip", seed=3)
    np.testing.assert_allclose(encode_images(loaded, images, progress=False), encode_images(ref, images, progress=False), atol=1e-5)
    np.testing.assert_allclose(encode_texts(loaded, ["a photo of the digit 3."]), encode_texts(ref, ["a photo of the digit 3."]), atol=1e-5)


def test_features_are_unit_norm_and_prototypes_average_templates():
    bundle = load_clip("tiny-clip")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    feats = encode_images(bundle, images, batch_size=3, progress=False)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    protos = text_prototypes(bundle, ["0", "1"], ["a {c}.", "the {c}!"])
    manual = encode_texts(bundle, ["a 1.", "the 1!"]).mean(0)
    np.testing.assert_allclose(protos[1], manual / np.linalg.norm(manual), atol=1e-5)


def test_missing_local_dir_is_a_user_error(tmp_path):
    with pytest.raises(GenBenchError, match="no open_clip_config.json"):
        load_clip(f"local-dir:{tmp_path}")


def test_feature_file_round_trip(tmp_path):
    f = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    save_features(tmp_path / "x.safetensors", f, np.arange(5), {"cache_key": "k"})
    feats, labels, meta = load_features(tmp_path / "x.safetensors")
    assert np.array_equal(feats, f) and list(labels) == [0, 1, 2, 3, 4] and meta == {"cache_key": "k"}
