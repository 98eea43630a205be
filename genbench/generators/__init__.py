"""Text-to-image generators: any diffusers pipeline by hub id or local folder, or a built-in one.

`load_pipeline(model, ...)` accepts
- a built-in name (`BUILTIN_PIPELINES`, built in process with seeded weights; no download),
- a local folder written by `save_pretrained` (loaded with `local_files_only=True`; safetensors
  only, checked whole first by `genbench.weights.check_model_folder`),
- a hub id pinned by `revision` (loaded from the local Hugging Face cache, HF_HOME, or the hub
  when it can be reached), through diffusers' AutoPipelineForText2Image, so any text-to-image
  family it knows works (Stable Diffusion 1/2, SDXL, SD3, PixArt, ...).

`configure_pipeline` then sets the scheduler (`SCHEDULERS`), the attention backend and the
optional torch.compile of the denoiser. Height and width are always passed explicitly when
generating (SD 2.1 defaults to 768 px, its -base variant to 512 px).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from functools import partial
from typing import Callable

import torch

from genbench.errors import GenBenchError
from genbench.generators.tiny import build_tiny_sd_pipeline
from genbench.strategies.hub import load_pretrained

# Built-in pipelines: name -> factory(seed, image_size) returning a diffusers pipeline.
BUILTIN_PIPELINES: dict[str, Callable[..., object]] = {"tiny-sd": build_tiny_sd_pipeline}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise GenBenchError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[name]


def _from_pretrained(path: str, *, dtype: torch.dtype, variant: str | None, local_files_only: bool = False,
                     revision: str | None = None):
    """A local folder through DiffusionPipeline, a hub id through AutoPipelineForText2Image."""
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline

    if local_files_only:
        return DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True, variant=variant, use_safetensors=True)
    return AutoPipelineForText2Image.from_pretrained(path, revision=revision, dtype=dtype, variant=variant, use_safetensors=True)


def load_pipeline(model: str, *, revision: str | None = None, dtype: str = "float32", device: str = "cpu",
                  seed: int = 0, image_size: int = 32, variant: str | None = None):
    """The text-to-image pipeline `model` names (see the module docstring), safety checker off, on `device`."""
    if model in BUILTIN_PIPELINES:
        pipe = BUILTIN_PIPELINES[model](seed=seed, image_size=image_size)
        return pipe.to(device)
    load = partial(_from_pretrained, dtype=resolve_dtype(dtype), variant=variant)
    hint = f"point generate.model at a local save_pretrained folder (built-in offline models: {', '.join(BUILTIN_PIPELINES)})"
    pipe = load_pretrained(model, revision, "text-to-image model", {}, load, hint=hint)
    if hasattr(pipe, "safety_checker"):
        pipe.safety_checker = None
    return pipe.to(device)


def weights_sha256(pipe) -> str:
    """SHA-256 over every weight tensor of the pipeline's modules (names sorted), so the manifest
    pins the exact weights whatever the file layout they were loaded from."""
    h = hashlib.sha256()
    for name, component in sorted(pipe.components.items()):
        if isinstance(component, torch.nn.Module):
            for key, tensor in sorted(component.state_dict().items()):
                h.update(f"{name}.{key}".encode())
                h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def set_attention_backend(pipe, backend: str) -> str:
    """'sdpa' (PyTorch scaled-dot-product attention, the default) or 'xformers' when installed."""
    if backend == "sdpa":
        return backend
    if backend == "xformers":
        try:
            pipe.enable_xformers_memory_efficient_attention()
        except Exception as exc:  # xformers missing or no CUDA
            raise GenBenchError(f"attention backend 'xformers' unavailable ({exc}); install the gpu extra or use 'sdpa'") from exc
        return backend
    raise GenBenchError(f"unknown attention backend {backend!r}; use 'sdpa' or 'xformers'")


def resolved_revision(pipe) -> str | None:
    """The commit a hub model was loaded from (its snapshot folder in the HF cache), if known:
    from the pipeline's own path, else from its components' (diffusers gives a hub-loaded
    pipeline the bare id, its components the snapshot's subfolders)."""
    paths = [getattr(pipe, "name_or_path", None)]
    for component in getattr(pipe, "components", {}).values():
        config = getattr(component, "config", None)
        own = config.get("_name_or_path") if isinstance(config, dict) else getattr(config, "_name_or_path", None)
        paths += [own, getattr(component, "name_or_path", None)]
    for path in paths:
        found = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(path or ""))
        if found:
            return found.group(1)
    return None


# Schedulers: name -> (diffusers class name, extra config); "default" keeps the model's own.
SCHEDULERS: dict[str, tuple[str, dict] | None] = {
    "default": None,
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++_2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
}


def set_scheduler(pipe, name: str) -> str:
    """Replace the pipeline's scheduler by `SCHEDULERS[name]` built from the current one's config."""
    if name not in SCHEDULERS:
        raise GenBenchError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}")
    entry = SCHEDULERS[name]
    if entry is None:
        return type(pipe.scheduler).__name__
    import diffusers

    cls_name, extra = entry
    pipe.scheduler = getattr(diffusers, cls_name).from_config(pipe.scheduler.config, **extra)
    return cls_name


def denoiser_name(pipe) -> str:
    """The pipeline's denoising network: 'unet' (Stable Diffusion, SDXL) or 'transformer' (SD3, PixArt, Flux)."""
    for name in ("unet", "transformer", "prior"):
        if isinstance(getattr(pipe, name, None), torch.nn.Module):
            return name
    raise GenBenchError(f"{type(pipe).__name__} has no unet or transformer to compile")


def compile_denoiser(pipe) -> str:
    """torch.compile the UNet or transformer in place (call after hashing the weights)."""
    name = denoiser_name(pipe)
    setattr(pipe, name, torch.compile(getattr(pipe, name)))
    return name


def configure_pipeline(pipe, *, scheduler: str = "default", attention: str = "sdpa") -> dict:
    """Scheduler and attention backend; returns what was set, for the manifest."""
    pipe.set_progress_bar_config(disable=True)
    return {"scheduler": scheduler, "scheduler_class": set_scheduler(pipe, scheduler), "attention": set_attention_backend(pipe, attention)}


def supports_negative_prompt(pipe) -> bool:
    return "negative_prompt" in inspect.signature(pipe.__call__).parameters
