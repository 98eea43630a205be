"""Stand-in models for a rehearsal: every model a profile names, with seeded random weights,
written where the kit's loaders will look for the real one with the hub switched off.

`named_models(params)` lists the models a whole profile names (`MODEL_KEYS`: the generator, the
CE/LE sentence model, the CiP captioner, the TI base, the invert filter's captioner and BERT,
every CLIP, the CLIP score's and MTS's included). `write_standin_models(params, hf_home)` writes each hub model into the Hugging Face
cache under `hf_home` (genbench.rehearsal.hf_cache: the layout a real download leaves, under the
exact id, at the pinned revision or at `main`), and returns one record per named model. What a
name needs nothing for (a built-in model, a local folder, `pool-caption`, `clip-text`, a
checkpoint file) is passed through and recorded as not provided; so is what cannot be stood in
for offline (an open_clip `hf-hub:` model or one whose text tower or tokenizer comes from the
hub), which then fails the rehearsal as it would fail a real offline run.

The stand-ins (`STANDIN_WRITERS`):
- generator: a diffusers StableDiffusionPipeline folder (UNet2DConditionModel, AutoencoderKL with
  8x downsampling, CLIPTextModel, CLIPTokenizer, DDIMScheduler, CLIPImageProcessor), small by
  default; with `full_size_generator` the SD 2.x UNet, VAE and text encoder at their published
  configs (genbench.generators.sd2). The UNet's sample size is the profile's height / 8, and a model of 768 px or more
  predicts v (SD 2.x 768-v), a smaller one epsilon (the 512 px -base model). With
  `generate.variant` the weights are saved as that variant (fp16/bf16 in that dtype).
- text-to-text: the kit's tiny T5 (genbench.strategies.enhance.build_tiny_t5), saved.
- captioner: the kit's tiny BLIP-2 (genbench.strategies.captions.build_tiny_blip2), saved.
- text-encoder: a two-layer BertModel with a WordPiece BertTokenizer over the kit's word list.
- clip: the open_clip architecture the name gives (ViT-B-32, ViT-L-14: real sizes), seeded
  init, as float32 safetensors under the hub repo and file name open_clip's pretrained config
  gives for the tag (open_clip tries the safetensors name first).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from genbench.errors import GenBenchError
from genbench.rehearsal.hf_cache import hub_cache, import_folder, snapshot_bytes
from genbench.retrieval.filter import DEFAULT_BERT, DEFAULT_FILTER_CAPTIONER, split_spec

GENERATOR, TEXT_TO_TEXT, CAPTIONER, TEXT_ENCODER, CLIP = "generator", "text-to-text", "captioner", "text-encoder", "clip"


@dataclass(frozen=True)
class ModelKey:
    """A params key that names a model: its section and key, the key of its revision (or, for a
    CLIP, of its pretrained tag), its kind, and how its value names a model id (None: no model)."""

    section: str
    key: str
    kind: str
    revision_key: str | None = None
    model_id: Callable[[str], str | None] = lambda value: value


def _spec_model(prefix: str, default: str) -> Callable[[str], str | None]:
    """`prefix:ID` -> ID (a bare `prefix` -> default); any other spec names no model."""

    def model_id(value: str) -> str | None:
        name, arg = split_spec(value)
        return (arg or default) if name == prefix else None

    return model_id


# Every params key that names a model (the stages that load one: generate, invert, embed, index
# (and retrieve, which loads the index's model), quality).
MODEL_KEYS = (
    ModelKey("generate", "model", GENERATOR, "revision"),
    ModelKey("invert", "model", GENERATOR, "revision"),
    ModelKey("generate", "le_model", TEXT_TO_TEXT, "le_revision"),
    ModelKey("generate", "cip_model", CAPTIONER, "cip_revision"),
    ModelKey("invert", "filter_captioner", CAPTIONER, None, _spec_model("blip2", DEFAULT_FILTER_CAPTIONER)),
    ModelKey("invert", "filter_similarity", TEXT_ENCODER, None, _spec_model("bert", DEFAULT_BERT)),
    ModelKey("embed", "model", CLIP, "pretrained"),
    ModelKey("finetune", "model", CLIP, "pretrained"),
    ModelKey("generate", "cf_model", CLIP, "cf_pretrained"),
    ModelKey("index", "model", CLIP, "pretrained"),
    ModelKey("retrieve", "mts_model", CLIP, "mts_pretrained"),
    ModelKey("quality", "model", CLIP, "pretrained"),
    ModelKey("quality", "clip_score_model", CLIP, "clip_score_pretrained"),
    ModelKey("invert", "filter_clip_model", CLIP, "filter_clip_pretrained"),
)


@dataclass
class NamedModel:
    """One model the params name: kind, id (open_clip name for a CLIP), revision (pretrained tag
    for a CLIP) and the params keys naming it."""

    kind: str
    id: str
    revision: str | None
    keys: list[str]


def named_models(params: dict) -> list[NamedModel]:
    """The distinct models the params name, in `MODEL_KEYS` order. A section or key absent is a
    model not named (pass sections with their stage defaults filled in to cover the defaults)."""
    found: dict[tuple, NamedModel] = {}
    for mk in MODEL_KEYS:
        section = params.get(mk.section) or {}
        value = section.get(mk.key)
        if not isinstance(value, str):
            continue
        model_id = mk.model_id(value)
        if model_id is None:
            continue
        revision = section.get(mk.revision_key) if mk.revision_key else None
        key = (mk.kind, model_id, revision)
        found.setdefault(key, NamedModel(mk.kind, model_id, revision, []))
        found[key].keys.append(f"{mk.section}.{mk.key}")
    for i, entry in enumerate((params.get("embed") or {}).get("backbones") or []):
        key = (CLIP, entry["model"], entry.get("pretrained"))
        found.setdefault(key, NamedModel(CLIP, entry["model"], entry.get("pretrained"), []))
        found[key].keys.append(f"embed.backbones[{i}]")
    return list(found.values())


def _builtin_names(kind: str) -> set[str]:
    from genbench.clip_models import BUILTIN_CLIP
    from genbench.generators import BUILTIN_PIPELINES
    from genbench.strategies.captions import BUILTIN_CAPTIONERS
    from genbench.strategies.enhance import BUILTIN_ENHANCERS

    registries = {GENERATOR: BUILTIN_PIPELINES, TEXT_TO_TEXT: BUILTIN_ENHANCERS, CAPTIONER: BUILTIN_CAPTIONERS,
                  TEXT_ENCODER: {}, CLIP: BUILTIN_CLIP}
    return set(registries[kind])


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _passed_through(model: NamedModel) -> str | None:
    """Why nothing is written for a model of a transformers/diffusers kind, or None."""
    if model.id in _builtin_names(model.kind):
        return "built in"
    if model.id.startswith("local-dir:") or Path(model.id).is_dir():
        return "a local folder"
    if not _is_hub_id(model.id):
        return "not a hub id"
    return None


@dataclass
class ClipTarget:
    """Where open_clip looks for the weights of NAME/TAG: a hub repo (at main) and file name."""

    architecture: str
    repo: str
    filename: str


def clip_target(name: str, pretrained: str | None) -> ClipTarget | str:
    """The hub repo and safetensors file open_clip resolves NAME/TAG to, or why none."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
    from open_clip.factory import get_model_config
    from open_clip.pretrained import _get_safe_alternatives, get_pretrained_cfg

    if name in _builtin_names(CLIP):
        return "built in"
    if name.startswith("local-dir:"):
        return "a local folder"
    if name.startswith("hf-hub:"):
        return "an hf-hub: model (its config comes from the hub; no architecture to stand in for)"
    architecture = name.replace("/", "-")
    model_cfg = get_model_config(architecture)
    if model_cfg is None:
        return f"not an open_clip model name ({architecture!r})"
    text_cfg = model_cfg.get("text_cfg", {})
    for hub_key in ("hf_model_name", "hf_tokenizer_name"):
        if text_cfg.get(hub_key):
            return f"its text tower or tokenizer comes from the hub ({text_cfg[hub_key]!r}); not stood in for"
    if not pretrained:
        return "no pretrained tag (random init, nothing to download)"
    cfg = get_pretrained_cfg(architecture, pretrained)
    if not cfg:
        return "a checkpoint file" if os.path.isfile(pretrained) else f"no open_clip pretrained tag {pretrained!r}"
    if not cfg.get("hf_hub"):
        return f"tag {pretrained!r} downloads from a URL, not the hub"
    repo, filename = os.path.split(cfg["hf_hub"])
    safe = list(_get_safe_alternatives(filename or HF_WEIGHTS_NAME))
    if not safe and not (filename or "").endswith(".safetensors"):
        return f"tag {pretrained!r} names {filename!r}, which has no safetensors form"
    return ClipTarget(architecture, repo, (safe[0] if safe else filename) or HF_SAFE_WEIGHTS_NAME)


