"""The reference filter: which retrieved images may teach a class's token (GenBench Section 4).

The paper captions each retrieved image with BLIP-2, scores the caption against the class name
with a BERT similarity, and keeps images scoring above 0.8. Here a captioner and a similarity
are named by spec:

captioners
- `pool-caption` (offline stand-in): the image's own pool caption (the alt text it was
  retrieved by) stands in for a captioning model's caption;
- `blip2:<model>` (the paper): BLIP-2 from a hub id or a local folder, e.g.
  `blip2:Salesforce/blip2-opt-2.7b`, captions the image.
similarities (caption vs. class name, cosine)
- `clip-text` (offline stand-in): CLIP text-encoder embeddings of caption and class name;
- `bert:<model>` (the paper): mean-pooled last hidden states of a BERT model, e.g.
  `bert:bert-base-uncased`.

Each decision is recorded: caption, similarity, kept or not, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from genbench.errors import GenBenchError


class Captioner(Protocol):
    def __call__(self, images: list[np.ndarray], pool_captions: list[str]) -> list[str]: ...


DEFAULT_FILTER_CAPTIONER = "Salesforce/blip2-opt-2.7b"  # the model of a bare `blip2` spec
DEFAULT_BERT = "bert-base-uncased"  # the model of a bare `bert` spec

# A similarity: (captions, class names) -> cosine per pair, shape (N,).
Similarity = Callable[[list[str], list[str]], np.ndarray]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).cpu().numpy().astype(np.float64)


def pool_caption(images: list[np.ndarray], pool_captions: list[str]) -> list[str]:
    """The offline stand-in captioner: each image's own pool caption."""
    return list(pool_captions)


class Blip2Captioner:
    """BLIP-2 captions (transformers' Blip2ForConditionalGeneration)."""

    def __init__(self, model, processor, device: str = "cpu", max_new_tokens: int = 30, batch_size: int = 16):
        self.model, self.processor, self.device = model, processor, device
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    @classmethod
    def from_pretrained(cls, name: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> "Blip2Captioner":
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        try:
            processor = Blip2Processor.from_pretrained(name)
            model = Blip2ForConditionalGeneration.from_pretrained(name, dtype=dtype, use_safetensors=True).to(device).eval()
        except (OSError, ValueError) as exc:
            raise GenBenchError(f"cannot load the BLIP-2 captioner {name!r}: {str(exc).splitlines()[0][:160]}; download it "
                                "into HF_HOME (huggingface-cli download) or use invert.filter_captioner: pool-caption") from None
        return cls(model, processor, device)

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray], pool_captions: list[str]) -> list[str]:
        from PIL import Image

        captions = []
        for start in range(0, len(images), self.batch_size):
            pils = [Image.fromarray(np.asarray(i, dtype=np.uint8)) for i in images[start : start + self.batch_size]]
            inputs = self.processor(images=pils, return_tensors="pt").to(self.device, self.model.dtype)
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
            captions += [c.strip() for c in self.processor.batch_decode(out, skip_special_tokens=True)]
        return captions


class ClipTextSimilarity:
    """Cosine of CLIP text embeddings (the offline stand-in for the paper's BERT similarity)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray]):
        self.encode = encode

    def __call__(self, captions: list[str], classnames: list[str]) -> np.ndarray:
        a, b = torch.from_numpy(self.encode(list(captions))), torch.from_numpy(self.encode(list(classnames)))
        return _cosine(a, b)


class BertSimilarity:
    """Cosine of mean-pooled (over non-padding tokens) last hidden states of a BERT model."""

    def __init__(self, model, tokenizer, device: str = "cpu"):
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, device

    @classmethod
    def from_pretrained(cls, name: str, device: str = "cpu") -> "BertSimilarity":
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModel.from_pretrained(name, use_safetensors=True).to(device)
        except (OSError, ValueError) as exc:
            raise GenBenchError(f"cannot load the BERT model {name!r}: {str(exc).splitlines()[0][:160]}; download it "
                                "into HF_HOME (huggingface-cli download) or use invert.filter_similarity: clip-text") from None
        return cls(model, tokenizer, device)

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)

    def __call__(self, captions: list[str], classnames: list[str]) -> np.ndarray:
        return _cosine(self.embed(captions), self.embed(classnames))


def split_spec(spec: str) -> tuple[str, str | None]:
    name, _, arg = spec.partition(":")
    return name, (arg or None)


# Captioner specs: name -> factory(argument, device) returning a Captioner.
CAPTIONERS: dict[str, Callable[[str | None, str], Captioner]] = {
    "pool-caption": lambda arg, device: pool_caption,
    "blip2": lambda arg, device: Blip2Captioner.from_pretrained(arg or DEFAULT_FILTER_CAPTIONER, device),
}


def load_captioner(spec: str, device: str = "cpu") -> Captioner:
    name, arg = split_spec(spec)
    if name not in CAPTIONERS:
        raise GenBenchError(f"captioner {spec!r} is not one of {', '.join(CAPTIONERS)} (e.g. blip2:Salesforce/blip2-opt-2.7b)")
    return CAPTIONERS[name](arg, device)


def load_similarity(spec: str, device: str = "cpu", clip_encode: Callable[[list[str]], np.ndarray] | None = None) -> Similarity:
    """`clip-text` (needs `clip_encode`, a CLIP text encoder) or `bert:<model>`."""
    name, arg = split_spec(spec)
    if name == "clip-text":
        if clip_encode is None:
            raise GenBenchError("similarity 'clip-text' needs a CLIP text encoder")
        return ClipTextSimilarity(clip_encode)
    if name == "bert":
        return BertSimilarity.from_pretrained(arg or DEFAULT_BERT, device)
    raise GenBenchError(f"similarity {spec!r} is not one of clip-text, bert:<model> (e.g. bert:bert-base-uncased)")


@dataclass(frozen=True)
class FilterDecision:
    caption: str
    similarity: float
    kept: bool
    reason: str


def filter_references(captions: list[str], similarities: np.ndarray, threshold: float, min_keep: int = 0) -> list[FilterDecision]:
    """Keep a reference when its caption's similarity to the class name reaches `threshold`;
    when fewer than `min_keep` do, the best-scoring ones up to `min_keep` are kept too
    (reason 'fallback'). Inputs are one class's references in rank order."""
    sims = np.asarray(similarities, dtype=np.float64)
    if len(sims) != len(captions):
        raise GenBenchError(f"{len(captions)} captions but {len(sims)} similarities")
    kept = sims >= threshold
    fallback = np.zeros_like(kept)
    if kept.sum() < min_keep:
        order = np.argsort(-sims, kind="stable")
        for i in order[: min_keep]:
            if not kept[i]:
                fallback[i] = True
    out = []
    for caption, sim, k, f in zip(captions, sims, kept, fallback):
        reason = "similarity >= threshold" if k else ("fallback: too few above threshold" if f else "similarity < threshold")
        out.append(FilterDecision(caption, float(sim), bool(k or f), reason))
    return out
