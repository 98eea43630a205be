"""The miniature trainers: determinism, learning, the saved formats loading through the real
code paths, and their loss and hash definitions checked against independent computations."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from genbench.datasets import digits
from genbench.errors import GenBenchError
from genbench.miniature import train_clip, train_diffusion
from genbench.miniature.captions import EXTRA_TEMPLATES, caption_table, caption_templates, sample_caption_ids
from genbench.miniature.common import safetensors_sha256
from genbench.miniature.train_clip import contrastive_loss

CLIP_FAST = dict(steps=4, batch_size=16, progress=False)
DIFFUSION_FAST = dict(vae_steps=3, vae_batch_size=8, unet_steps=3, unet_batch_size=8, progress=False)


@pytest.fixture(scope="module")
def small_train():
    """12 training images per class of the digits train split."""
    train = digits.load("train", Path("."), 32)
    idx = np.concatenate([np.flatnonzero(train.labels == c)[:12] for c in range(10)])
    return train.images[idx], train.labels[idx]


def _clip(small_train, out, **kw):
    images, labels = small_train
    return train_clip(images, labels, digits.CLASSNAMES, digits.TEMPLATES, out, **{**CLIP_FAST, **kw})


def _diffusion(small_train, out, **kw):
    images, labels = small_train
    return train_diffusion(images, labels, digits.CLASSNAMES, digits.TEMPLATES, out, **{**DIFFUSION_FAST, **kw})


# captions


def test_caption_templates_keep_dataset_templates_first_without_duplicates():
    templates = caption_templates(digits.TEMPLATES + (EXTRA_TEMPLATES[0],))
    assert templates[: len(digits.TEMPLATES)] == digits.TEMPLATES
    assert len(set(templates)) == len(templates) == len(digits.TEMPLATES) + len(EXTRA_TEMPLATES)
    assert all("{c}" in t for t in templates)


def test_sampled_caption_ids_name_the_label_and_vary_the_template():
    table = caption_table(("a {c}.", "the digit {c}", "{c}"), digits.CLASSNAMES)
    labels = np.arange(300) % 10
    ids = sample_caption_ids(labels, 3, 10, np.random.default_rng(0))
    assert [table[i].rstrip(".").split()[-1] for i in ids] == [str(label) for label in labels]
    assert len({table[i] for i, label in zip(ids, labels) if label == 3}) == 3


# loss and hash, against independent computations


def test_plain_contrastive_loss_matches_open_clip_cliploss():
    from open_clip.loss import ClipLoss

    gen = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    scale = torch.tensor(7.0)
    assert contrastive_loss(img, txt, scale, None).item() == pytest.approx(ClipLoss()(img, txt, scale).item(), rel=1e-6)


def test_label_aware_loss_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1])
    logits = 3.0 * img.double().numpy() @ txt.double().numpy().T
    same = (labels.numpy()[:, None] == labels.numpy()[None, :]).astype(float)
    rows = -(same / same.sum(1, keepdims=True) * log_softmax(logits, axis=1)).sum(1).mean()
    cols = -(same / same.sum(0, keepdims=True) * log_softmax(logits, axis=0)).sum(0).mean()
    got = contrastive_loss(img, txt, torch.tensor(3.0), labels).item()
    assert got == pytest.approx((rows + cols) / 2, rel=1e-5)


def test_safetensors_sha256_covers_paths_and_bytes(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "w.safetensors").write_bytes(b"second")
    (tmp_path / "a.safetensors").write_bytes(b"first")
    (tmp_path / "config.json").write_text("{}")
    expected = hashlib.sha256(b"a.safetensors\0first" + b"b/w.safetensors\0second").hexdigest()
    assert safetensors_sha256(tmp_path) == expected
    (tmp_path / "config.json").write_text('{"changed": 1}')
    assert safetensors_sha256(tmp_path) == expected


def test_min_snr_weights_match_a_hand_computation():
    from genbench.miniature.train_diffusion import min_snr_weights, miniature_scheduler

    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    alphas = np.cumprod(1 - betas)
    snr = alphas / (1 - alphas)
    epsilon, velocity = miniature_scheduler("epsilon"), miniature_scheduler("v_prediction")
    np.testing.assert_allclose(min_snr_weights(epsilon, 5.0).numpy(), np.minimum(snr, 5.0) / snr, rtol=1e-4)
    np.testing.assert_allclose(min_snr_weights(velocity, 5.0).numpy(), np.minimum(snr, 5.0) / (snr + 1), rtol=1e-4)
    assert (min_snr_weights(velocity, None) == 1).all()


def test_training_text_states_equal_the_pipelines_encode_prompt():
    from genbench.miniature.train_diffusion import build_pipeline, text_states, tokenize

    pipe = build_pipeline(0, 32)
    captions = ["a photo of the digit 3.", "", "a very long caption that runs past the limit " * 4]
    with torch.no_grad():
        ours = text_states(pipe.text_encoder, tokenize(pipe.tokenizer, captions))
        theirs, _ = pipe.encode_prompt(captions, torch.device("cpu"), 1, False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


# CLIP trainer


def test_train_clip_is_deterministic_per_seed(small_train, tmp_path):
    threads, mode = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    first = _clip(small_train, tmp_path / "a", seed=0)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, mode)
    again = _clip(small_train, tmp_path / "b", seed=0)
    other = _clip(small_train, tmp_path / "c", seed=1)
    assert first["weights_sha256"] == again["weights_sha256"]
    assert first["weights_sha256"] != other["weights_sha256"]
    assert set(first) >= {"path", "weights_sha256", "final_loss", "seconds"}


def test_train_clip_loss_falls(small_train, tmp_path):
    losses = _clip(small_train, tmp_path / "clip", steps=40, batch_size=40, warmup=4)["losses"]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_trained_clip_loads_through_open_clip_local_dir(small_train, tmp_path):
    from PIL import Image

    from genbench.clip_models import load_clip

    result = _clip(small_train, tmp_path / "clip")
    bundle = load_clip("local-dir:" + result["path"])
    images, _ = small_train
    with torch.no_grad():
        pixels = torch.stack([bundle.preprocess(Image.fromarray(img)) for img in images[:3]])
        image_feats = bundle.model.encode_image(pixels)
        text_feats = bundle.model.encode_text(bundle.tokenizer(["a photo of the digit 3.", "a handwritten digit 7."]))
    assert image_feats.shape == (3, 64) and text_feats.shape == (2, 64)
    assert torch.isfinite(image_feats).all() and torch.isfinite(text_feats).all()


# diffusion trainer


def test_train_diffusion_is_deterministic_per_seed(small_train, tmp_path):
    first = _diffusion(small_train, tmp_path / "a", seed=0)
    again = _diffusion(small_train, tmp_path / "b", seed=0)
    other = _diffusion(small_train, tmp_path / "c", seed=1)
    assert first["weights_sha256"] == again["weights_sha256"]
    assert first["weights_sha256"] != other["weights_sha256"]
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.safetensors")) == [
        "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]


def test_train_diffusion_losses_fall(small_train, tmp_path):
    result = _diffusion(small_train, tmp_path / "d", vae_steps=30, vae_batch_size=16, unet_steps=30, unet_batch_size=16)
    vae, unet = result["vae_losses"], result["losses"]
    assert np.mean(vae[-5:]) < 0.5 * np.mean(vae[:5])
    assert np.mean(unet[-5:]) < 0.8 * np.mean(unet[:5])


@pytest.fixture(scope="module")
def small_pipeline_dir(small_train, tmp_path_factory) -> Path:
    return Path(_diffusion(small_train, tmp_path_factory.mktemp("sd"))["path"])


def test_trained_pipeline_loads_and_generates(small_pipeline_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(small_pipeline_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(["a photo of the digit 3.", "a photo of the digit 5."], height=32, width=32, num_inference_steps=2,
               guidance_scale=4.0, output_type="np", generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (2, 32, 32, 3)
    assert pipe.scheduler.config.prediction_type == "v_prediction" and pipe.tokenizer.model_max_length == 32
    assert np.isfinite(out.images).all() and out.images.min() >= 0 and out.images.max() <= 1


def test_vae_scaling_factor_gives_unit_scale_latents(small_train, small_pipeline_dir):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(small_pipeline_dir / "vae"), local_files_only=True)
    images, _ = small_train
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    assert latents.shape == (len(images), 4, 8, 8)
    assert float(np.std(latents.numpy())) == pytest.approx(1.0, rel=1e-3)


# bad input


@pytest.mark.parametrize("change, match", [
    (lambda im, lb: (im.astype(np.float32), lb), "uint8"),
    (lambda im, lb: (im, lb[:-1]), "one entry per image"),
    (lambda im, lb: (im, np.where(lb == 9, 10, lb)), "labels must lie"),
    (lambda im, lb: (im[lb != 4], lb[lb != 4]), r"class index\(es\) \[4\]"),
])
def test_bad_training_data_is_named(small_train, tmp_path, change, match):
    images, labels = change(*small_train)
    with pytest.raises(GenBenchError, match=match):
        train_clip(images, labels, digits.CLASSNAMES, digits.TEMPLATES, tmp_path, **CLIP_FAST)
    with pytest.raises(GenBenchError, match=match):
        train_diffusion(images, labels, digits.CLASSNAMES, digits.TEMPLATES, tmp_path, **DIFFUSION_FAST)


def test_bad_settings_are_named(small_train, tmp_path):
    images, labels = small_train
    with pytest.raises(GenBenchError, match="placeholder"):
        train_clip(images, labels, digits.CLASSNAMES, ("a photo of a digit",), tmp_path, **CLIP_FAST)
    with pytest.raises(GenBenchError, match="steps must be a positive integer, got 0"):
        train_clip(images, labels, digits.CLASSNAMES, digits.TEMPLATES, tmp_path, **{**CLIP_FAST, "steps": 0})
    with pytest.raises(GenBenchError, match="uncond_prob"):
        train_diffusion(images, labels, digits.CLASSNAMES, digits.TEMPLATES, tmp_path, **DIFFUSION_FAST, uncond_prob=1.0)
    with pytest.raises(GenBenchError, match="divisible by 8"):
        train_diffusion(images[:, :30, :30], labels, digits.CLASSNAMES, digits.TEMPLATES, tmp_path, **DIFFUSION_FAST)
    assert not any(tmp_path.iterdir())
