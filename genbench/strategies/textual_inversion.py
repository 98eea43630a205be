"""TI: prompting with textual inversion tokens learned elsewhere (the kit's inversion training
writes them; this module only loads them).

GenBench learns one token per class, named `<|{dataset} {class}|>` (`placeholder_token`), and
samples with the token in the strategy's prompt: alone under ST (its bare-name template; "a photo
of <|voc-2007 aeroplane|>" with `generate.st_template: "a photo of {c}"`) or inside the dataset's
templates under DT.

Embedding files: safetensors, either one file or a folder of `*.safetensors` files, every tensor
keyed by its token, of shape (D,) or (n_vectors, D) with D the text encoder's hidden size: the
format diffusers' `load_textual_inversion` reads (a file of one token is exactly its format; a
file of several tokens is split into one state dict per token).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from genbench.errors import GenBenchError
from genbench.prompts import placeholder_token

__all__ = ["placeholder_token", "read_token_embeddings", "load_inversion_tokens", "embeddings_sha256"]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.rglob("*.safetensors"))
    return []


def read_token_embeddings(path: str | Path) -> dict[str, torch.Tensor]:
    """Token -> embedding from a safetensors file or every safetensors file under a folder."""
    from safetensors.torch import load_file

    path = Path(path)
    files = _files(path)
    if not files:
        raise GenBenchError(f"textual inversion embeddings {str(path)!r}: no .safetensors file there; "
                            "train them first or point generate.ti_embeddings at the folder")
    out: dict[str, torch.Tensor] = {}
    for file in files:
        for token, tensor in load_file(str(file)).items():
            if token in out:
                raise GenBenchError(f"textual inversion token {token!r} appears twice under {str(path)!r} (again in {file.name})")
            out[token] = tensor
    return out


def embeddings_sha256(embeddings: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for token in sorted(embeddings):
        tensor = embeddings[token].detach().to("cpu", torch.float32).contiguous()
        h.update(token.encode() + b"\0" + str(tuple(tensor.shape)).encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def load_inversion_tokens(pipe, path: str | Path, tokens: list[str]) -> str:
    """Add `tokens` with their learned embeddings to the pipeline's tokenizer and text encoder;
    return the sha256 of the embeddings loaded. Every token must be in the files."""
    embeddings = read_token_embeddings(path)
    missing = [t for t in tokens if t not in embeddings]
    if missing:
        raise GenBenchError(f"textual inversion embeddings {str(path)!r} lack {len(missing)} of {len(tokens)} class tokens, "
                            f"first {missing[0]!r}; train them, or drop TI from generate.strategies")
    wanted = {t: embeddings[t] for t in tokens}
    have = set(pipe.tokenizer.get_vocab())
    new = {t: e for t, e in wanted.items() if t not in have}
    if new:
        dtype = pipe.text_encoder.get_input_embeddings().weight.dtype
        try:
            pipe.load_textual_inversion([{t: e.to(dtype)} for t, e in new.items()])
        except ValueError as exc:
            raise GenBenchError(f"textual inversion embeddings {str(path)!r} do not fit this model: "
                                f"{str(exc).splitlines()[0][:200]}") from exc
    return embeddings_sha256(wanted)
