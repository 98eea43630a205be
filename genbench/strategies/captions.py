"""CiP: captions of real images by an image captioning model (BLIP-2 by default).

Lei et al. caption every real training image with BLIP-2 and prompt the text-to-image model with
"a photo of {class}, {caption}". Here the real images are the k-shot originals of each class
(data/<dataset>/prepared/original). Captions are decoded greedily, so they are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from PIL import Image

from genbench.errors import GenBenchError
from genbench.generators import resolve_dtype
from genbench.strategies.hub import load_pretrained
from genbench.strategies.word_tokenizer import build_word_tokenizer, word_vocabulary

DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"
TINY_QUERY_TOKENS = 4
TINY_INIT = 0.5


@dataclass
class Captioner:
    """An image-to-text model with its processor (image preprocessing and tokenizer)."""

    model: torch.nn.Module
    processor: object
    name: str
    revision: str | None = None


def build_tiny_blip2(seed: int = 0, image_size: int = 32) -> Captioner:
    """A BLIP-2 (vision encoder, Q-Former, OPT decoder) of one layer each with seeded random
    weights over the in-process word vocabulary: the real classes and generation code, offline.
    Its weights are initialised wider than usual (std 0.5) so that its captions visibly depend
    on the image."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    vocab = word_vocabulary()
    image_token = len(vocab)  # Blip2Processor appends "<image>" to the tokenizer
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           image_size=image_size, patch_size=8, initializer_range=TINY_INIT),
        qformer_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                            encoder_hidden_size=32, vocab_size=len(vocab), initializer_range=TINY_INIT),
        text_config=dict(model_type="opt", vocab_size=len(vocab) + 1, hidden_size=32, num_hidden_layers=1, ffn_dim=64,
                         num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                         pad_token_id=vocab["<pad>"], bos_token_id=vocab["</s>"], eos_token_id=vocab["</s>"], init_std=TINY_INIT),
        num_query_tokens=TINY_QUERY_TOKENS,
        image_token_index=image_token,
        initializer_range=TINY_INIT,
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    processor = Blip2Processor(image_processor=image_processor, tokenizer=build_word_tokenizer(append_eos=False),
                               num_query_tokens=TINY_QUERY_TOKENS)
    return Captioner(model=model, processor=processor, name="tiny-blip2")


def _load_hub(path: str, dtype: torch.dtype, **kwargs) -> Captioner:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(path, **kwargs)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, use_safetensors=True, **kwargs).eval()
    return Captioner(model=model, processor=processor, name=path, revision=kwargs.get("revision"))


def load_captioner(name: str = DEFAULT_CAPTIONER, revision: str | None = None, *, dtype: str = "float32",
                   device: str = "cpu", seed: int = 0) -> Captioner:
    """A built-in name (`BUILTIN_CAPTIONERS`), a local save_pretrained folder, or a hub id at
    `revision` (any image-to-text model transformers' AutoModelForImageTextToText loads: BLIP-2,
    BLIP, ...)."""
    builtin = {k: partial(f, seed) for k, f in BUILTIN_CAPTIONERS.items()}
    captioner = load_pretrained(name, revision, "captioning model", builtin, partial(_load_hub, dtype=resolve_dtype(dtype)))
    captioner.name, captioner.revision = name, revision
    captioner.model.to(device)
    return captioner


@torch.no_grad()
def caption_images(captioner: Captioner, images: np.ndarray, *, batch_size: int = 8, max_new_tokens: int = 30,
                   device: str = "cpu") -> list[str]:
    """One caption per uint8 (H, W, 3) image, greedy decoding, whitespace normalised."""
    if len(images) and (images.ndim != 4 or images.shape[-1] != 3):
        raise GenBenchError(f"caption_images needs uint8 (N, H, W, 3) images, got shape {images.shape}")
    dtype = next(captioner.model.parameters()).dtype
    captions = []
    for start in range(0, len(images), batch_size):
        batch = [Image.fromarray(img) for img in images[start : start + batch_size]]
        inputs = captioner.processor(images=batch, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(device=device, dtype=dtype)
        ids = captioner.model.generate(pixel_values=pixel_values, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
        texts = captioner.processor.batch_decode(ids, skip_special_tokens=True)
        captions.extend(" ".join(t.split()) for t in texts)
    return captions


# Built-in captioning models: name -> factory(seed) returning a Captioner (no download).
BUILTIN_CAPTIONERS = {"tiny-blip2": build_tiny_blip2}
