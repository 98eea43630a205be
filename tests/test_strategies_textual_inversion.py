"""TI: loading learned <|dataset class|> tokens and prompting with them."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.generation import GenerationSettings, generate_images, plan_jobs
from genbench.generators import load_pipeline
from genbench.strategies.textual_inversion import embeddings_sha256, load_inversion_tokens, read_token_embeddings

DIGITS = get_dataset("digits")
TOKENS = [f"<|digits {c}|>" for c in DIGITS.classnames]


def _vectors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {t: torch.randn(1, 32, generator=g) for t in TOKENS}


def _folder(path, vectors):
    """One file per class, as genbench.inversion writes them."""
    path.mkdir(parents=True, exist_ok=True)
    for c, (token, vec) in enumerate(vectors.items()):
        save_file({token: vec}, str(path / f"class-{c:04d}.safetensors"))
    return path


@pytest.fixture
def pipe():
    p = load_pipeline("tiny-sd", seed=0, image_size=32)
    p.set_progress_bar_config(disable=True)
    return p


def test_a_folder_and_a_single_file_read_the_same(tmp_path):
    vectors = _vectors()
    folder = read_token_embeddings(_folder(tmp_path / "ti", vectors))
    save_file(vectors, str(tmp_path / "all.safetensors"))
    single = read_token_embeddings(tmp_path / "all.safetensors")
    assert set(folder) == set(single) == set(TOKENS)
    assert all(torch.equal(folder[t], single[t]) for t in TOKENS)
    assert embeddings_sha256(folder) == embeddings_sha256(single) != embeddings_sha256(_vectors(1))


def test_tokens_are_loaded_into_tokenizer_and_text_encoder(pipe, tmp_path):
    vectors = _vectors()
    digest = load_inversion_tokens(pipe, _folder(tmp_path / "ti", vectors), TOKENS)
    assert digest == embeddings_sha256(vectors)
    ids = pipe.tokenizer("a photo of <|digits 3|>")["input_ids"]
    token_id = pipe.tokenizer.convert_tokens_to_ids("<|digits 3|>")
    assert ids[-2] == token_id and len(ids) == 6  # <start> a photo of TOKEN <end>
    row = pipe.text_encoder.get_input_embeddings().weight[token_id]
    assert torch.equal(row, vectors["<|digits 3|>"][0])


def test_ti_prompts_make_other_images_than_the_class_name(pipe, tmp_path):
    settings = GenerationSettings(32, 32, 3, 4.0, 2)
    load_inversion_tokens(pipe, _folder(tmp_path / "ti", _vectors()), TOKENS)
    ti = plan_jobs(DIGITS, ["ST+TI"], 1, global_seed=0)[:2]
    assert [j.prompt for j in ti] == ["<|digits 0|>", "<|digits 1|>"]
    plain = [j.__class__(**{**j.__dict__, "prompt": j.class_name}) for j in ti]  # same seeds
    a, b = generate_images(pipe, ti, settings), generate_images(pipe, plain, settings)
    assert not np.array_equal(a[0], b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a, generate_images(pipe, ti, settings)))


def test_missing_tokens_and_wrong_sizes_are_user_errors(pipe, tmp_path):
    vectors = _vectors()
    del vectors["<|digits 7|>"]
    with pytest.raises(GenBenchError, match="lack 1 of 10 class tokens, first '<\\|digits 7\\|>'"):
        load_inversion_tokens(pipe, _folder(tmp_path / "a", vectors), TOKENS)
    with pytest.raises(GenBenchError, match="do not fit this model"):
        load_inversion_tokens(pipe, _folder(tmp_path / "b", {t: torch.zeros(1, 48) for t in TOKENS}), TOKENS)
    with pytest.raises(GenBenchError, match="no .safetensors file"):
        read_token_embeddings(tmp_path / "empty")
