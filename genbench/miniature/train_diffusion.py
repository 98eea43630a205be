"""Train the miniature text-to-image model: a Stable Diffusion pipeline layout (AutoencoderKL,
UNet2DConditionModel with cross-attention on CLIPTextModel states, CLIP BPE tokenizer, DDIM
scheduler) learned from a small labelled image set.

Two phases:
1. the VAE, on reconstruction (mean squared error in [-1, 1]) plus a small KL term; its
   `scaling_factor` is then set to 1 / std of the training latents, so the UNet sees unit-scale
   latents as in Stable Diffusion;
2. the UNet and the text encoder together, on the mean squared error of the scheduler's
   prediction target at uniformly drawn timesteps, conditioned on captions of the image's class
   drawn from `caption_templates`; the caption is replaced by the empty prompt with probability
   `uncond_prob`, so classifier-free guidance works. The saved weights are exponential moving
   averages of the trained ones. With `train_text_encoder=False` the text encoder keeps its
   seeded random initialisation.

The target is the velocity (`v_prediction`, as in Stable Diffusion 2.x): its loss weighs the
high-noise timesteps, where the class decides the shape, far more than noise prediction does,
and in a few hundred steps that is the difference between ignoring the prompt and following it.
Captions are tokenised once and encoded as the pipeline's `encode_prompt` does, so training and
generation condition on the same states.

The VAE has three resolution levels: a 32 x 32 image has an 8 x 8 x 4 latent.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genbench.errors import GenBenchError
from genbench.miniature.captions import caption_table, caption_templates, sample_caption_ids
from genbench.miniature.common import (
    check_positive,
    check_training_data,
    deterministic,
    epoch_batches,
    progress_bar,
    tail_mean,
    to_unit_range,
    training_record,
    warmup_cosine,
)

TOKENIZER_MAX_LENGTH = 32
PREDICTION_TYPES = ("epsilon", "v_prediction")


def miniature_vae_config(image_size: int) -> dict:
    """The tiny VAE (genbench.generators.tiny) with a third resolution level."""
    from genbench.generators.tiny import tiny_vae_config

    return {**tiny_vae_config(image_size), "block_out_channels": (16, 32, 32),
            "down_block_types": ("DownEncoderBlock2D",) * 3, "up_block_types": ("UpDecoderBlock2D",) * 3}


def miniature_unet_config(latent_size: int, text_hidden: int) -> dict:
    """The tiny UNet (genbench.generators.tiny) with cross-attention in every block."""
    from genbench.generators.tiny import tiny_unet_config

    return {**tiny_unet_config(2 * latent_size), "sample_size": latent_size,
            "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), "cross_attention_dim": text_hidden,
            "attention_head_dim": 2}  # diffusers' legacy name for the number of heads


def miniature_text_config() -> dict:
    from genbench.generators.tiny import tiny_text_config

    return tiny_text_config()


def miniature_scheduler(prediction_type: str = "v_prediction"):
    from diffusers import DDIMScheduler

    from genbench.generators.sd2 import SD_DDIM_SCHEDULE

    return DDIMScheduler(**SD_DDIM_SCHEDULE, prediction_type=prediction_type)


def build_pipeline(seed: int, image_size: int, prediction_type: str = "v_prediction"):
    """An untrained pipeline with seeded weights (VAE, UNet, text encoder) and the offline tokenizer."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from genbench.generators.tokenizer import load_clip_tokenizer, write_clip_tokenizer_files

    vae_config = miniature_vae_config(image_size)
    latent_size = image_size // 2 ** (len(vae_config["block_out_channels"]) - 1)
    text_config = miniature_text_config()
    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_config)
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(**miniature_unet_config(latent_size, text_config["hidden_size"]))
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(write_clip_tokenizer_files(tmp, model_max_length=TOKENIZER_MAX_LENGTH))
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=miniature_scheduler(prediction_type),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """Show or hide transformers' own progress bars (e.g. "Writing model shards") for a block."""
    from transformers.utils import logging

    previous = logging.is_progress_bar_enabled()
    (logging.enable_progress_bar if enabled else logging.disable_progress_bar)()
    try:
        yield
    finally:
        (logging.enable_progress_bar if previous else logging.disable_progress_bar)()


