"""Load every model a profile names through the kit's own loaders, as the stages call them, and
print one JSON object of results: run by tests/test_rehearsal_models.py in a fresh process with
HF_HOME pointing at the stand-ins and HF_HUB_OFFLINE=1 (huggingface_hub reads both at import).

    python tests/standin_loads.py PROFILE.yaml
"""

from __future__ import annotations

import functools
import json
import sys
import time
import traceback

import numpy as np
import torch
import yaml

RESULT_PREFIX = "STANDIN-LOADS "
NOT_PROVIDED = {  # loaders called with models no stand-in was written for
    "missing_generator": ("generator", "genbench-test/not-provided", None),
    "missing_clip": ("clip", "RN101", "openai"),
    "missing_enhancer": ("text-to-text", "genbench-test/not-provided-t5", None),
}
WRONG_REVISION = "0" * 40


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.cache
def check_clip(name: str, pretrained: str | None, seed: int) -> dict:
    """(Identical calls of several stages are loaded once.)"""
    from open_clip.transformer import QuickGELU

    from genbench.clip_models import load_clip
    from genbench.features import encode_texts

    bundle = load_clip(name, pretrained, seed=seed, device="cpu")
    feats = encode_texts(bundle, ["a photo of a cat"], device="cpu")
    quick = any(isinstance(m, QuickGELU) for m in bundle.model.modules())
    return {"params": _n_params(bundle.model), "dim": int(feats.shape[1]), "quick_gelu": quick}


def check_generator(model: str, revision: str | None, dtype: str, seed: int, size: int, variant: str | None) -> dict:
    from genbench.generators import load_pipeline, resolved_revision

    pipe = load_pipeline(model, revision=revision, dtype=dtype, device="cpu", seed=seed, image_size=size, variant=variant)
    out = {name: type(c).__name__ for name, c in pipe.components.items() if c is not None}
    out.update(pipeline=type(pipe).__name__, resolved_revision=resolved_revision(pipe),
               prediction_type=pipe.scheduler.config.prediction_type, sample_size=pipe.unet.config.sample_size,
               vae_scale_factor=pipe.vae_scale_factor, weights_dtype=str(pipe.unet.dtype))
    pipe.to(torch.float32)
    images = pipe("a photo of a cat", height=32, width=32, num_inference_steps=1, output_type="np").images
    out["image_shape"] = list(images.shape)
    return out


def check_enhancer(model: str, revision: str | None, seed: int) -> dict:
    from genbench.strategies.enhance import enhance_classnames, load_enhancer

    enhancer = load_enhancer(model, revision, device="cpu", seed=seed)
    sentences = enhance_classnames(enhancer, ["cat"], 2, seed=seed, max_new_tokens=8)
    return {"model": type(enhancer.model).__name__, "sentences": sentences[0]}


def check_cip(model: str, revision: str | None, dtype: str, seed: int) -> dict:
    from genbench.strategies.captions import caption_images, load_captioner

    captioner = load_captioner(model, revision, dtype=dtype, device="cpu", seed=seed)
    captioner.model.float()
    captions = caption_images(captioner, np.zeros((2, 48, 48, 3), np.uint8), max_new_tokens=5)
    return {"model": type(captioner.model).__name__, "captions": captions}


def check_filter_captioner(spec: str) -> dict:
    from genbench.retrieval.filter import load_captioner

    captioner = load_captioner(spec, "cpu")
    captions = captioner([np.zeros((48, 48, 3), np.uint8)], ["pool caption"])
    return {"model": type(captioner.model).__name__, "captions": captions}


def check_similarity(spec: str) -> dict:
    from genbench.retrieval.filter import load_similarity

    similarity = load_similarity(spec, "cpu")
    values = similarity(["a cat on a table", "a dog"], ["cat", "cat"])
    return {"model": type(similarity.model).__name__, "values": [float(v) for v in values]}


def check_not_provided(kind: str, name: str, revision: str | None) -> dict:
    from genbench.clip_models import load_clip
    from genbench.generators import load_pipeline
    from genbench.strategies.enhance import load_enhancer

    loaders = {"generator": lambda: load_pipeline(name, revision=revision),
               "clip": lambda: load_clip(name, revision),
               "text-to-text": lambda: load_enhancer(name, revision)}
    loaders[kind]()
    return {"loaded": name}


def checks(params: dict) -> dict:
    """Check name -> zero-argument callable returning a JSON-able dict."""
    g, inv = params["generate"], params["invert"]
    out = {
        "generate.model": lambda: check_generator(g["model"], g["revision"], g["dtype"], g["seed"], g["height"], g["variant"]),
        "invert.model": lambda: check_generator(inv["model"], inv["revision"], inv["dtype"], inv["seed"], inv["resolution"], None),
        "generate.le_model": lambda: check_enhancer(g["le_model"], g["le_revision"], g["seed"]),
        "generate.cip_model": lambda: check_cip(g["cip_model"], g["cip_revision"], g["dtype"], g["seed"]),
        "invert.filter_captioner": lambda: check_filter_captioner(inv["filter_captioner"]),
        "invert.filter_similarity": lambda: check_similarity(inv["filter_similarity"]),
        "wrong_revision": lambda: check_generator(g["model"], WRONG_REVISION, "float32", 0, 32, None),
    }
    for section, key, tag, seed in (("embed", "model", "pretrained", "seed"), ("generate", "cf_model", "cf_pretrained", "seed"),
                                    ("index", "model", "pretrained", "seed"), ("quality", "model", "pretrained", "model_seed"),
                                    ("invert", "filter_clip_model", "filter_clip_pretrained", "seed")):
        p = params[section]
        out[f"{section}.{key}"] = lambda p=p, key=key, tag=tag, seed=seed: check_clip(p[key], p[tag], p[seed])
    for name, (kind, model, revision) in NOT_PROVIDED.items():
        out[name] = lambda kind=kind, model=model, revision=revision: check_not_provided(kind, model, revision)
    return out


def run(params: dict) -> dict:
    from genbench.errors import GenBenchError

    results = {}
    for name, check in checks(params).items():
        started = time.perf_counter()
        try:
            results[name] = {"ok": True, **check()}
        except GenBenchError as exc:
            results[name] = {"ok": False, "error": "GenBenchError", "message": str(exc)}
        except Exception as exc:  # any other failure is a test failure, reported with its traceback
            results[name] = {"ok": False, "error": type(exc).__name__, "message": traceback.format_exc()[-2000:]}
        results[name]["seconds"] = time.perf_counter() - started
    return results


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        profile = yaml.safe_load(fh)
    print(RESULT_PREFIX + json.dumps(run(profile)))
