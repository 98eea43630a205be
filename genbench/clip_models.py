"""CLIP models for encoding: open_clip architectures, real weights or the built-in tiny one.

`load_clip(name, pretrained)` accepts
- a built-in name (`BUILTIN_CLIP`, built in process with seeded weights, no download),
- `local-dir:PATH` (open_clip's own layout: open_clip_config.json + open_clip_model.safetensors,
  what `save_clip` writes),
- an open_clip model name with a `pretrained` tag or checkpoint file (e.g. `ViT-B-32`, `openai`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from genbench.errors import GenBenchError
from genbench.weights import CONVERT_HINT, check_model_folder, check_safetensors_file

TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 4},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipBundle:
    """A CLIP model with its evaluation preprocessing and tokenizer."""

    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    name: str
    config: dict


def build_tiny_clip(seed: int = 0, config: dict | None = None) -> tuple[torch.nn.Module, dict]:
    from open_clip.model import CLIP

    config = config or TINY_CLIP_CONFIG
    torch.manual_seed(seed)
    model = CLIP(**config)
    return model.eval(), config


def _bundle_from_model(model: torch.nn.Module, config: dict, name: str) -> ClipBundle:
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transform import image_transform

    preprocess = image_transform(config["vision_cfg"]["image_size"], is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    tokenizer = SimpleTokenizer(context_length=config["text_cfg"]["context_length"])
    return ClipBundle(model=model.eval(), preprocess=preprocess, tokenizer=tokenizer, name=name, config=config)


def _tiny_clip(seed: int = 0) -> ClipBundle:
    model, config = build_tiny_clip(seed)
    return _bundle_from_model(model, config, "tiny-clip")


# Built-in models: name -> zero-argument-able factory returning a ClipBundle (no download).
BUILTIN_CLIP: dict[str, Callable[..., ClipBundle]] = {"tiny-clip": _tiny_clip}


def save_clip(model: torch.nn.Module, config: dict, directory: str | Path) -> Path:
    """Save in open_clip's local-dir layout (config JSON + safetensors), loadable with
    `load_clip("local-dir:" + directory)` or `open_clip.create_model("local-dir:...")`."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": config, "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}}
    (directory / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return directory


def _tag_uses_quick_gelu(name: str, pretrained: str | None) -> bool:
    """Whether open_clip's pretrained tag was trained with QuickGELU (OpenAI's CLIPs were; the
    plain architecture names build GELU, which open_clip only warns about)."""
    from open_clip.pretrained import get_pretrained_cfg

    return bool(pretrained) and bool(get_pretrained_cfg(name.replace("/", "-"), pretrained).get("quick_gelu"))


def check_pretrained_used(name: str, pretrained: str | None, key: str) -> None:
    """`pretrained` must not be given where load_clip ignores it (built-in and local-dir models);
    `key` is the params section, for the error."""
    if pretrained is not None and (name in BUILTIN_CLIP or name.startswith("local-dir:")):
        raise GenBenchError(f"params key '{key}.pretrained' = {pretrained!r} is ignored by {key}.model = {name!r} "
                            "(its weights are its own); set it to null, or name an open_clip architecture such as ViT-B-32")


def check_clip_source(name: str, pretrained: str | None = None) -> None:
    """Check what `load_clip(name, pretrained)` would read, before anything is loaded: a local-dir
    folder holds a whole safetensors model (never a pickle) and a checkpoint file is safetensors."""
    if name.startswith("local-dir:"):
        path = Path(name[len("local-dir:"):])
        if not (path / "open_clip_config.json").is_file():
            raise GenBenchError(
                f"CLIP model {name!r}: no open_clip_config.json in {str(path)!r}; "
                "save one with genbench.clip_models.save_clip or run the bootstrap stage"
            )
        check_model_folder(path, "CLIP model")
    if pretrained and Path(pretrained).is_file():
        if Path(pretrained).suffix != ".safetensors":
            raise GenBenchError(f"CLIP checkpoint pretrained = {pretrained!r} is not a .safetensors file; the kit loads "
                                f"safetensors only, as a pickle can run code when loaded; {CONVERT_HINT}")
        check_safetensors_file(Path(pretrained))


def load_clip(name: str, pretrained: str | None = None, *, seed: int = 0, device: str | torch.device = "cpu") -> ClipBundle:
    check_clip_source(name, pretrained)
    if name in BUILTIN_CLIP:
        bundle = BUILTIN_CLIP[name](seed)
        bundle.model.to(device)
        return bundle
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device,
                                                                     force_quick_gelu=_tag_uses_quick_gelu(name, pretrained))
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/OSError for missing weights
        raise GenBenchError(
            f"cannot load CLIP model {name!r} (pretrained={pretrained!r}) offline: {str(exc).splitlines()[0][:200]}; "
            "put the weights in the HF_HOME cache or pass a local checkpoint path as pretrained "
            f"(built-in offline models: {', '.join(BUILTIN_CLIP)})"
        ) from exc
    config: dict[str, Any] = {}
    return ClipBundle(model=model.eval(), preprocess=preprocess, tokenizer=tokenizer, name=name, config=config)