def train_vae(vae, pixels: torch.Tensor, *, steps: int, batch_size: int, lr: float, kl_weight: float,
              rng: np.random.Generator, generator: torch.Generator, progress: bool) -> list[float]:
    """Fit the VAE to `pixels` (N, 3, H, W) in [-1, 1]; loss = MSE + kl_weight * per-element KL."""
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, max(1, steps // 20)))
    losses = []
    with progress_bar(steps, "train miniature VAE", progress) as bar:
        for idx in epoch_batches(len(pixels), batch_size, steps, rng):
            batch = pixels[idx]
            posterior = vae.encode(batch).latent_dist
            latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
            recon = vae.decode(latents).sample
            kl = posterior.kl().mean() / posterior.mean[0].numel()
            loss = F.mse_loss(recon, batch) + kl_weight * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            bar.update()
    vae.eval()
    return losses


@torch.no_grad()
def encode_latents(vae, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Posterior means of the VAE for `pixels`, unscaled."""
    return torch.cat([vae.encode(pixels[i : i + batch_size]).latent_dist.mean for i in range(0, len(pixels), batch_size)])


def tokenize(tokenizer, captions: Sequence[str]) -> torch.Tensor:
    """Token ids (len(captions), model_max_length) padded and truncated as `encode_prompt` does."""
    return tokenizer(list(captions), padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def text_states(text_encoder, token_ids: torch.Tensor) -> torch.Tensor:
    """The cross-attention states the pipeline's `encode_prompt` computes for `token_ids`."""
    return text_encoder(token_ids)[0]


def min_snr_weights(scheduler, gamma: float | None) -> torch.Tensor:
    """Per-timestep loss weights of Min-SNR-gamma (Hang et al. 2023): min(SNR, gamma) / SNR for
    noise prediction, min(SNR, gamma) / (SNR + 1) for velocity; all ones when gamma is None."""
    alphas = scheduler.alphas_cumprod.double()
    if gamma is None:
        return torch.ones(len(alphas))
    snr = alphas / (1 - alphas)
    denominator = snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr
    return (snr.clamp(max=gamma) / denominator).float()


def train_unet(unet, text_encoder, scheduler, latents: torch.Tensor, labels: np.ndarray, token_ids: torch.Tensor,
               *, num_templates: int, num_classes: int, train_text_encoder: bool, steps: int, batch_size: int,
               lr: float, uncond_prob: float, ema_decay: float, snr_gamma: float | None, rng: np.random.Generator,
               generator: torch.Generator, progress: bool) -> tuple[dict, list[float]]:
    """Fit the UNet (and the text encoder, if `train_text_encoder`) to predict the scheduler's
    target. `token_ids` holds the caption table's token ids followed by the empty prompt's.
    Returns ({"unet": state dict, "text_encoder": state dict} of exponential moving averages,
    losses)."""
    modules = {"unet": unet, "text_encoder": text_encoder} if train_text_encoder else {"unet": unet}
    text_encoder.requires_grad_(train_text_encoder)
    for module in modules.values():
        module.train()
    params = [p for module in modules.values() for p in module.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, max(1, steps // 20)))
    ema = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}
    if not train_text_encoder:
        with torch.no_grad():
            frozen_states = text_states(text_encoder, token_ids)
    uncond_id = len(token_ids) - 1
    num_timesteps = scheduler.config.num_train_timesteps
    weights = min_snr_weights(scheduler, snr_gamma)
    losses = []
    with progress_bar(steps, "train miniature UNet", progress) as bar:
        for step, idx in enumerate(epoch_batches(len(latents), batch_size, steps, rng)):
            ids = sample_caption_ids(labels[idx], num_templates, num_classes, rng)
            ids[rng.random(len(idx)) < uncond_prob] = uncond_id
            if train_text_encoder:
                unique, inverse = np.unique(ids, return_inverse=True)
                cond = text_states(text_encoder, token_ids[unique])[torch.from_numpy(inverse)]
            else:
                cond = frozen_states[ids]
            clean = latents[idx]
            noise = torch.randn(clean.shape, generator=generator)
            timesteps = torch.randint(0, num_timesteps, (len(idx),), generator=generator)
            noisy = scheduler.add_noise(clean, noise, timesteps)
            if scheduler.config.prediction_type == "v_prediction":
                target = scheduler.get_velocity(clean, noise, timesteps)
            else:
                target = noise
            pred = unet(noisy, timesteps, encoder_hidden_states=cond).sample
            per_sample = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
            loss = (per_sample * weights[timesteps]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lr_schedule.step()
            decay = min(ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for name, module in modules.items():
                    for key, value in module.state_dict().items():
                        if value.dtype.is_floating_point:
                            ema[name][key].lerp_(value, 1 - decay)
                        else:
                            ema[name][key].copy_(value)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            bar.update()
    for module in modules.values():
        module.eval()
    text_encoder.requires_grad_(False)
    return ema, losses


def train_diffusion(
    images,
    labels,
    classnames: Sequence[str],
    templates: Sequence[str],
    out_dir: str | Path,
    *,
    seed: int = 0,
    vae_steps: int = 200,
    vae_batch_size: int = 64,
    vae_lr: float = 2e-3,
    kl_weight: float = 1e-3,
    unet_steps: int = 400,
    unet_batch_size: int = 128,
    unet_lr: float = 2e-3,
    uncond_prob: float = 0.1,
    ema_decay: float = 0.99,
    snr_gamma: float | None = None,
    train_text_encoder: bool = True,
    prediction_type: str = "v_prediction",
    num_threads: int | None = 1,
    progress: bool = True,
) -> dict:
    """Train the miniature text-to-image pipeline on (images, labels) and save it with
    `save_pretrained(out_dir, safe_serialization=True)`. Images must be square with a side
    divisible by 8. Training runs on `num_threads` torch threads (None: leave torch's setting).
    Returns {path, weights_sha256, final_loss, vae_loss, losses, vae_losses, seconds}:
    final_loss (UNet) and vae_loss are means over the last 10% of their steps."""
    start = time.perf_counter()
    images, labels = check_training_data(images, labels, classnames, templates)
    check_positive(vae_steps=vae_steps, vae_batch_size=vae_batch_size, unet_steps=unet_steps,
                   unet_batch_size=unet_batch_size, num_threads=num_threads)
    height, width = images.shape[1:3]
    if height != width or height % 8:
        raise GenBenchError(f"images must be square with a side divisible by 8 (the pipeline needs it), got {height}x{width}; resize them first")
    if prediction_type not in PREDICTION_TYPES:
        raise GenBenchError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    for name, value in (("uncond_prob", uncond_prob), ("ema_decay", ema_decay)):
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise GenBenchError(f"{name} must be a number in [0, 1), got {value!r}")
    captions = caption_templates(templates)
    rng = np.random.default_rng(seed)
    pixels = to_unit_range(images) * 2 - 1
    with deterministic(seed, num_threads):
        generator = torch.Generator().manual_seed(seed)
        pipe = build_pipeline(seed, height, prediction_type)
        vae_losses = train_vae(pipe.vae, pixels, steps=vae_steps, batch_size=min(vae_batch_size, len(pixels)),
                               lr=vae_lr, kl_weight=kl_weight, rng=rng, generator=generator, progress=progress)
        raw = encode_latents(pipe.vae, pixels)
        pipe.vae.register_to_config(scaling_factor=float(1.0 / raw.std()))
        latents = raw * pipe.vae.config.scaling_factor
        token_ids = tokenize(pipe.tokenizer, caption_table(captions, classnames) + [""])
        ema, unet_losses = train_unet(
            pipe.unet, pipe.text_encoder, pipe.scheduler, latents, labels, token_ids,
            num_templates=len(captions), num_classes=len(classnames), train_text_encoder=train_text_encoder, steps=unet_steps,
            batch_size=min(unet_batch_size, len(latents)), lr=unet_lr, uncond_prob=uncond_prob,
            ema_decay=ema_decay, snr_gamma=snr_gamma, rng=rng, generator=generator, progress=progress,
        )
        for name, state in ema.items():
            getattr(pipe, name).load_state_dict(state)
    with transformers_progress(progress):
        pipe.save_pretrained(str(out_dir), safe_serialization=True)
    return training_record(out_dir, start, unet_losses, vae_loss=tail_mean(vae_losses), vae_losses=vae_losses)
