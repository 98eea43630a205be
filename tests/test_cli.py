"""The command line: help texts, and bad input gets one line, exit status 2 and no output."""

import pytest
import yaml
from click.testing import CliRunner

from stages.frame.cli import cli

STAGES = ["bootstrap", "prepare", "pool", "index", "retrieve", "invert", "generate", "embed", "cler", "probe",
          "quality", "cost", "report"]


def test_help_lists_every_stage():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert f"  {stage}" in result.output


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_help(stage):
    result = CliRunner().invoke(cli, [stage, "--help"])
    assert result.exit_code == 0 and "--params" in result.output


def _invoke(tmp_path, monkeypatch, stage, section, values, extra=()):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = {"profile": "embedded", "datasets": ["digits"], section: values}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return CliRunner().invoke(cli, [stage, *extra])


@pytest.mark.parametrize(
    "stage, section, values, expected",
    [
        ("prepare", "datasets", ["no-such-set"], "unknown dataset 'no-such-set'"),
        ("prepare", "datasets", "digits", "'datasets' = 'digits' must be a non-empty list"),
        ("prepare", "prepare", {"shots": 0}, "'prepare.shots' = 0 must be greater than 0"),
        ("prepare", "prepare", {"shotz": 3}, "'prepare.shotz' does not exist"),
        ("generate", "generate", {"strategies": ["ST", "XX"]}, "unknown prompt strategy 'XX'"),
        ("generate", "generate", {"batch_size": 16, "shard_size": 20}, "must be a multiple of generate.batch_size"),
        ("probe", "probe", {"protocol": "peek"}, "'probe.protocol' = 'peek' must be one of clean, l2-on-test"),
        ("probe", "probe", {"protocol": "elevater"}, "'probe.protocol' = 'elevater' was renamed 'l2-on-test'"),
        ("generate", "generate", {"st_template": "a photo"}, "'generate.st_template': ST template 'a photo' must contain {c}"),
        ("cler", "cler", {"ranking": "logits"}, "'cler.ranking' = 'logits' must be one of softmax, cosine"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(tmp_path, monkeypatch, stage, section, values, expected):
    result = _invoke(tmp_path, monkeypatch, stage, section, values)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written, not even a tracking db


def test_bad_shard_argument(tmp_path, monkeypatch):
    result = _invoke(tmp_path, monkeypatch, "generate", "generate", {}, extra=["--shard", "3/2"])
    assert result.exit_code == 2 and "--shard '3/2'" in result.output


def test_missing_model_offline_exit_2_without_outputs(tmp_path, monkeypatch):
    from genbench import storage
    from genbench.datasets import get_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    prepared = tmp_path / "data" / "digits" / "prepared"
    prepared.mkdir(parents=True)
    storage.atomic_write_json(prepared / "meta.json", get_dataset("digits").metadata())
    result = _invoke(tmp_path, monkeypatch, "generate", "generate", {"model": "example-org/missing-model"})
    assert result.exit_code == 2
    assert "cannot load text-to-image model 'example-org/missing-model'" in result.output
    assert not (tmp_path / "data" / "digits" / "generated").exists()
    assert not (tmp_path / "plots").exists()
