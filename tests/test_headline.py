"""headline_metrics and the headline files, against hand-built metrics files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genbench.headline import dataset_rows, headline_metrics, summary, write_dataset_headline


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def project(tmp_path):
    m = tmp_path / "metrics"
    _write(m / "pets" / "cler.json", {"zero_shot": 50.0, "seconds": {"original": 0.1},
                                      "sets": {"generated/ST": {"cler": 61.25, "images": 8}, "original": {"cler": 70.0}}})
    _write(m / "pets" / "probe.json", {"sets": {"generated/ST": {"score": 65.5, "converged": True}, "original": {"score": 80.0}}})
    _write(m / "pets" / "quality.json", {"fid_definition": "text", "sources": {
        "generated/ST": {"clip_score": 30.5, "fid_clip": 0.25}, "original": {"clip_score": None, "fid_clip": 0.0625}}})
    _write(m / "cost.json", {"usd_per_image": {"generated": 2e-7, "original": 0.012, "retrieved": None}, "usd_total": 0.5,
                             "stages": ["cler"]})
    return tmp_path


def test_headline_metrics_reads_each_number_from_its_file(project):
    assert headline_metrics(project, ["pets"]) == {
        "pets/zero_shot": 50.0, "pets/cler/generated/ST": 61.25, "pets/cler/original": 70.0,
        "pets/probe/generated/ST": 65.5, "pets/probe/original": 80.0, "pets/clip_score/generated/ST": 30.5,
        "pets/fid/generated/ST": 0.25, "pets/fid/original": 0.0625,
        "usd_per_image/generated": 2e-7, "usd_per_image/original": 0.012, "usd_total": 0.5}


def test_headline_metrics_leaves_out_what_a_partial_run_lacks(tmp_path):
    _write(tmp_path / "metrics" / "a" / "cler.json", {"zero_shot": 10.0, "sets": {}})
    assert headline_metrics(tmp_path, ["a", "b"]) == {"a/zero_shot": 10.0}


def test_dataset_files_are_one_row_per_image_set(project):
    paths = write_dataset_headline(project, "pets")
    base = project / "metrics" / "pets" / "headline"
    assert sorted(p.relative_to(base).as_posix() for p in paths) == ["generated/ST.json", "original.json", "zero_shot.json"]
    st = json.loads((base / "generated" / "ST.json").read_text())
    assert st == {"cler": 61.25, "probe": 65.5, "clip_score": 30.5, "fid": 0.25, "usd_per_1M_images": pytest.approx(0.2)}
    assert json.loads((base / "original.json").read_text())["usd_per_1M_images"] == pytest.approx(12000.0)
    assert json.loads((base / "zero_shot.json").read_text()) == {"zero_shot": 50.0}


def test_rewriting_replaces_the_folder_whole_and_a_crash_keeps_the_old_one(project, monkeypatch):
    from genbench import storage

    base = project / "metrics" / "pets" / "headline"
    write_dataset_headline(project, "pets")
    (base / "stale.json").write_text("{}")  # a source an earlier run produced and this one does not
    write_dataset_headline(project, "pets")
    assert not (base / "stale.json").exists()
    before = {p.relative_to(base): p.read_bytes() for p in base.rglob("*.json")}
    _write(project / "metrics" / "pets" / "cler.json", {"zero_shot": 99.0, "sets": {}})
    real, calls = storage.atomic_write_json, []

    def crash_on_second(path, obj):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        real(path, obj)

    monkeypatch.setattr(storage, "atomic_write_json", crash_on_second)
    with pytest.raises(OSError):
        write_dataset_headline(project, "pets")
    assert {p.relative_to(base): p.read_bytes() for p in base.rglob("*.json")} == before
    assert sorted(p.name for p in base.parent.iterdir()) == sorted(["cler.json", "probe.json", "quality.json", "headline"])


def test_rows_without_a_price_carry_no_usd():
    assert dataset_rows({"cler/retrieved": 1.0}, {}) == {"retrieved": {"cler": 1.0}}


def test_summary_is_the_total():
    assert summary({"usd_total": 3, "usd_per_image": {}}) == {"usd_total": 3.0}
    assert summary({}) == {}


def test_dvc_metrics_show_fits_160_columns_for_the_embedded_default(tmp_path):
    """The embedded default's image sets (ST, DT, pooled, retrieved, original), numbers with all
    their digits, through the kit's own dvc.yaml."""
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import copy_project
    from dvc_project import dvc

    root = copy_project(tmp_path / "kit")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    sources = ["generated", "generated/ST", "generated/DT", "retrieved", "original"]
    m = root / "metrics"
    _write(m / "digits" / "cler.json", {"zero_shot": 83.14814814814815, "sets": {s: {"cler": 87.96296296296296} for s in sources}})
    _write(m / "digits" / "probe.json", {"sets": {s: {"score": 89.81481481481481} for s in sources}})
    _write(m / "digits" / "quality.json", {"sources": {s: {"clip_score": 73.86859970548372, "fid_clip": 0.0676377646494335}
                                                       for s in sources}})
    cost = {"usd_per_image": {"generated": 1.580527868098939e-07, "original": 0.012, "retrieved": 1.2181703955401227e-07},
            "usd_total": 0.0010265983992687362}
    _write(m / "cost.json", cost)
    _write(m / "summary.json", summary(cost))
    write_dataset_headline(root, "digits")
    shown = dvc(root, "metrics", "show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 1 + 1 + len(sources) + 1  # header, summary, one row per image set, zero-shot
    assert max(len(line) for line in lines) <= 160, shown.stdout
