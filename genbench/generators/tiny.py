"""Tiny Stable-Diffusion-architecture components built in process from configs.

The same classes as Stable Diffusion 2.1 (UNet2DConditionModel with cross-attention,
AutoencoderKL, CLIPTextModel, CLIP BPE tokenizer, DDIM scheduler), shrunk so that a CPU runs
them in seconds. Weights come from a seeded initialisation, so the same seed gives the same
weights; a trained miniature is saved with `save_pretrained` and loaded back like real weights.
The VAE has two resolution levels (latents at half the image size).
"""

from __future__ import annotations

import tempfile

import torch

from genbench.generators.sd2 import SD_DDIM_SCHEDULE

TEXT_HIDDEN = 32


def tiny_unet_config(image_size: int) -> dict:
    return dict(
        sample_size=image_size // 2,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def tiny_vae_config(image_size: int) -> dict:
    return dict(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
    )


def tiny_text_config() -> dict:
    return dict(
        hidden_size=TEXT_HIDDEN,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=49408,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        projection_dim=TEXT_HIDDEN,
    )


def build_tiny_sd_components(seed: int = 0, image_size: int = 32) -> dict:
    """UNet, VAE, text encoder, tokenizer and scheduler with seeded weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from genbench.generators.tokenizer import load_clip_tokenizer, write_clip_tokenizer_files

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**tiny_unet_config(image_size))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**tiny_vae_config(image_size))
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**tiny_text_config()))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(write_clip_tokenizer_files(tmp))
    scheduler = DDIMScheduler(**SD_DDIM_SCHEDULE)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def build_tiny_sd_pipeline(seed: int = 0, image_size: int = 32):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        **build_tiny_sd_components(seed, image_size),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
