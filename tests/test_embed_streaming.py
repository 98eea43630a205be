"""embed holds a bounded number of decoded images: a shard is decoded batch by batch, in worker
threads, at most two batches ahead of the model, and the features do not depend on the workers."""

import numpy as np
import pytest
import torch
from PIL import Image

from genbench import storage
from genbench.executors import EMBED_EXECUTORS, EmbeddingWorker, load_encoder


@pytest.fixture
def image_set(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 16, 16, 3), dtype=np.uint8)
    rows = [{"key": f"k{i:02d}", "class_index": i % 3} for i in range(30)]
    storage.write_image_set(tmp_path / "set", images, rows, shard_size=1000)  # one shard of 30
    return tmp_path / "set", images


def test_a_shard_is_decoded_at_most_two_batches_ahead_of_the_model(image_set, monkeypatch):
    directory, _ = image_set
    worker = EmbeddingWorker("tiny-clip", batch_size=4, cpu_threads=1, decode_workers=2)
    model = load_encoder(worker).bundle.model
    decoded, encoded, ahead = [0], [0], []
    real_open, real_encode = Image.open, model.encode_image

    def spy_open(fp, *args, **kwargs):
        decoded[0] += 1
        ahead.append(decoded[0] - encoded[0])
        return real_open(fp, *args, **kwargs)

    def spy_encode(batch):
        encoded[0] += len(batch)
        return real_encode(batch)

    monkeypatch.setattr(Image, "open", spy_open)
    monkeypatch.setattr(model, "encode_image", spy_encode)
    run = EMBED_EXECUTORS["local"]({"set": directory}, worker, progress=False)
    assert run.sets["set"].features.shape == (30, 64)
    assert decoded[0] == encoded[0] == 30
    assert max(ahead) <= 2 * 4  # the batch being encoded and the one being decoded, never the shard


def test_features_do_not_depend_on_decode_workers_and_match_a_bare_loop(image_set):
    directory, images = image_set
    feats = {w: EMBED_EXECUTORS["local"]({"set": directory}, EmbeddingWorker("tiny-clip", batch_size=7, cpu_threads=1,
                                                                            decode_workers=w), progress=False).sets["set"].features
             for w in (0, 3)}
    np.testing.assert_array_equal(feats[0], feats[3])
    # independent computation: the plain open_clip recipe, one image at a time
    bundle = load_encoder(EmbeddingWorker("tiny-clip", batch_size=7, cpu_threads=1)).bundle
    with torch.no_grad():
        bare = torch.cat([bundle.model.encode_image(bundle.preprocess(Image.fromarray(img))[None]) for img in images])
    bare = (bare / bare.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_allclose(feats[3], bare, atol=1e-5)
