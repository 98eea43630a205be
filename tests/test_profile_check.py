"""`genbench profile check`: the shipped profiles pass, each rule between sections is enforced,
every problem is reported at once; stages refuse misspelt sections before writing anything; the
paper profile's DVC graph has no bootstrap stage."""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import ROOT, write_params
from stages.frame.cli import cli


def profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text())


def changed(params: dict, **dotted) -> dict:
    """A copy of `params` with `section__key=value` (or `key=value` for top-level keys) set."""
    out = copy.deepcopy(params)
    for name, value in dotted.items():
        section, _, key = name.partition("__")
        if key:
            out.setdefault(section, {})[key] = value
        else:
            out[section] = value
    return out


def check(tmp_path: Path, params: dict, name: str = "candidate"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    result = CliRunner().invoke(cli, ["profile", "check", str(path)])
    return result.exit_code, [line for line in result.output.splitlines() if line.startswith("error: ")], result.output


@pytest.mark.parametrize("name", ["paper", "embedded"])
def test_shipped_profiles_pass(name):
    result = CliRunner().invoke(cli, ["profile", "check", name])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"ok (profile '{name}', {len(profile(name)['datasets'])} datasets, "
                                          f"{len(profile(name)['generate']['strategies'])} strategies)")


def test_params_yaml_is_the_default_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(changed(profile("embedded"), generte={"steps": 3})))
    result = CliRunner().invoke(cli, ["profile", "check"])
    assert result.exit_code == 2 and "params.yaml: params section 'generte' does not exist" in result.output


def test_paper_with_shallow_retrieval_names_both_keys(tmp_path):
    status, errors, _ = check(tmp_path, changed(profile("paper"), retrieve__top_k=50), "paper")
    assert status == 2 and len(errors) == 1
    assert "retrieve.shots" in errors[0] and "retrieve.top_k" in errors[0]


BROKEN = [  # (profile, changes, what the one error line must name)
    ("paper", {"invert__model": "stabilityai/stable-diffusion-2-1-base"}, "'invert.model' = 'stabilityai/stable-diffusion-2-1-base' must equal generate.model"),
    ("paper", {"invert__revision": None}, "'invert.revision' = None must equal generate.revision"),
    ("embedded", {"generate__model": "tiny-sd", "invert__model": "tiny-sd", "invert__seed": 1}, "'invert.seed' = 1 must equal generate.seed = 0"),
    ("paper", {"quality__model": "ViT-L-14"}, "'quality.model' = 'ViT-L-14' must equal embed.model = 'ViT-B-32'"),
    ("paper", {"quality__pretrained": "laion2b_s34b_b79k"}, "'quality.pretrained' = 'laion2b_s34b_b79k' must equal embed.pretrained"),
    ("embedded", {"quality__model_seed": 3}, "'quality.model_seed' = 3 must equal embed.seed = 0"),
    ("paper", {"datasets": ["cifar-10", "no-such-set"]}, "'datasets' lists 'no-such-set'"),
    ("embedded", {"image_folders": {"digits": {"root": "somewhere"}}}, "'image_folders.digits' is taken by the built-in dataset 'digits'"),
    ("paper", {"generate__strategies": ["ST", "DT+XX"]}, "unknown prompt strategy 'DT+XX'"),
    ("embedded", {"cost__snapshot": "no-such-snapshot"}, "unknown price snapshot 'no-such-snapshot'"),
    ("embedded", {"cost__sku": "Standard_NoSuch_v9"}, "'cost.sku' = 'Standard_NoSuch_v9'"),
    ("embedded", {"profile": "nosuchprofile"}, "'profile' = 'nosuchprofile' names no profile"),
    ("paper", {"generate__strategies": ["DT+TI"], "invert__references": ["retrieved"]}, "'generate.ti_embeddings' = 'data/{dataset}/inversion/original'"),
    ("paper", {"invert__original_shots": 8}, "'invert.original_shots' = 8 exceeds prepare.shots = 5"),
    ("paper", {"generate__strategies": ["DT+RF"], "generate__rf_neighbours": 11}, "'generate.rf_neighbours' = 11 exceeds twice prepare.shots = 5"),
    ("embedded", {"models__train": []}, "add 'miniature' to models.train"),
    ("paper", {"models__train": ["paper-sd"]}, "'models.train' = ['paper-sd'] may list only 'miniature'"),
    ("embedded", {"models__deps": "models/README.md"}, "params keys generate.model, embed.model, quality.model, finetune.model, index.model, "
     "invert.model, invert.filter_clip_model read folders outside models.deps = 'models/README.md'"),
    ("paper", {"models__deps": "models/nowhere"}, "'models.deps' = 'models/nowhere' does not exist"),
    ("paper", {"generate__stpes": 30}, "'generate.stpes' does not exist; did you mean 'generate.steps'?"),
]