def model_seed(seed: int, model: NamedModel) -> int:
    """A seed per model, so that two stand-ins never share weights by accident."""
    digest = hashlib.sha256(f"{seed}/{model.kind}/{model.id}/{model.revision}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# ---- generator ---------------------------------------------------------------------------------

SMALL_VAE_CHANNELS = (16, 16, 32, 32)  # four levels: latents at 1/8 of the image side, as in SD
V_PREDICTION_FROM = 768  # SD 2.x: the 768 px model predicts v, the 512 px -base model epsilon
VARIANT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _native_size(params: dict, model: NamedModel) -> int:
    if "generate.model" in model.keys and (params.get("generate") or {}).get("height"):
        return int(params["generate"]["height"])
    return int((params.get("invert") or {}).get("resolution") or 512)


def build_generator(params: dict, model: NamedModel, seed: int, full_size: bool):
    """A StableDiffusionPipeline of seeded weights; small configs unless `full_size`."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    from genbench.generators.sd2 import sd21_scheduler_config, sd21_text_config, sd21_unet_config, sd21_vae_config
    from genbench.generators.tiny import tiny_text_config, tiny_unet_config, tiny_vae_config
    from genbench.generators.tokenizer import load_clip_tokenizer, write_clip_tokenizer_files

    size = _native_size(params, model)
    v_prediction = size >= V_PREDICTION_FROM
    if full_size:
        unet_cfg = sd21_unet_config(sample_size=size // 8, upcast_attention=v_prediction)
        vae_cfg, text_cfg = sd21_vae_config(), sd21_text_config()
    else:
        levels = len(SMALL_VAE_CHANNELS)
        unet_cfg, text_cfg = dict(tiny_unet_config(size), sample_size=size // 8), tiny_text_config()
        vae_cfg = dict(tiny_vae_config(size), block_out_channels=SMALL_VAE_CHANNELS,
                       down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels)
    vae_cfg["sample_size"] = size
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(write_clip_tokenizer_files(tmp))
    scheduler = DDIMScheduler(**sd21_scheduler_config("v_prediction" if v_prediction else "epsilon"))
    return StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=CLIPImageProcessor(), requires_safety_checker=False)


def write_generator(params: dict, model: NamedModel, folder: Path, seed: int, full_size: bool) -> None:
    from genbench.generators.tokenizer import write_clip_tokenizer_files

    variant = (params.get("generate") or {}).get("variant")
    pipe = build_generator(params, model, seed, full_size)
    if variant in VARIANT_DTYPES:
        pipe.to(dtype=VARIANT_DTYPES[variant])
    pipe.save_pretrained(folder, safe_serialization=True, variant=variant)
    shutil.rmtree(folder / "tokenizer")
    write_clip_tokenizer_files(folder / "tokenizer")  # vocab.json + merges.txt, as SD's repos hold it


# ---- transformers models -----------------------------------------------------------------------

def write_text_to_text(params: dict, model: NamedModel, folder: Path, seed: int, full_size: bool) -> None:
    from genbench.strategies.enhance import build_tiny_t5

    t5 = build_tiny_t5(seed)
    t5.model.save_pretrained(folder)
    t5.tokenizer.save_pretrained(folder)


def write_captioner(params: dict, model: NamedModel, folder: Path, seed: int, full_size: bool) -> None:
    from genbench.strategies.captions import build_tiny_blip2

    blip2 = build_tiny_blip2(seed)
    blip2.model.save_pretrained(folder)
    blip2.processor.save_pretrained(folder)


BERT_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_text_encoder(params: dict, model: NamedModel, folder: Path, seed: int, full_size: bool) -> None:
    """A two-layer BertModel and an uncased WordPiece BertTokenizer over the kit's word list."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from genbench.strategies.word_tokenizer import SPECIAL_TOKENS, word_vocabulary

    words = [w for w in word_vocabulary() if w not in SPECIAL_TOKENS]
    vocab_file = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file.write_text("\n".join([*BERT_SPECIAL, *words]) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(vocab_file), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(BERT_SPECIAL) + len(words), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# ---- open_clip ---------------------------------------------------------------------------------

def write_clip(target: ClipTarget, folder: Path, seed: int) -> None:
    """open_clip_config.json and the seeded architecture's float32 state dict as safetensors."""
    import logging

    import open_clip
    from open_clip.factory import get_model_config
    from safetensors.torch import save_file

    from genbench.clip_models import CLIP_MEAN, CLIP_STD

    torch.manual_seed(seed)
    logging.disable(logging.WARNING)  # open_clip warns that the model is initialised randomly
    try:
        clip = open_clip.create_model(target.architecture, pretrained=None)
    finally:
        logging.disable(logging.NOTSET)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": get_model_config(target.architecture),
              "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.detach().contiguous() for k, v in clip.state_dict().items()}, str(folder / target.filename))


# Stand-in writers of the hub kinds: kind -> writer(params, model, folder, seed, full_size) that
# fills `folder` with the files of the model's hub repo.
STANDIN_WRITERS: dict[str, Callable[[dict, NamedModel, Path, int, bool], None]] = {
    GENERATOR: write_generator,
    TEXT_TO_TEXT: write_text_to_text,
    CAPTIONER: write_captioner,
    TEXT_ENCODER: write_text_encoder,
}


def _record(model: NamedModel, **fields) -> dict:
    base = {"id": model.id, "revision": model.revision, "kind": model.kind, "keys": list(model.keys),
            "provided": False, "repo": None, "commit": None, "path": None, "bytes": 0, "seconds": 0.0, "note": ""}
    return {**base, **fields}


@dataclass
class _Plan:
    """What to write for one named model: the hub repo and revision, and the writer filling a
    folder with the repo's files (or, instead, why nothing is written)."""

    model: NamedModel
    repo: str | None = None
    revision: str | None = None
    write: Callable[[Path], None] | None = None
    note: str = ""


def _plan(params: dict, model: NamedModel, seed: int, full_size: bool) -> _Plan:
    own_seed = model_seed(seed, model)
    if model.kind == CLIP:
        target = clip_target(model.id, model.revision)
        if isinstance(target, str):
            return _Plan(model, note=target)
        return _Plan(model, target.repo, None, lambda folder: write_clip(target, folder, own_seed))
    reason = _passed_through(model)
    if reason is not None:
        return _Plan(model, note=reason)
    writer = STANDIN_WRITERS[model.kind]
    return _Plan(model, model.id, model.revision, lambda folder: writer(params, model, folder, own_seed, full_size))


def _check_plans(plans: list[_Plan]) -> None:
    """Two kinds of stand-in in one repo at one revision would overwrite each other."""
    seen: dict[tuple, _Plan] = {}
    for plan in plans:
        if plan.write is None:
            continue
        other = seen.setdefault((plan.repo, plan.revision or "main"), plan)
        if other.model.kind != plan.model.kind:
            raise GenBenchError(
                f"params keys {', '.join(other.model.keys)} ({other.model.kind}) and {', '.join(plan.model.keys)} "
                f"({plan.model.kind}) name the same hub model {plan.repo!r}; give each the model of its kind")


def write_standin_models(params: dict, hf_home: Path, *, seed: int = 0, full_size_generator: bool = False) -> list[dict]:
    """Write a seeded stand-in for every hub model the params (a whole profile) name into the
    Hugging Face cache of `hf_home` (its `hub/` folder), and return one record per named model:
    id, revision (a CLIP's pretrained tag), kind, keys (the params keys naming it), provided,
    repo and commit (where it was written), path (the snapshot folder), bytes, seconds (to write)
    and note (why nothing was provided). The loaders find the stand-ins with HF_HOME=hf_home and
    HF_HUB_OFFLINE=1."""
    from tqdm import tqdm

    hf_home = Path(hf_home)
    plans = [_plan(params, model, seed, full_size_generator) for model in named_models(params)]
    _check_plans(plans)
    hub_cache(hf_home).mkdir(parents=True, exist_ok=True)
    records = []
    for plan in tqdm(plans, desc="stand-in models", unit="model", disable=not plans):
        if plan.write is None:
            records.append(_record(plan.model, note=plan.note))
            continue
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=hub_cache(hf_home), prefix=".standin-") as tmp:
            plan.write(Path(tmp) / "repo")
            snapshot, commit = import_folder(Path(tmp) / "repo", hf_home, plan.repo, plan.revision)
        records.append(_record(plan.model, provided=True, repo=plan.repo, commit=commit, path=str(snapshot),
                               bytes=snapshot_bytes(snapshot), seconds=time.perf_counter() - started))
    return records
