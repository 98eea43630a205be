"""`genbench rehearse`: the paper profile on stand-in models and data, offline, sizes changed only.

The subset covers every loader kind and every metric: VOC-2007 (torchvision, multi-label,
11-point mAP), Hateful Memes (manual download, ROC AUC), Caltech-101 (torchvision, mean per
class), CIFAR-10 (torchvision, accuracy), KITTI distance (WebDataset mirror) and FER-2013
(manual download). What it prints is checked against the workdir's own files, read here
independently of genbench.rehearsal.checks.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, genbench_cmd
from genbench.errors import GenBenchError
from genbench.rehearsal import workdir as wd
from genbench.rehearsal.extrapolate import real_targets, stage_factors

SUBSET = ["voc-2007", "hateful-memes", "caltech-101", "cifar-10", "kitti-distance", "fer-2013"]
PAPER = yaml.safe_load((ROOT / "profiles/paper.yaml").read_text())


def _run(args: list[str], cwd: Path):
    import subprocess

    return subprocess.run(genbench_cmd() + args, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rehearsal")
    started = time.perf_counter()
    proc = _run(["rehearse", "paper", "--datasets", ",".join(SUBSET), "--workdir", str(workdir)], ROOT)
    seconds = time.perf_counter() - started
    print(f"rehearsal of {len(SUBSET)} datasets: {seconds:.0f} s")
    return proc, workdir, seconds


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # the six-dataset subset: not yet measured under 10 min on an unshared 2-core box
def test_subset_rehearsal_passes(subset):
    proc, workdir, _ = subset
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error:" not in proc.stderr
    assert "EXTRAPOLATION of the real run's cost" in proc.stdout and "assumptions:" in proc.stdout


@pytest.mark.slow  # the six-dataset subset: not yet measured under 10 min on an unshared 2-core box
def test_params_are_the_profile_resized(subset):
    _, workdir, _ = subset
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    overlay = yaml.safe_load((ROOT / wd.OVERLAY).read_text())
    assert params["datasets"] == SUBSET
    for section, values in PAPER.items():
        if section == "datasets":
            continue
        if isinstance(values, dict):
            changed = {k for k in values if params[section][k] != values[k]}
            assert changed <= set(overlay.get(section, {})), (section, changed)
        else:
            assert params[section] == values
    for key in ("model", "revision", "strategies", "le_model", "cip_model", "cf_model"):
        assert params["generate"][key] == PAPER["generate"][key]


@pytest.mark.slow  # the six-dataset subset: not yet measured under 10 min on an unshared 2-core box
def test_table2_has_every_strategy_for_every_dataset(subset):
    _, workdir, _ = subset
    rows = [r for r in _csv(workdir / "reports/tables/table2.csv")
            if r["Row"].startswith("reproduced") and r["Model"] == PAPER["report"]["compare_with"]]
    columns = {"voc-2007": "VOC-2007", "hateful-memes": "Hateful Memes", "caltech-101": "Caltech-101",
               "cifar-10": "CIFAR-10", "kitti-distance": "KITTI Distance", "fer-2013": "FER-2013"}
    header = list(rows[0])
    for name, column in columns.items():
        assert column in header, header
        for strategy in PAPER["generate"]["strategies"]:
            row = next(r for r in rows if r["Prompt strategy"] == strategy)
            value = float(row[column])
            assert 0.0 <= value <= 100.0, (name, strategy, value)


@pytest.mark.slow  # the six-dataset subset: not yet measured under 10 min on an unshared 2-core box
def test_voc_is_multilabel_map_and_memes_roc_auc(subset):
    from safetensors.numpy import load_file
    from sklearn.metrics import roc_auc_score

    _, workdir, _ = subset
    voc = load_file(str(workdir / "data/voc-2007/features/test.safetensors"))
    assert voc["labels"].ndim == 2 and voc["labels"].shape[1] == 20 and set(np.unique(voc["labels"])) <= {0, 1}
    for stem in ("cler", "probe"):
        assert json.loads((workdir / f"metrics/voc-2007/{stem}.json").read_text())["metric"] == "map_11point"
        assert json.loads((workdir / f"metrics/hateful-memes/{stem}.json").read_text())["metric"] == "roc_auc"
    # the zero-shot ROC AUC recomputed from the saved features with sklearn
    test = load_file(str(workdir / "data/hateful-memes/features/test.safetensors"))
    text = load_file(str(workdir / "data/hateful-memes/features/text.safetensors"))["features"]
    feats = test["features"] / np.linalg.norm(test["features"], axis=1, keepdims=True)
    logits = 100.0 * feats @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    expected = 100.0 * roc_auc_score(test["labels"], logits[:, 1] - logits[:, 0])
    zero_shot = json.loads((workdir / "metrics/hateful-memes/cler.json").read_text())["zero_shot"]
    assert zero_shot == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow  # the six-dataset subset: not yet measured under 10 min on an unshared 2-core box
def test_every_stage_has_its_meter_and_time_printed(subset):
    proc, workdir, _ = subset
    meters = sorted((workdir / "meter").glob("**/*.json"))
    per_dataset = {p.parent.name for p in (workdir / "meter/datasets").glob("*/*.json")}
    assert per_dataset == set(SUBSET)
    for stage in ("prepare", "generate", "embed", "cler", "probe", "quality", "retrieve", "invert", "shots"):
        assert all((workdir / f"meter/datasets/{d}/{stage}.json").is_file() for d in SUBSET), stage
        assert f"[stage wall times] {stage}" in proc.stdout
    assert not (workdir / "meter/pipeline/bootstrap.json").exists()  # the paper profile trains no miniature
    assert len(meters) >= 9 * len(SUBSET)


def test_extrapolation_scales_by_the_profile_sizes():
    """By hand: 50 steps at 768x768 against 2 steps at 32x32 is 25 x 576 = 14,400 per image."""
    rehearsed = wd.overlay_params(PAPER, yaml.safe_load((ROOT / wd.OVERLAY).read_text()), None)
    factors = stage_factors(PAPER, rehearsed)
    g, r = PAPER["generate"], rehearsed["generate"]
    assert factors["generate"][0] == pytest.approx((g["steps"] / r["steps"]) * (g["height"] * g["width"]) / (r["height"] * r["width"]))
    targets = real_targets(PAPER)
    assert targets["generated"] == 2548 * g["images_per_class"] * len(g["strategies"])
    assert targets["retrieved"] == 2548 * PAPER["retrieve"]["shots"]


def test_overlay_only_resizes_keys_the_profile_sets():
    with pytest.raises(GenBenchError, match="generate.new_key"):
        wd.overlay_params(PAPER, {"generate": {"new_key": 1}}, None)
    with pytest.raises(GenBenchError, match="mnist-9"):
        wd.overlay_params(PAPER, {}, ["mnist-9"])


def test_a_model_missing_from_the_standins_fails_the_rehearsal(tmp_path):
    """The hub is off: the generator's stand-in removed from the scratch cache, the first stage that
    loads it stops the rehearsal, reported as one error."""
    from genbench.rehearsal.models import write_standin_models
    from genbench.rehearsal.run import rehearse

    def all_but_the_generator(params, hf_home, **kw):
        written = write_standin_models(params, hf_home, **kw)
        repo = Path(hf_home) / "hub" / ("models--" + params["generate"]["model"].replace("/", "--"))
        assert repo.is_dir(), sorted(p.name for p in (Path(hf_home) / "hub").iterdir())
        shutil.rmtree(repo)
        return written

    outcome = rehearse("paper", ["hateful-memes"], tmp_path / "w", root=ROOT, write_models=all_but_the_generator)
    assert len(outcome.errors) == 1, outcome.errors
    assert "dvc repro stopped at stage" in outcome.errors[0]
    assert "generate@hateful-memes" in outcome.errors[0] or "invert@hateful-memes" in outcome.errors[0]


def test_workdir_that_is_not_a_rehearsal_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    proc = _run(["rehearse", "paper", "--datasets", "cifar-10", "--workdir", str(tmp_path)], ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert "not a rehearsal workdir" in proc.stderr and (tmp_path / "precious.txt").is_file()


def test_every_model_key_of_the_paper_profile_gets_a_standin():
    """Each key of the paper profile that names a model (…model, the invert filter's captioner and
    text model) is among those the stand-in writer covers: a key it missed (quality.clip_score_model)
    stopped the rehearsal at quality@voc-2007 with the hub off."""
    import re

    from genbench.rehearsal.models import named_models

    covered = {key for model in named_models(PAPER) for key in model.keys}
    naming = {f"{section}.{key}" for section, values in PAPER.items() if isinstance(values, dict)
              for key, value in values.items()
              if isinstance(value, str) and (re.search(r"(^|_)model$", key) or key in ("filter_captioner", "filter_similarity"))}
    assert naming - covered == set()


def test_stage_check_runs_dvc_through_the_kits_interpreter(tmp_path, monkeypatch):
    """A `dvc` first on PATH (here one that reports every stage changed) is not the one the check
    asks: it runs `sys.executable -m dvc`, so a rehearsal without an activated venv still checks."""
    import subprocess
    import sys

    from genbench.rehearsal.checks import check_stages

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dvc").write_text('#!/bin/sh\necho \'{"prepare@cifar-10": ["changed"]}\'\n')
    (fake / "dvc").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    check = check_stages(tmp_path, {})
    assert check.errors == [], check.errors
    assert "dvc status clean" in check.lines[0]


def test_table_checks_name_each_dataset_without_a_number():
    from genbench.rehearsal.checks import datasets_without_a_number

    cells = {"cifar-10": ["12.5"], "mnist": ["-", "nan"], "voc-2007": ["-", "3"], "dtd": [None]}
    assert datasets_without_a_number(list(cells), cells.__getitem__) == [("mnist", ["-", "nan"]), ("dtd", [None])]
