"""A CLIP BPE tokenizer for diffusers pipelines that needs no download.

open_clip ships the CLIP BPE vocabulary (`bpe_simple_vocab_16e6.txt.gz`). From its merges we
write the `vocab.json` and `merges.txt` pair that transformers' `CLIPTokenizer` reads, with the
same token ids as OpenAI's CLIP tokenizer (49,408 entries: 256 byte symbols, their `</w>` forms,
48,894 merges, then `<|startoftext|>` and `<|endoftext|>`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

VOCAB_SIZE = 49408
MERGES_USED = VOCAB_SIZE - 256 - 256 - 2


def _byte_symbols() -> list[str]:
    """The 256 byte symbols in CLIP's vocabulary order (printable bytes first, then the rest
    mapped above U+0100), as in GPT-2's byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    others = [b for b in range(256) if b not in printable]
    codes = printable + [256 + n for n in range(len(others))]
    return [chr(c) for c in codes]


def _merges() -> list[tuple[str, str]]:
    from open_clip.tokenizer import default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    return [tuple(line.split()) for line in lines[1 : MERGES_USED + 1]]


def write_clip_tokenizer_files(directory: str | Path, model_max_length: int = 77) -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json for `CLIPTokenizer` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    merges = _merges()
    symbols = _byte_symbols()
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return directory


def load_clip_tokenizer(directory: str | Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(directory))
