"""Textual inversion on the tiny SD pipeline, and the reference filter."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from genbench.datasets.digits import TEMPLATES, load
from genbench.errors import GenBenchError
from genbench.generators import load_pipeline
from genbench.inversion import (
    InversionSettings,
    add_placeholder_tokens,
    evaluation_loss,
    load_inversion,
    placeholder_token,
    prediction_target,
    reference_latents,
    reference_pixels,
    save_embedding,
    token_ids,
    train_token,
)
from genbench.retrieval.filter import BertSimilarity, ClipTextSimilarity, filter_references, load_captioner, load_similarity

TOKEN = placeholder_token("digits", "3")
PROMPT = f"a photo of {TOKEN}."


@pytest.fixture(scope="module")
def base_pipe():
    pipe = load_pipeline("tiny-sd", seed=0, image_size=32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fresh(base_pipe):
    return copy.deepcopy(base_pipe)


@pytest.fixture(scope="module")
def threes():
    train = load("train", Path("."), 32)
    return train.images[train.labels == 3][:5]


@pytest.fixture(scope="module")
def trained(base_pipe, threes):
    pipe = fresh(base_pipe)
    (token_id,) = add_placeholder_tokens(pipe, [TOKEN], ["3"])
    before = {name: {k: v.clone() for k, v in getattr(pipe, name).state_dict().items()} for name in ("text_encoder", "unet", "vae")}
    settings = InversionSettings(steps=12, learning_rate=5e-2, batch_size=2, eval_draws=8)
    prompts = [t.format(c=TOKEN) for t in TEMPLATES]
    result = train_token(pipe, token_id, prompts, threes, settings, seed=0)
    return pipe, token_id, before, result, prompts


def embedding_key(pipe) -> str:
    weight = pipe.text_encoder.get_input_embeddings().weight
    return next(name for name, p in pipe.text_encoder.named_parameters() if p is weight)


def encode_prompt(pipe, prompt):
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]


def test_placeholder_rows_start_from_the_class_name(base_pipe):
    pipe = fresh(base_pipe)
    weight = pipe.text_encoder.get_input_embeddings().weight.detach().clone().numpy()
    multi = placeholder_token("caltech-101", "Faces Easy")
    ids = add_placeholder_tokens(pipe, [TOKEN, multi], ["3", "Faces Easy"])
    new = pipe.text_encoder.get_input_embeddings().weight.detach().numpy()
    assert ids == [len(weight), len(weight) + 1] and new.shape[0] == len(weight) + 2
    (three,) = token_ids(pipe.tokenizer, "3")
    np.testing.assert_array_equal(new[ids[0]], weight[three])
    np.testing.assert_allclose(new[ids[1]], weight[token_ids(pipe.tokenizer, "faces easy")].mean(axis=0), rtol=1e-6)
    assert pipe.tokenizer(PROMPT).input_ids[4] == ids[0]
    # Initialised from "3", the placeholder prompt means exactly what "a photo of 3." means.
    torch.testing.assert_close(encode_prompt(pipe, PROMPT), encode_prompt(pipe, "a photo of 3."))
    with pytest.raises(GenBenchError, match="already in the tokenizer"):
        add_placeholder_tokens(pipe, [TOKEN], ["3"])


def test_only_the_new_row_changes(trained):
    pipe, token_id, before, result, _ = trained
    matrix = embedding_key(pipe)
    for name in ("text_encoder", "unet", "vae"):
        after = getattr(pipe, name).state_dict()
        for key, tensor in before[name].items():
            if name == "text_encoder" and key == matrix:
                others = torch.ones(len(tensor), dtype=torch.bool)
                others[token_id] = False
                assert torch.equal(after[key][others], tensor[others]), "a row other than the placeholder's changed"
                assert not torch.equal(after[key][token_id], tensor[token_id])
                torch.testing.assert_close(after[key][token_id], result.embedding)
            else:
                assert torch.equal(after[key], tensor), f"{name}.{key} changed"
    assert all(not p.requires_grad for p in pipe.text_encoder.parameters())


def test_the_loss_falls_over_training(trained, threes):
    pipe, token_id, before, result, prompts = trained
    assert len(result.losses) == 12 and all(np.isfinite(result.losses))
    assert result.eval_after < result.eval_before - 1e-3
    # The fall comes from learning: moving the row as far in a random direction does not help as much.
    init = before["text_encoder"][embedding_key(pipe)][token_id]
    step = result.embedding - init
    probe = fresh(pipe)
    direction = torch.randn(step.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probe.text_encoder.get_input_embeddings().weight[token_id] = init + direction / direction.norm() * step.norm()
    mean, std = reference_latents(probe, reference_pixels(threes, 32))
    ids = probe.tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert evaluation_loss(probe, ids, mean, std, 8, 0) > result.eval_after


def test_prediction_targets_follow_the_scheduler(base_pipe):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(base_pipe.scheduler.config, prediction_type="v_prediction")
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    t = torch.tensor([0, 500, 999])
    alpha_bar = scheduler.alphas_cumprod.numpy().astype(np.float64)[t.numpy()][:, None, None, None]
    v = np.sqrt(alpha_bar) * noise.numpy() - np.sqrt(1 - alpha_bar) * x0.numpy()
    np.testing.assert_allclose(prediction_target(scheduler)(scheduler, x0, noise, t).numpy(), v, rtol=1e-5, atol=1e-6)
    assert torch.equal(prediction_target(base_pipe.scheduler)(base_pipe.scheduler, x0, noise, t), noise)

    class Flow:
        config = {"prediction_type": "flow"}

    with pytest.raises(GenBenchError, match="prediction_type 'flow' is not supported"):
        prediction_target(Flow())


def test_training_under_v_prediction_runs(base_pipe, threes):
    from diffusers import DDIMScheduler

    pipe = fresh(base_pipe)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, prediction_type="v_prediction")
    (token_id,) = add_placeholder_tokens(pipe, [TOKEN], ["3"])
    result = train_token(pipe, token_id, [PROMPT], threes[:2], InversionSettings(steps=2, batch_size=1, eval_draws=2), seed=0)
    assert len(result.losses) == 2 and np.isfinite(result.eval_after)


def test_saved_embedding_loads_into_a_fresh_pipeline_and_changes_its_output(trained, base_pipe, tmp_path):
    _, _, _, result, _ = trained
    path = save_embedding(tmp_path / "class-0003.safetensors", TOKEN, result.embedding, {"class_name": "3"})
    with safe_open(str(path), framework="pt") as fh:
        assert list(fh.keys()) == [TOKEN] and fh.get_tensor(TOKEN).shape == (1, 32)
    learned = fresh(base_pipe)
    learned.load_textual_inversion(str(path))
    row = learned.text_encoder.get_input_embeddings().weight[learned.tokenizer.convert_tokens_to_ids(TOKEN)]
    torch.testing.assert_close(row, result.embedding)
    untrained = fresh(base_pipe)
    add_placeholder_tokens(untrained, [TOKEN], ["3"])
    assert not torch.allclose(encode_prompt(learned, PROMPT), encode_prompt(untrained, PROMPT))

    def sample(pipe):
        out = pipe(PROMPT, num_inference_steps=2, height=32, width=32, generator=torch.Generator().manual_seed(0), output_type="np")
        return out.images[0]

    assert np.abs(sample(learned) - sample(untrained)).max() > 1e-4
    renamed = fresh(base_pipe)
    renamed.load_textual_inversion(str(path), token="<|other 3|>")
    assert "<|other 3|>" in renamed.tokenizer.get_vocab()


def test_load_inversion_reads_a_token_directory(trained, base_pipe, tmp_path):
    _, _, _, result, _ = trained
    save_embedding(tmp_path / "class-0003.safetensors", TOKEN, result.embedding)
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": [{"class_index": 3, "token": TOKEN, "file": "class-0003.safetensors"}]}))
    pipe = fresh(base_pipe)
    assert load_inversion(pipe, tmp_path) == {3: TOKEN}
    assert pipe.tokenizer(PROMPT).input_ids[4] == pipe.tokenizer.convert_tokens_to_ids(TOKEN)
    with pytest.raises(GenBenchError, match="run the invert stage"):
        load_inversion(pipe, tmp_path / "missing")


def test_filter_keeps_by_threshold_and_records_why():
    decisions = filter_references(["a", "b", "c", "d"], np.array([0.9, 0.5, 0.8, 0.79]), threshold=0.8)
    assert [(d.kept, d.reason) for d in decisions] == [
        (True, "similarity >= threshold"), (False, "similarity < threshold"), (True, "similarity >= threshold"), (False, "similarity < threshold")]
    fallback = filter_references(["a", "b", "c"], np.array([0.1, 0.3, 0.2]), threshold=0.8, min_keep=2)
    assert [d.kept for d in fallback] == [False, True, True]
    assert fallback[1].reason.startswith("fallback") and fallback[1].caption == "b" and fallback[1].similarity == 0.3


def test_clip_text_similarity_is_the_cosine_of_text_embeddings():
    from genbench.clip_models import load_clip
    from genbench.features import encode_texts

    bundle = load_clip("tiny-clip")
    similarity = load_similarity("clip-text", clip_encode=lambda t: encode_texts(bundle, t))
    captions, names = ["handwritten digit 3", "a red car"], ["3", "3"]
    with torch.no_grad():
        a = bundle.model.encode_text(bundle.tokenizer(captions)).numpy().astype(np.float64)
        b = bundle.model.encode_text(bundle.tokenizer(names)).numpy().astype(np.float64)
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(similarity(captions, names), expected, rtol=1e-5)
    assert isinstance(similarity, ClipTextSimilarity)


def test_bert_similarity_mean_pools_over_real_tokens(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "the", "digit", "3", "scan"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    similarity = BertSimilarity(model, tokenizer)
    captions, names = ["a photo of the digit 3", "scan"], ["3", "3"]

    def alone(text):  # one text at a time: no padding to mask
        with torch.no_grad():
            return model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].mean(0).numpy().astype(np.float64)

    expected = [float(alone(c) @ alone(n) / np.linalg.norm(alone(c)) / np.linalg.norm(alone(n))) for c, n in zip(captions, names)]
    np.testing.assert_allclose(similarity(captions, names), expected, rtol=1e-4)


def test_captioner_and_similarity_specs():
    assert load_captioner("pool-caption")([np.zeros((2, 2, 3))], ["a digit"]) == ["a digit"]
    with pytest.raises(GenBenchError, match="captioner 'clip-cap' is not one of"):
        load_captioner("clip-cap")
    with pytest.raises(GenBenchError, match="cannot load the BLIP-2 captioner"):
        load_captioner("blip2:/nonexistent/blip2-folder")
    with pytest.raises(GenBenchError, match="cannot load the BERT model"):
        load_similarity("bert:/nonexistent/bert-folder")
    with pytest.raises(GenBenchError, match="needs a CLIP text encoder"):
        load_similarity("clip-text")