@pytest.mark.parametrize("name, changes, expected", BROKEN, ids=[e for _, _, e in BROKEN])
def test_each_rule_broken_once(tmp_path, monkeypatch, name, changes, expected):
    monkeypatch.chdir(ROOT)  # models/README.md, the paper profile's model dependency, is found from the project root
    status, errors, output = check(tmp_path, changed(profile(name), **changes), name)
    assert status == 2 and len(errors) == 1, output
    assert expected in errors[0]


def test_a_folder_dataset_may_be_listed(tmp_path):
    params = changed(profile("embedded"), datasets=["digits", "my-pets"], image_folders={"my-pets": {"root": "pets"}})
    status, errors, output = check(tmp_path, params, "embedded")
    assert status == 0 and not errors, output


def test_every_problem_is_reported(tmp_path):
    params = changed(profile("paper"), retrieve__top_k=10, invert__model="other/model", generte={"steps": 3},
                     generate__strategies=["ST", "XX", "DT+YY"], cost__snapshot="nope", quality__pretrained=None)
    status, errors, output = check(tmp_path, params, "paper")
    assert status == 2
    expected = ["section 'generte'", "'retrieve.shots' = 100 exceeds retrieve.top_k = 10", "prompt strategy 'XX'",
                "prompt strategy 'DT+YY'", "unknown price snapshot 'nope'", "'invert.model' = 'other/model'",
                "'quality.pretrained' = None"]
    assert len(errors) == len(expected), output
    for text in expected:
        assert sum(text in e for e in errors) == 1, (text, output)


def test_misspelt_section_names_the_closest(tmp_path):
    status, errors, _ = check(tmp_path, changed(profile("embedded"), generte={"steps": 3}), "embedded")
    assert status == 2 and errors == [f"error: {tmp_path / 'embedded.yaml'}: params section 'generte' does not exist; "
                                      "did you mean 'generate'?"]


def test_unknown_target_is_one_error():
    result = CliRunner().invoke(cli, ["profile", "check", "nosuch"])
    assert result.exit_code == 2 and "'nosuch' is neither a profile nor a file; shipped profiles: embedded, paper" in result.output


@pytest.mark.parametrize("overrides, expected", [
    ({"generte": {"steps": 3}}, "params section 'generte' does not exist; did you mean 'generate'?"),
    ({"profile": "nosuchprofile"}, "params key 'profile' = 'nosuchprofile' names no profile"),
    ({"prepare": {"shotz": 2}}, "params key 'prepare.shotz' does not exist; did you mean 'prepare.shots'?"),
])
def test_stage_refuses_before_writing(tmp_path, monkeypatch, overrides, expected):
    write_params(tmp_path, {"prepare": {"shots": 2}, **overrides})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = CliRunner().invoke(cli, ["prepare", "--dataset", "digits"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no data, meter, metrics or tracking db


def _dvc(project: Path, *args: str) -> str:
    dvc = str(Path(sys.executable).with_name("dvc"))
    proc = subprocess.run([dvc, *args], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _pipeline(tmp_path: Path, name: str) -> Path:
    """The pipeline definition alone (dvc.yaml, .dvc/config, models/README.md) with profile NAME as params.yaml."""
    project = tmp_path / name
    (project / ".dvc").mkdir(parents=True)
    (project / "models").mkdir()
    for part in ("dvc.yaml", ".dvc/config", "models/README.md"):
        shutil.copy(ROOT / part, project / part)
    shutil.copy(ROOT / "profiles" / f"{name}.yaml", project / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project


def test_paper_graph_has_no_bootstrap_and_no_miniature_dependency(tmp_path):
    paper = _pipeline(tmp_path, "paper")
    dot = _dvc(paper, "dag", "--dot")
    assert "generate@imagenet-1k" in dot and "bootstrap" not in dot
    status = _dvc(paper, "status")
    assert "generate@imagenet-1k" in status and "models/README.md" in status and "miniature" not in status


def test_embedded_graph_still_trains_the_miniature_first(tmp_path):
    dot = _dvc(_pipeline(tmp_path, "embedded"), "dag", "--dot")
    for stage in ("generate@digits", "embed@digits", "quality@digits", "index", "invert@digits"):
        assert f'"bootstrap@miniature" -> "{stage}"' in dot
