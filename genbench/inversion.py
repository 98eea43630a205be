"""Textual inversion (Gal et al., 2022) per class, as GenBench Section 4 uses it.

For each class a placeholder token `<|{dataset} {class name}|>` is added to the pipeline's
tokenizer and text encoder. Its embedding starts as the class name's token embedding (the mean
of the rows of the name's tokens when the name splits into several) and is the only thing
trained: every other parameter is frozen, the gradient of every other row of the embedding
matrix is zeroed before each step, and those rows are restored after it. The loss is the
diffusion loss the scheduler's `prediction_type` asks for (`PREDICTION_TARGETS`): the mean
squared error between the UNet's output and the noise (epsilon), the velocity (v_prediction) or
the clean latents (sample), at uniformly drawn timesteps, conditioned on the class's templates
with the placeholder in place of the class name.

Learned embeddings are saved one file per class as safetensors `{token: (1, hidden) tensor}`,
the single-key layout diffusers' `load_textual_inversion(path)` reads (`token=` may override
the name); `load_inversion` loads a whole directory into a pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from genbench import storage
from genbench.errors import GenBenchError, run_first
from genbench.prompts import placeholder_token

__all__ = [
    "InversionSettings", "TokenTraining", "add_placeholder_tokens", "load_inversion", "placeholder_token",
    "save_embedding", "train_token",
]
TOKENS_FILE = "tokens.json"


def embedding_file(class_index: int) -> str:
    return f"class-{class_index:04d}.safetensors"


# prediction_type -> (scheduler, clean latents, noise, timesteps) -> what the UNet should predict.
PREDICTION_TARGETS: dict[str, Callable] = {
    "epsilon": lambda scheduler, latents, noise, t: noise,
    "v_prediction": lambda scheduler, latents, noise, t: scheduler.get_velocity(latents, noise, t),
    "sample": lambda scheduler, latents, noise, t: latents,
}


def prediction_target(scheduler) -> Callable:
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TARGETS:
        raise GenBenchError(f"scheduler prediction_type {kind!r} is not supported; known: {', '.join(PREDICTION_TARGETS)}")
    return PREDICTION_TARGETS[kind]


@dataclass(frozen=True)
class InversionSettings:
    """Training settings per class: steps, AdamW learning rate, images per step, training
    resolution (None: the pipeline's native size) and fixed draws for the evaluation loss."""

    steps: int = 10
    learning_rate: float = 5e-3
    batch_size: int = 2
    resolution: int | None = None
    eval_draws: int = 4


@dataclass
class TokenTraining:
    """One class's training: its token, the learned (hidden,) embedding, the loss of every step,
    and the evaluation loss (fixed noise and timesteps) before and after."""

    token: str
    token_id: int
    embedding: torch.Tensor
    losses: list[float] = field(default_factory=list)
    eval_before: float = float("nan")
    eval_after: float = float("nan")


def _components(pipe):
    for name in ("tokenizer", "text_encoder", "unet", "vae", "scheduler"):
        if getattr(pipe, name, None) is None:
            raise GenBenchError(f"textual inversion needs a pipeline with a {name}; {type(pipe).__name__} has none")
    return pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae, pipe.scheduler


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def add_placeholder_tokens(pipe, tokens: list[str], init_texts: list[str]) -> list[int]:
    """Add `tokens` to the tokenizer and text encoder, each row initialised from its init text's
    token embeddings (their mean); returns the new token ids."""
    tokenizer, text_encoder, *_ = _components(pipe)
    if len(set(tokens)) != len(tokens):
        raise GenBenchError(f"placeholder tokens repeat: {tokens}")
    present = [t for t in tokens if t in tokenizer.get_vocab()]
    if present:
        raise GenBenchError(f"placeholder token {present[0]!r} is already in the tokenizer; load a fresh pipeline")
    init_rows = []
    weight = text_encoder.get_input_embeddings().weight
    for token, text in zip(tokens, init_texts):
        ids = token_ids(tokenizer, text)
        if not ids:
            raise GenBenchError(f"the init text {text!r} of {token!r} tokenizes to nothing; give the class a name")
        init_rows.append(weight.data[ids].float().mean(dim=0))
    tokenizer.add_tokens(tokens)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    new_ids = tokenizer.convert_tokens_to_ids(tokens)
    with torch.no_grad():
        for token_id, row in zip(new_ids, init_rows):
            weight[token_id] = row.to(weight.dtype)
    return list(new_ids)


def reference_pixels(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, R, R) in [-1, 1]: centre square crop, bilinear resize."""
    out = []
    for img in images:
        pil = Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB")
        side = min(pil.size)
        left, top = (pil.width - side) // 2, (pil.height - side) // 2
        pil = pil.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BILINEAR)
        out.append(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(out)


@torch.no_grad()
def reference_latents(pipe, pixels: torch.Tensor, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the VAE's latent distribution of each image, scaled by the
    VAE's scaling factor (a training latent is mean + std * N(0, 1))."""
    vae = pipe.vae
    means, stds = [], []
    for start in range(0, len(pixels), batch_size):
        dist = vae.encode(pixels[start : start + batch_size].to(vae.device, vae.dtype)).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    scale = vae.config.scaling_factor
    return torch.cat(means) * scale, torch.cat(stds) * scale


def _native_resolution(pipe) -> int:
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


def _prompt_ids(tokenizer, prompts: list[str], device) -> torch.Tensor:
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


def _loss(pipe, target_fn, prompt_ids: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    _, text_encoder, unet, _, scheduler = _components(pipe)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    hidden = text_encoder(prompt_ids)[0].to(unet.dtype)
    pred = unet(noisy.to(unet.dtype), timesteps, hidden).sample
    return F.mse_loss(pred.float(), target_fn(scheduler, latents, noise, timesteps).float())


def evaluation_loss(pipe, prompt_ids: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, draws: int, seed: int) -> float:
    """The diffusion loss over `draws` fixed (image, template, noise, timestep) draws, timesteps
    evenly spread over the schedule: the same draws before and after training."""
    target_fn = prediction_target(pipe.scheduler)
    g = torch.Generator().manual_seed(seed)
    device = mean.device
    n_steps = pipe.scheduler.config.num_train_timesteps
    picks = torch.arange(draws) % len(mean)
    eps = torch.randn((draws, *mean.shape[1:]), generator=g).to(device)
    noise = torch.randn((draws, *mean.shape[1:]), generator=g).to(device)
    timesteps = torch.linspace(0, n_steps - 1, draws).long().to(device)
    prompts = prompt_ids[torch.arange(draws) % len(prompt_ids)]
    with torch.no_grad():
        latents = mean[picks] + std[picks] * eps
        return float(_loss(pipe, target_fn, prompts, latents, noise, timesteps))


def train_token(pipe, token_id: int, prompts: list[str], images: np.ndarray, settings: InversionSettings, seed: int,
                progress: Callable[[int, float], None] | None = None) -> TokenTraining:
    """Learn the embedding row `token_id` from reference `images` (uint8 (N, H, W, 3)) with the
    prompts (which contain the token); nothing else changes."""
    tokenizer, text_encoder, unet, vae, scheduler = _components(pipe)
    if len(images) == 0:
        raise GenBenchError(f"no reference images for {tokenizer.convert_ids_to_tokens(token_id)!r}")
    target_fn = prediction_target(scheduler)
    device = text_encoder.device
    for module in (text_encoder, unet, vae):
        module.requires_grad_(False)
    weight = text_encoder.get_input_embeddings().weight
    weight.requires_grad_(True)
    frozen = weight.detach().clone()
    resolution = settings.resolution or _native_resolution(pipe)
    mean, std = reference_latents(pipe, reference_pixels(images, resolution))
    mean, std = mean.to(device), std.to(device)
    prompt_ids = _prompt_ids(tokenizer, prompts, device)
    result = TokenTraining(token=tokenizer.convert_ids_to_tokens(token_id), token_id=token_id, embedding=torch.empty(0))
    result.eval_before = evaluation_loss(pipe, prompt_ids, mean, std, settings.eval_draws, seed)
    optimizer = torch.optim.AdamW([weight], lr=settings.learning_rate, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed + 1)
    n_steps = scheduler.config.num_train_timesteps
    for step in range(settings.steps):
        picks = torch.randint(len(mean), (settings.batch_size,), generator=g)
        latents = mean[picks] + std[picks] * torch.randn((settings.batch_size, *mean.shape[1:]), generator=g).to(device)
        noise = torch.randn(latents.shape, generator=g).to(device)
        timesteps = torch.randint(0, n_steps, (settings.batch_size,), generator=g).to(device)
        prompt_pick = torch.randint(len(prompt_ids), (settings.batch_size,), generator=g)
        loss = _loss(pipe, target_fn, prompt_ids[prompt_pick.to(device)], latents, noise, timesteps)
        loss.backward()
        with torch.no_grad():
            row_grad = weight.grad[token_id].clone()
            weight.grad.zero_()
            weight.grad[token_id] = row_grad
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            learned = weight[token_id].clone()
            weight.copy_(frozen)
            weight[token_id] = learned
        result.losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, result.losses[-1])
    weight.requires_grad_(False)
    result.eval_after = evaluation_loss(pipe, prompt_ids, mean, std, settings.eval_draws, seed)
    result.embedding = weight[token_id].detach().float().cpu().clone()
    return result


def save_embedding(path: str | Path, token: str, embedding: torch.Tensor, meta: dict | None = None) -> Path:
    """Write `{token: (1, hidden)}` as safetensors (diffusers' single-token layout), atomically."""
    from safetensors.torch import save

    tensor = embedding.detach().float().cpu().reshape(1, -1).contiguous()
    blob = save({token: tensor}, metadata={k: str(v) for k, v in (meta or {}).items()})
    storage.atomic_write_bytes(path, blob)
    return Path(path)


def read_tokens(directory: str | Path) -> dict:
    path = Path(directory) / TOKENS_FILE
    if not path.is_file():
        raise GenBenchError(f"{path} not found; {run_first('invert', '<dataset>')}")
    return json.loads(path.read_text())


def load_inversion(pipe, directory: str | Path) -> dict[int, str]:
    """Load every learned class token of an inversion directory into `pipe` with
    `load_textual_inversion`; returns {class index: token}."""
    directory = Path(directory)
    entries = read_tokens(directory)["tokens"]
    for entry in entries:
        pipe.load_textual_inversion(str(directory / entry["file"]), token=entry["token"])
    return {int(e["class_index"]): e["token"] for e in entries}
