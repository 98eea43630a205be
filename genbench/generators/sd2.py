"""Stable Diffusion 2.x's published component configs (stabilityai/stable-diffusion-2-1, the 768 px
v-prediction model; the 512 px -base model differs in sample size, upcasting and epsilon
prediction), for building the real architecture with random weights: benchmarks and full-size
stand-ins, no download."""

from __future__ import annotations

SD21_SAMPLE_SIZE = 96  # latent side of the 768 px model (the -base model: 64)


def sd21_unet_config(sample_size: int = SD21_SAMPLE_SIZE, upcast_attention: bool = True) -> dict:
    """unet/config.json."""
    return dict(
        sample_size=sample_size, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
        act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True, upcast_attention=upcast_attention, dual_cross_attention=False,
    )


def sd21_vae_config() -> dict:
    """vae/config.json."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=768, layers_per_block=2, act_fn="silu",
        norm_num_groups=32, block_out_channels=(128, 256, 512, 512), scaling_factor=0.18215,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )


def sd21_text_config() -> dict:
    """text_encoder/config.json (OpenCLIP ViT-H/14's text tower, 23 of 24 layers)."""
    return dict(
        vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
        max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=512,
        bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )


# Stable Diffusion's DDIM noise schedule: scheduler_config.json less prediction_type (the tiny and
# miniature pipelines use it too).
SD_DDIM_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    set_alpha_to_one=False, steps_offset=1,
)


def sd21_scheduler_config(prediction_type: str = "v_prediction") -> dict:
    """scheduler/scheduler_config.json (DDIM)."""
    return dict(**SD_DDIM_SCHEDULE, prediction_type=prediction_type)
