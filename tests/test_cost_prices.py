"""The price catalog: the paper snapshot, lookup by name or path, stale and malformed snapshots."""

import warnings
from datetime import date

import pytest
import yaml

from cost.errors import CostError, StaleSnapshotWarning
from cost.prices import display_sku, list_snapshots, load_snapshot, normalise_sku


def test_paper_snapshot_holds_the_papers_prices():
    snap = load_snapshot("paper-2023")
    assert snap.provider == "Azure"
    assert snap.date == date(2023, 7, 25)
    assert snap.source == "GenBench paper Tables 1 and 5"
    assert snap.currency == "USD"
    assert snap.human_labelling_usd_per_image == 0.012
    rows = {r.name: r for r in snap.rows}
    gpu, cpu = rows["NC24ads A100 v4"], rows["E32ads v5"]
    assert (gpu.pricing, gpu.usd_per_hour, gpu.vcpus, gpu.gpus, gpu.gpu_model) == ("spot", 1.47, 24, 1, "A100 80GB")
    assert (cpu.pricing, cpu.usd_per_hour, cpu.vcpus, cpu.gpus, cpu.gpu_model) == ("spot", 0.21, 32, 0, None)
    assert snap.label() == "paper-2023 (Azure, 2023-07-25)"


def test_list_snapshots_includes_the_packaged_one():
    assert "paper-2023" in [s.name for s in list_snapshots()]


def test_unknown_name_names_the_known_snapshots():
    with pytest.raises(CostError, match="unknown price snapshot 'azure-mars'.*paper-2023"):
        load_snapshot("azure-mars")


def test_stale_snapshot_warns_with_its_age():
    with pytest.warns(StaleSnapshotWarning, match="38 days old, more than max_age_days=30"):
        load_snapshot("paper-2023", max_age_days=30, today=date(2023, 9, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_snapshot("paper-2023", max_age_days=30, today=date(2023, 8, 24))
        load_snapshot("paper-2023")


GOOD = {
    "name": "lab-2025", "provider": "Azure", "date": "2025-01-15", "source": "hand", "currency": "USD",
    "rows": [{"sku": "Standard_E32ads_v5", "region": "eastus", "pricing": "on-demand", "usd_per_hour": 2,
              "vcpus": 32, "gpus": 0, "gpu_model": None}],
}


def write(tmp_path, data, name="lab-2025.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_by_path_and_by_name_from_a_search_dir(tmp_path):
    path = write(tmp_path, GOOD)
    snap = load_snapshot(path)
    assert snap.rows[0].usd_per_hour == 2.0 and snap.date == date(2025, 1, 15)
    assert load_snapshot("lab-2025", search_dirs=[tmp_path]).path == path
    assert "lab-2025" in [s.name for s in list_snapshots([tmp_path])]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("date"), "lacks key 'date'"),
    (lambda d: d.update(currency="EUR"), "in 'EUR'"),
    (lambda d: d.update(prices=[]), "unknown key 'prices'"),
    (lambda d: d.update(rows=[]), "has no rows"),
    (lambda d: d["rows"][0].update(pricing="reserved"), "pricing = 'reserved' must be one of spot, on-demand"),
    (lambda d: d["rows"][0].update(usd_per_hour=-1), r"usd_per_hour = -1 must be a number"),
    (lambda d: d["rows"][0].update(usd_per_hour="0.21"), r"usd_per_hour = '0.21' must be a number"),
    (lambda d: d["rows"][0].pop("vcpus"), "lacks key 'vcpus'"),
    (lambda d: d.update(date="July 2023"), "must be a date"),
])
def test_malformed_snapshots_are_named(tmp_path, change, message):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    change(data)
    with pytest.raises(CostError, match=message):
        load_snapshot(write(tmp_path, data))


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: [unclosed")
    with pytest.raises(CostError, match="not valid YAML"):
        load_snapshot(bad)
    with pytest.raises(CostError, match="cannot be read"):
        load_snapshot(tmp_path / "missing.yaml")


def test_sku_names():
    assert display_sku("Standard_NC24ads_A100_v4") == "NC24ads A100 v4"
    assert normalise_sku("E32ads v5") == normalise_sku("Standard_E32ads_v5") == normalise_sku("e32ads_v5")
