"""RG and RA: which reference image each job starts from, and what image-to-image makes of it."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from genbench import storage
from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.generation import GenerationSettings, ImageMaker, PlanInputs, generate_images, plan_jobs
from genbench.generators import load_pipeline
from genbench.strategies.guidance import (
    check_every_class,
    init_image,
    load_references,
    references_from_image_set,
)

DIGITS = get_dataset("digits")
SETTINGS = GenerationSettings(height=32, width=32, steps=4, guidance_scale=4.0, batch_size=4)


@pytest.fixture(scope="module")
def pipe():
    p = load_pipeline("tiny-sd", seed=0, image_size=32)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def originals():
    train = DIGITS.loader("train", None, 32)
    idx = [i for c in range(10) for i in (train.labels == c).nonzero()[0][:3]]
    rows = [{"key": f"digits-original-{n:06d}", "class_index": int(train.labels[i]),
             "sha256": storage.sha256_bytes(storage.encode_png(train.images[i]))} for n, i in enumerate(idx)]
    return train.images[idx], pd.DataFrame(rows)


def _inputs(originals, strength=0.6):
    return PlanInputs(references={"RG": references_from_image_set(*originals, 10)}, strengths={"RG": strength})


def test_rg_job_i_starts_from_real_image_i_mod_k(originals):
    jobs = plan_jobs(DIGITS, ["DT+RG"], 5, global_seed=0, inputs=_inputs(originals))
    manifest = originals[1]
    for job in jobs:
        real = manifest[manifest.class_index == job.class_index].reset_index()
        assert job.init_image == real.loc[job.index % 3, "key"] and job.init_sha256 == real.loc[job.index % 3, "sha256"]
        assert job.strength == 0.6
    assert all(not j.init_image and j.strength == 0 for j in plan_jobs(DIGITS, ["DT"], 1, 0))


def test_image_to_image_matches_a_bare_diffusers_call(pipe, originals):
    from diffusers import StableDiffusionImg2ImgPipeline

    jobs = plan_jobs(DIGITS, ["ST+RG"], 2, global_seed=0, inputs=_inputs(originals))[:2]
    by_key = {r.key: r.image for refs in _inputs(originals).references["RG"].values() for r in refs}
    made = ImageMaker(pipe, SETTINGS, init_images=by_key)(jobs)
    bare = StableDiffusionImg2ImgPipeline(**pipe.components)
    bare.set_progress_bar_config(disable=True)
    out = bare(prompt=[j.prompt for j in jobs], image=[Image.fromarray(by_key[j.init_image]) for j in jobs], strength=0.6,
               num_inference_steps=4, guidance_scale=4.0, output_type="np",
               generator=[torch.Generator().manual_seed(j.seed) for j in jobs]).images
    expected = [(np.clip(x, 0, 1) * 255).round().astype(np.uint8) for x in out]
    assert all(np.array_equal(a, b) for a, b in zip(made, expected))
    text_only = generate_images(pipe, [replace(j, init_image="", strength=0.0) for j in jobs], SETTINGS)
    assert not np.array_equal(made[0], text_only[0])


def test_the_start_image_matters_less_as_the_strength_grows(pipe, originals):
    black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
    gaps = []
    for strength in (0.25, 0.5, 1.0):
        (job,) = plan_jobs(DIGITS, ["ST+RG"], 1, global_seed=0, inputs=_inputs(originals, strength))[:1]
        a = ImageMaker(pipe, SETTINGS, init_images={job.init_image: black})([job])[0].astype(int)
        b = ImageMaker(pipe, SETTINGS, init_images={job.init_image: white})([job])[0].astype(int)
        gaps.append(np.abs(a - b).mean())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[0] > 1


def test_a_batch_mixing_text_and_image_starts_gives_the_same_images(pipe, originals):
    plain = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:2]
    guided = plan_jobs(DIGITS, ["ST+RG"], 1, global_seed=0, inputs=_inputs(originals))[:2]
    by_key = {r.key: r.image for refs in _inputs(originals).references["RG"].values() for r in refs}
    together = ImageMaker(pipe, SETTINGS, init_images=by_key)(plain + guided)
    apart = generate_images(pipe, plain, SETTINGS) + ImageMaker(pipe, SETTINGS, init_images=by_key)(guided)
    assert all(np.array_equal(a, b) for a, b in zip(together, apart))


def test_ra_reads_a_per_class_folder_by_name_or_index(tmp_path):
    classes = ["cat", "dog/wolf", "owl"]
    (tmp_path / "cat").mkdir()
    (tmp_path / "1").mkdir()  # "dog/wolf" cannot be a folder name: its index is used
    Image.fromarray(np.full((20, 30, 3), 10, np.uint8)).save(tmp_path / "cat" / "b.png")
    Image.fromarray(np.full((8, 8, 3), 20, np.uint8)).save(tmp_path / "cat" / "a.jpg")
    Image.fromarray(np.full((8, 8, 3), 30, np.uint8)).save(tmp_path / "1" / "x.png")
    refs = load_references(tmp_path, classes)
    assert [r.key for r in refs[0]] == ["cat/a.jpg", "cat/b.png"] and [r.key for r in refs[1]] == ["1/x.png"]
    assert refs[0][1].sha256 == storage.sha256_file(tmp_path / "cat" / "b.png") and refs[0][1].image.shape == (20, 30, 3)
    with pytest.raises(GenBenchError, match="none for 1 class\\(es\\), first 'owl'"):
        check_every_class(refs, classes, str(tmp_path), "RA")


def test_ra_reads_an_image_set_and_resizes_the_start(tmp_path):
    images = np.stack([np.full((16, 16, 3), v, np.uint8) for v in (0, 100, 200)])
    storage.write_image_set(tmp_path, images, [{"key": f"r{i}", "class_index": c} for i, c in enumerate([1, 0, 1])])
    refs = load_references(tmp_path, ["a", "b"])
    assert [r.key for r in refs[0]] == ["r1"] and [r.key for r in refs[1]] == ["r0", "r2"]
    start = init_image(refs[1][1].image, 32, 24)
    assert start.size == (32, 24) and np.asarray(start).mean() == pytest.approx(200, abs=1)


def test_missing_reference_directory_is_a_user_error(tmp_path):
    with pytest.raises(GenBenchError, match="reference image directory"):
        load_references(tmp_path / "nowhere", ["a"])
