"""The shipped profiles: every section valid for its stage, datasets registered, switching works."""

import pytest
import yaml
from click.testing import CliRunner

from conftest import ROOT
from genbench.datasets import category_total, get_dataset
from stages import bootstrap, cler, embed, generate, invert, prepare, probe, quality, report, retrieve, shots, pool, index
from stages.frame.cli import cli
from stages.cost import SCHEMA as COST_SCHEMA
from stages.frame.params import validate_section

SCHEMAS = {
    "bootstrap": bootstrap.SCHEMA, "prepare": prepare.SCHEMA, "generate": generate.SCHEMA, "embed": embed.SCHEMA,
    "cler": cler.SCHEMA, "probe": probe.SCHEMA, "quality": quality.SCHEMA, "pool": pool.SCHEMA, "index": index.SCHEMA,
    "retrieve": retrieve.SCHEMA, "invert": invert.SCHEMA, "cost": COST_SCHEMA, "report": report.SCHEMA, "shots": shots.SCHEMA,
}


@pytest.mark.parametrize("profile", ["embedded", "paper"])
def test_profile_sections_are_valid(profile):
    params = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text())
    assert params["profile"] == profile
    for section, schema in SCHEMAS.items():
        validate_section(params.get(section), section, schema)
    for name in params["datasets"]:
        get_dataset(name)


def test_params_yaml_is_the_embedded_profile():
    assert (ROOT / "params.yaml").read_text() == (ROOT / "profiles" / "embedded.yaml").read_text()


def test_paper_profile_covers_the_22_datasets_and_their_real_label_sets():
    params = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
    specs = [get_dataset(n) for n in params["datasets"]]
    assert len({s.name for s in specs}) == 22
    assert sum(s.num_classes for s in specs) == category_total()["total"]
    generate_section = params["generate"]
    assert generate_section["height"] in (512, 768) and generate_section["revision"]


def test_profile_use_switches_params(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "paper.yaml").write_text((ROOT / "profiles" / "paper.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["profile", "use", "paper"])
    assert result.exit_code == 0
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "profiles" / "paper.yaml").read_text()
    bad = CliRunner().invoke(cli, ["profile", "use", "nope"])
    assert bad.exit_code == 2 and "unknown profile 'nope'" in bad.output
