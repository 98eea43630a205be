"""CE / LE: sentences written from a class name by a word-to-sentence text-to-text model.

He et al. (2023) feed each label name to T5-base fine-tuned on CommonGen
(`mrm8488/t5-base-finetuned-common_gen`, the default here) and sample sentences that contain it,
e.g. "airplane" -> "a white airplane hovering over a beach and a city"; their code samples with
`do_sample=True`, removes duplicates and keeps 200 sentences per class. GenBench calls the same
strategy category enhancement (CE).

`enhance_classnames` samples with top-k sampling under a seeded random stream per class name, so
the same model, seed and settings give the same sentences on the same hardware; the generate
stage also caches them beside the images (see `genbench.strategies.sources`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial

import torch

from genbench.errors import GenBenchError
from genbench.strategies.hub import load_pretrained
from genbench.strategies.word_tokenizer import build_word_tokenizer, word_vocabulary

DEFAULT_ENHANCER = "mrm8488/t5-base-finetuned-common_gen"
TOP_K = 50
MAX_ROUNDS = 4


@dataclass
class TextToText:
    """A sequence-to-sequence model with its tokenizer."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    revision: str | None = None


def build_tiny_t5(seed: int = 0) -> TextToText:
    """A two-layer T5 with seeded random weights over the in-process word vocabulary: the same
    classes and generation code as the real model, runnable offline in milliseconds."""
    from transformers import T5Config, T5ForConditionalGeneration

    vocab = word_vocabulary()
    config = T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        pad_token_id=vocab["<pad>"], eos_token_id=vocab["</s>"], decoder_start_token_id=vocab["<pad>"],
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    return TextToText(model=model, tokenizer=build_word_tokenizer(append_eos=True), name="tiny-t5")


def _load_hub(path: str, **kwargs) -> TextToText:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True, **kwargs).eval()
    return TextToText(model=model, tokenizer=tokenizer, name=path, revision=kwargs.get("revision"))


def load_enhancer(name: str = DEFAULT_ENHANCER, revision: str | None = None, *, device: str = "cpu", seed: int = 0) -> TextToText:
    """A built-in name (`BUILTIN_ENHANCERS`), a local save_pretrained folder, or a hub id at
    `revision`. T5 runs in float32 (its activations overflow in float16)."""
    builtin = {k: partial(f, seed) for k, f in BUILTIN_ENHANCERS.items()}
    enhancer = load_pretrained(name, revision, "text-to-text model", builtin, _load_hub)
    enhancer.name, enhancer.revision = name, revision
    enhancer.model.to(device)
    return enhancer


def _class_seed(seed: int, classname: str) -> int:
    digest = hashlib.sha256(f"{seed}/enhance/{classname}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


@torch.no_grad()
def enhance_classnames(enhancer: TextToText, classnames: list[str], per_class: int, *, seed: int = 0,
                       max_new_tokens: int = 32, device: str = "cpu") -> list[list[str]]:
    """For each class name, up to `per_class` distinct non-empty sentences sampled from the model
    (in the order first sampled). Sampling runs in rounds of `per_class` sequences until enough
    distinct ones are found or `MAX_ROUNDS` rounds are spent; a class with none is an error."""
    if per_class < 1:
        raise GenBenchError(f"sentences per class = {per_class} must be at least 1")
    tok, model = enhancer.tokenizer, enhancer.model
    out = []
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    for name in classnames:
        found: dict[str, None] = {}
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_class_seed(seed, name))
            for _ in range(MAX_ROUNDS):
                enc = tok([name], return_tensors="pt").to(device)
                ids = model.generate(
                    **enc, do_sample=True, top_k=TOP_K, max_new_tokens=max_new_tokens, min_new_tokens=2,
                    num_return_sequences=per_class,
                )
                for text in tok.batch_decode(ids, skip_special_tokens=True):
                    text = " ".join(text.split())
                    if text and len(found) < per_class:
                        found[text] = None
                if len(found) >= per_class:
                    break
        if not found:
            raise GenBenchError(f"text-to-text model {enhancer.name!r} wrote no sentence for class {name!r}; try another model")
        out.append(list(found))
    return out


# Built-in text-to-text models: name -> factory(seed) returning a TextToText (no download).
BUILTIN_ENHANCERS = {"tiny-t5": build_tiny_t5}
