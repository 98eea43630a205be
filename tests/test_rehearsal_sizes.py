"""The sizes that make a rehearsal (and the real run) cheaper without changing what is computed:
text towers computed only up to the longest text of a batch, and the work a profile asks of
each CLIP tower counted before a run (genbench.rehearsal.workload)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genbench.clip_models import TINY_CLIP_CONFIG, _bundle_from_model, build_tiny_clip, load_clip
from genbench.features import _encode_tokens, _trims_context, encode_texts

TEXTS = ["a photo of a dog.", "cat", "a long caption about a small boat on a lake at dusk " * 2]


def _positions_seen(model, tokens) -> tuple[torch.Tensor, list[int]]:
    seen: list[int] = []
    hook = model.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            return _encode_tokens(model, tokens), seen
    finally:
        hook.remove()


def test_text_features_are_those_of_the_full_context_from_fewer_positions():
    bundle = load_clip("tiny-clip")
    tokens = bundle.tokenizer(TEXTS)
    with torch.no_grad():
        full = bundle.model.encode_text(tokens)
    trimmed, seen = _positions_seen(bundle.model, tokens)
    longest = int((tokens != 0).sum(dim=1).max())
    assert seen == [longest] and longest < tokens.shape[1]
    np.testing.assert_allclose(trimmed.numpy(), full.numpy(), atol=1e-5)
    # the model is left as it was: full context, its own parameter
    assert bundle.model.positional_embedding.shape[0] == tokens.shape[1]
    assert bundle.model.attn_mask.shape == (tokens.shape[1], tokens.shape[1])
    assert any(p is bundle.model.positional_embedding for p in bundle.model.parameters())
    np.testing.assert_allclose(encode_texts(bundle, TEXTS), (full / full.norm(dim=-1, keepdim=True)).numpy(), atol=1e-5)


def test_a_text_tower_without_a_causal_mask_sees_its_whole_context():
    """Without the causal mask every position reads the padding, so nothing may be cut."""
    config = {**TINY_CLIP_CONFIG, "text_cfg": {**TINY_CLIP_CONFIG["text_cfg"], "no_causal_mask": True}}
    model, _ = build_tiny_clip(0, config)
    bundle = _bundle_from_model(model, config, "tiny-clip-bidirectional")
    tokens = bundle.tokenizer(TEXTS)
    assert not _trims_context(model)
    out, seen = _positions_seen(model, tokens)
    assert seen == [tokens.shape[1]]
    with torch.no_grad():
        np.testing.assert_array_equal(out.numpy(), model.encode_text(tokens).numpy())


def test_a_text_filling_the_context_is_encoded_whole():
    bundle = load_clip("tiny-clip")
    tokens = bundle.tokenizer(["word " * 100])
    out, seen = _positions_seen(bundle.model, tokens)
    assert seen == [tokens.shape[1]]


def test_prepare_keeps_the_first_templates_when_capped(tmp_path, monkeypatch):
    """prepare.templates = 2: meta.json (what embed, retrieve and invert read) lists CIFAR-10's first
    two templates; null keeps all of them."""
    import json

    from genbench.datasets import get_dataset
    from genbench.rehearsal.data import write_standin_dataset
    from stages import prepare
    from stages.frame.paths import DatasetPaths
    from stages.frame.params import validate_section

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENBENCH_STANDIN_DATA", "1")
    write_standin_dataset("cifar-10", tmp_path / "raw", train_per_class=2, test_per_class=1, image_size=8, seed=0)
    full = list(get_dataset("cifar-10").templates)
    assert len(full) > 2
    for cap, want in ((2, full[:2]), (None, full)):
        p = validate_section({"shots": 1, "image_size": 8, "data_root": str(tmp_path / "raw"), "templates": cap},
                             "prepare", prepare.SCHEMA)
        prepare.work(p, DatasetPaths("cifar-10"))
        assert json.loads((tmp_path / "data/cifar-10/prepared/meta.json").read_text())["templates"] == want


def test_profile_check_refuses_a_template_count_below_one(tmp_path):
    import yaml

    from conftest import ROOT
    from stages.frame.profile_rules import problems

    params = yaml.safe_load((ROOT / "profiles/paper.yaml").read_text())
    assert params["prepare"]["templates"] is None and problems(params, ROOT / "profiles/paper.yaml") == []
    params["prepare"]["templates"] = 0
    found = problems(params, ROOT / "profiles/paper.yaml")
    assert found == ["params key 'prepare.templates' = 0 must be greater than 0"], found


def test_workload_counts_each_tower_by_hand():
    """CIFAR-10 at the overlay's sizes, counted by hand: 10 classes x (2 test + 2 original + 2 x 5
    strategies generated + 2 retrieved) = 160 images through embed.model and each backbone, and
    10 classes x 2 templates texts, each batch (one class) costing 2 x its longest text."""
    import yaml

    from conftest import ROOT
    from genbench.datasets import get_dataset
    from genbench.rehearsal import workdir as wd
    from genbench.rehearsal.workload import by_tower, dataset_work

    paper = yaml.safe_load((ROOT / "profiles/paper.yaml").read_text())
    overlay = yaml.safe_load((ROOT / wd.OVERLAY).read_text())
    params = {**wd.overlay_params(paper, overlay, ["cifar-10"]), "standin": overlay["standin"]}
    length = lambda text: len(text.split()) + 2  # noqa: E731 (a stand-in token count)
    work = by_tower(dataset_work(params, "cifar-10", length))
    spec = get_dataset("cifar-10")
    for model in ("ViT-B-32|openai", "RN50|openai", "ViT-B-16|openai", "ViT-L-14|openai"):
        assert work[("embed", model, "image")][0] == 10 * (2 + 2 + 2 * 5 + 2)
        texts = [[t.format(c=c) for t in spec.templates[:2]] for c in spec.classnames]
        assert work[("embed", model, "text")] == (20, sum(2 * max(map(length, b)) for b in texts))
    assert work[("quality", "ViT-B-16|openai", "image")][0] == 0  # embed's ViT-B-16 backbone features, read back
    assert work[("finetune", "ViT-B-32|openai", "image")][0] == 2 * (10 * 1 * (1 + 3 * 1) + 10 * 2)


def test_quality_reuses_the_backbone_features_of_its_clip_score_model(tmp_path, monkeypatch):
    """quality's CLIP score model is one of embed.backbones (the paper profile: ViT-B-16): the
    generated images' features embed wrote with it are read back, not encoded again; features of
    other images or weights (another cache key) are not."""
    from genbench import storage
    from genbench.features import cache_key, encode_images, model_sha256, save_features
    from stages.frame.paths import DatasetPaths
    from stages.quality import clip_score_features

    monkeypatch.chdir(tmp_path)
    paths = DatasetPaths("cifar-10")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    rows = [{"key": f"g{i}", "class_index": i, "class_name": f"class {i}", "prompt": f"class {i}", "strategy": "ST"}
            for i in range(3)]
    storage.write_image_stream(paths.generated, zip(images, rows))
    bundle = load_clip("tiny-clip")
    p = {"clip_score_model": "tiny-clip", "clip_score_pretrained": None, "clip_score_text": "class", "batch_size": 8}
    checked = (None, "tiny-clip|None", "cpu", bundle, "tiny-clip|None")
    shas = list(storage.read_manifest(paths.generated)["sha256"])
    path = paths.backbone_features("tiny-clip", None) / "generated.safetensors"
    path.parent.mkdir(parents=True)
    stored = np.eye(3, 64, dtype=np.float32)  # not what the model computes: only a read-back returns these
    save_features(path, stored, np.arange(3), {"cache_key": cache_key("tiny-clip|None", model_sha256(bundle.model), shas)})
    got, _ = clip_score_features(p, paths, checked, None)
    np.testing.assert_array_equal(got, stored)
    save_features(path, stored, np.arange(3), {"cache_key": cache_key("tiny-clip|None", "other weights", shas)})
    got, _ = clip_score_features(p, paths, checked, None)
    np.testing.assert_allclose(got, encode_images(bundle, images), atol=1e-6)
