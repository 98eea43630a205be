"""Stand-in models for the rehearsal: written into a scratch Hugging Face cache, found by the
kit's own loaders with the hub switched off (HF_HOME at tmp_path, HF_HUB_OFFLINE=1).

huggingface_hub reads HF_HOME when imported, so the loaders run in one fresh process
(tests/standin_loads.py) per module; the paper profile's stand-ins (ViT-L-14 included) are
written once per module."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genbench.errors import GenBenchError
from genbench.rehearsal.hf_cache import hub_cache, repo_folder
from genbench.rehearsal.models import MODEL_KEYS, build_generator, named_models, write_standin_models
from standin_loads import RESULT_PREFIX, WRONG_REVISION

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "profiles" / "paper.yaml"


def paper_params() -> dict:
    return yaml.safe_load(PAPER.read_text())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    hf_home = tmp_path_factory.mktemp("hf")
    return hf_home, write_standin_models(paper_params(), hf_home, seed=0)


@pytest.fixture(scope="module")
def loads(written):
    hf_home, _ = written
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "standin_loads.py"), str(PAPER)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def by_key(records: list[dict]) -> dict[str, dict]:
    return {key: rec for rec in records for key in rec["keys"]}


def test_every_model_key_the_paper_profile_sets_gets_a_stand_in(written):
    _, records = written
    params = paper_params()
    named = {f"{mk.section}.{mk.key}" for mk in MODEL_KEYS if params.get(mk.section, {}).get(mk.key)}
    assert named == {f"{mk.section}.{mk.key}" for mk in MODEL_KEYS}  # the paper profile names all of them
    recs = by_key(records)
    backbones = {f"embed.backbones[{i}]" for i in range(len(params["embed"]["backbones"]))}
    assert backbones and set(recs) == named | backbones
    assert all(rec["provided"] and rec["bytes"] > 0 for rec in records), [r for r in records if not r["provided"]]
    assert recs["generate.model"] is recs["invert.model"]  # one generator, pinned once
    assert recs["generate.cip_model"] is recs["invert.filter_captioner"]
    assert {recs[k]["repo"] for k in ("embed.model", "generate.cf_model", "quality.model", "invert.filter_clip_model")} == {
        "timm/vit_base_patch32_clip_224.openai"}
    assert recs["index.model"]["repo"] == "timm/vit_large_patch14_clip_224.openai"
    assert recs["invert.filter_similarity"]["repo"] == "bert-base-uncased"


def test_model_keys_cover_every_stage_field_that_names_a_model():
    from stages import embed, finetune, generate, invert, quality, retrieve, pool, index

    schemas = {"finetune": finetune.SCHEMA, "generate": generate.SCHEMA, "invert": invert.SCHEMA, "embed": embed.SCHEMA, "quality": quality.SCHEMA,
               "index": index.SCHEMA, "pool": pool.SCHEMA, "retrieve": retrieve.SCHEMA}
    naming = {f"{section}.{key}" for section, schema in schemas.items() for key in schema
              if re.search("model|captioner|similarity", key) and not key.endswith("_seed")}
    assert naming == {f"{mk.section}.{mk.key}" for mk in MODEL_KEYS}


def test_the_cache_is_what_huggingface_hub_scans_as_downloads(written):
    from huggingface_hub import scan_cache_dir

    hf_home, records = written
    scanned = {repo.repo_id: repo for repo in scan_cache_dir(hub_cache(hf_home)).repos}
    assert set(scanned) == {rec["repo"] for rec in records}
    params = paper_params()
    pinned = params["generate"]["revision"]
    for rec in {id(r): r for r in records}.values():
        repo = scanned[rec["repo"]]
        (revision,) = repo.revisions
        assert revision.commit_hash == rec["commit"] and str(revision.snapshot_path) == rec["path"]
        if rec["kind"] == "generator":
            assert rec["commit"] == pinned and revision.refs == frozenset()  # a download by commit writes no ref
        else:
            assert revision.refs == frozenset({"main"})
        assert revision.size_on_disk == rec["bytes"]
    (generator,) = scanned[params["generate"]["model"]].revisions
    files = {f.file_path.relative_to(generator.snapshot_path).as_posix() for f in generator.files}
    assert {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
            "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
            "scheduler/scheduler_config.json", "feature_extractor/preprocessor_config.json"} <= files


def prediction_type(height: int) -> str:
    """SD 2.x at 768 px (stable-diffusion-2-1) predicts v; the 512 px -base model predicts noise."""
    return {768: "v_prediction", 512: "epsilon"}[height]


def test_blobs_are_named_by_the_hub_etags(written):
    hf_home, _ = written
    snapshot = repo_folder(hf_home, "mrm8488/t5-base-finetuned-common_gen") / "snapshots"
    (commit,) = [p.name for p in snapshot.iterdir()]
    weights, config = snapshot / commit / "model.safetensors", snapshot / commit / "config.json"
    assert weights.is_symlink() and not os.path.isabs(os.readlink(weights))
    assert Path(os.readlink(weights)).name == hashlib.sha256(weights.read_bytes()).hexdigest()  # LFS: sha256
    git_sha1 = subprocess.run(["git", "hash-object", str(config)], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(os.readlink(config)).name == git_sha1  # a regular file: its git blob id


def test_the_pinned_revision_is_what_resolves(written, loads):
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    hf_home, _ = written
    pinned = paper_params()["generate"]["revision"]
    repo = paper_params()["generate"]["model"]
    path = snapshot_download(repo, revision=pinned, cache_dir=hub_cache(hf_home), local_files_only=True)
    assert Path(path).name == pinned and (Path(path) / "model_index.json").is_file()
    for other in ("main", WRONG_REVISION):
        with pytest.raises(LocalEntryNotFoundError):
            snapshot_download(repo, revision=other, cache_dir=hub_cache(hf_home), local_files_only=True)
    assert loads["generate.model"]["resolved_revision"] == pinned
    assert loads["invert.model"]["resolved_revision"] == pinned
    assert loads["wrong_revision"]["error"] == "GenBenchError" and WRONG_REVISION in loads["wrong_revision"]["message"]


def test_the_generator_loads_as_generate_and_invert_load_it(loads):
    params = paper_params()
    for key, dtype in (("generate.model", params["generate"]["dtype"]), ("invert.model", params["invert"]["dtype"])):
        got = loads[key]
        assert got["ok"], got
        assert got["pipeline"] == "StableDiffusionPipeline"
        assert (got["unet"], got["vae"], got["text_encoder"], got["tokenizer"], got["scheduler"]) == (
            "UNet2DConditionModel", "AutoencoderKL", "CLIPTextModel", "CLIPTokenizer", "DDIMScheduler")
        assert got["weights_dtype"] == f"torch.{dtype}"
        assert got["vae_scale_factor"] == 8 and got["sample_size"] * 8 == params["generate"]["height"]
        assert got["prediction_type"] == prediction_type(params["generate"]["height"])
        assert got["image_shape"] == [1, 32, 32, 3]


def test_every_clip_loads_at_its_real_size_with_quick_gelu(loads):
    # Parameter counts of OpenAI's CLIP ViT-B/32 and ViT-L/14 (open_clip's, logit scale included).
    real = {"ViT-B-32": (151_277_313, 512), "ViT-L-14": (427_616_513, 768)}
    params = paper_params()
    for section, key in (("embed", "model"), ("generate", "cf_model"), ("index", "model"), ("quality", "model"),
                         ("invert", "filter_clip_model")):
        got = loads[f"{section}.{key}"]
        assert got["ok"], got
        assert (got["params"], got["dim"]) == real[params[section][key]]
        assert got["quick_gelu"]  # OpenAI's weights were trained with QuickGELU


def test_the_text_models_load_and_run(loads):
    for key in ("generate.le_model", "generate.cip_model", "invert.filter_captioner", "invert.filter_similarity"):
        assert loads[key]["ok"], loads[key]
    assert loads["generate.le_model"]["model"] == "T5ForConditionalGeneration"
    assert len(loads["generate.le_model"]["sentences"]) == 2 and all(loads["generate.le_model"]["sentences"])
    assert loads["generate.cip_model"]["model"] == loads["invert.filter_captioner"]["model"] == "Blip2ForConditionalGeneration"
    assert len(loads["generate.cip_model"]["captions"]) == 2
    assert loads["invert.filter_similarity"]["model"] == "BertModel"
    values = loads["invert.filter_similarity"]["values"]
    assert len(values) == 2 and all(-1.0 <= v <= 1.0 for v in values)


def test_a_model_without_a_stand_in_fails_with_the_kits_offline_error(loads):
    for check, name in (("missing_generator", "genbench-test/not-provided"), ("missing_clip", "RN101"),
                        ("missing_enhancer", "genbench-test/not-provided-t5")):
        got = loads[check]
        assert not got["ok"] and got["error"] == "GenBenchError", got
        assert name in got["message"] and "HF_HOME" in got["message"]


def test_builtin_local_and_offline_specs_pass_through(tmp_path):
    local = tmp_path / "my-model"
    local.mkdir()
    params = {
        "generate": {"model": "tiny-sd", "le_model": "tiny-t5", "cip_model": str(local), "cf_model": "tiny-clip"},
        "invert": {"model": "tiny-sd", "filter_captioner": "pool-caption", "filter_similarity": "clip-text",
                   "filter_clip_model": "local-dir:" + str(local)},
        "embed": {"model": "ViT-B-32", "pretrained": None},
        "index": {"model": "hf-hub:example/clip"},
        "quality": {"model": "ViT-B-32", "pretrained": "no-such-tag"},
    }
    records = write_standin_models(params, tmp_path / "hf")
    assert {r["id"] for r in records} == {"tiny-sd", "tiny-t5", str(local), "tiny-clip", "local-dir:" + str(local),
                                          "ViT-B-32", "hf-hub:example/clip"}
    assert not any(r["provided"] for r in records) and all(r["note"] for r in records)
    assert [p.name for p in hub_cache(tmp_path / "hf").iterdir()] == []


def test_the_stand_ins_follow_the_params_not_fixed_ids(tmp_path):
    params = {"generate": {"model": "stabilityai/stable-diffusion-2-1-base", "revision": None, "height": 512},
              "embed": {"model": "ViT-B-16", "pretrained": "openai"}}
    records = by_key(write_standin_models(params, tmp_path / "hf"))
    gen = records["generate.model"]
    root = repo_folder(tmp_path / "hf", "stabilityai/stable-diffusion-2-1-base")
    assert (root / "refs" / "main").read_text() == gen["commit"] == Path(gen["path"]).name
    scheduler = json.loads((Path(gen["path"]) / "scheduler" / "scheduler_config.json").read_text())
    unet = json.loads((Path(gen["path"]) / "unet" / "config.json").read_text())
    assert scheduler["prediction_type"] == "epsilon" and unet["sample_size"] == 64  # the 512 px -base model
    assert records["embed.model"]["repo"] == "timm/vit_base_patch16_clip_224.openai"
    assert (Path(records["embed.model"]["path"]) / "open_clip_model.safetensors").is_file()


def test_a_weights_variant_is_written_under_its_name_and_dtype(tmp_path):
    import torch
    from diffusers import DiffusionPipeline
    from safetensors import safe_open

    params = {"generate": {"model": "example-org/sd", "revision": None, "variant": "fp16", "height": 64}}
    (rec,) = write_standin_models(params, tmp_path / "hf")
    weights = Path(rec["path"]) / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    with safe_open(str(weights), "pt") as fh:
        assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float16}
    pipe = DiffusionPipeline.from_pretrained(rec["path"], variant="fp16", dtype=torch.float16, local_files_only=True)
    assert pipe.unet.dtype == torch.float16


def test_the_same_seed_writes_the_same_weights(tmp_path):
    params = {"generate": {"le_model": "example-org/t5"}}
    first = write_standin_models(params, tmp_path / "a", seed=0)[0]["commit"]
    assert write_standin_models(params, tmp_path / "b", seed=0)[0]["commit"] == first
    assert write_standin_models(params, tmp_path / "c", seed=1)[0]["commit"] != first


def test_one_hub_id_named_for_two_kinds_is_refused_before_writing(tmp_path):
    params = {"generate": {"model": "example-org/shared", "le_model": "example-org/shared"}}
    with pytest.raises(GenBenchError, match=r"generate\.model.*generate\.le_model"):
        write_standin_models(params, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_the_full_size_generator_has_sd2s_published_sizes():
    import torch

    params = copy.deepcopy(paper_params())
    (generator,) = [m for m in named_models(params) if m.kind == "generator"]
    with torch.device("meta"):
        pipe = build_generator(params, generator, seed=0, full_size=True)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    # SD 2.x: UNet 865,910,724, VAE 83,653,863, OpenCLIP ViT-H text tower (23 layers used) 340,387,840.
    assert (count(pipe.unet), count(pipe.vae), count(pipe.text_encoder)) == (865_910_724, 83_653_863, 340_387_840)
    height = params["generate"]["height"]
    assert pipe.unet.config.sample_size == height // 8
    assert pipe.scheduler.config.prediction_type == prediction_type(height)
