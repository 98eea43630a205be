"""The cost commands: prices list/show/refresh, cost estimate and audit; errors exit 2 in one line."""

import json
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from cost import azure
from cost.cli import cost_group, prices_group
from cost.ledger import LedgerRow, write_ledger

DATA = Path(__file__).parent / "data"
TABLE5 = Path(__file__).parents[1] / "reports" / "reference" / "genbench_table5_cost.csv"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def run(group, args):
    return CliRunner().invoke(group, args, catch_exceptions=False)


def test_prices_list_and_show():
    out = run(prices_group, ["list"])
    assert out.exit_code == 0
    assert "paper-2023" in out.output and "2023-07-25" in out.output
    out = run(prices_group, ["show", "paper-2023"])
    assert "Standard_NC24ads_A100_v4" in out.output and "human labelling: 0.012 USD/image" in out.output


def test_prices_refresh_replays_the_recorded_response(monkeypatch, tmp_path):
    pages = [json.loads((DATA / f"azure_retail_eastus_page{i}.json").read_text()) for i in (1, 2, 3)]
    by_url = dict(zip([azure.prices_url("eastus"), pages[0]["NextPageLink"], pages[1]["NextPageLink"]], pages))
    monkeypatch.setattr(azure, "urllib_get_json", lambda url, **_: by_url[url])
    out = run(prices_group, ["refresh", "--region", "eastus", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "8 rows (4 spot) for eastus" in out.output
    assert len(list(tmp_path.glob("azure-eastus-*.yaml"))) == 1


def test_bad_region_exits_2_with_one_line():
    out = run(prices_group, ["refresh", "--region", "East US"])
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "error: region 'East US' is not an Azure ARM region name; use one like 'eastus' or 'westeurope'"]


def ledger_row(stage, data_type, usd_total, items):
    return LedgerRow(stage=stage, data_type=data_type, items=items, wall_s=622.0, cpu_s=600.0, gpu_s=500.0,
                     gpu_energy_j=1.5e5, gpu_util_mean=80.0, vcpus=24, gpu_count=1, gpu_model="NVIDIA A100 80GB PCIe",
                     billed_hours=622 / 3600, sku="Standard_NC24ads_A100_v4", provider="Azure", pricing="spot",
                     region="unspecified", usd_per_hour=1.47, usd_per_hour_basis="NC24ads A100 v4 spot 1.47 USD/h",
                     usd_total=usd_total, usd_per_image=usd_total / items, snapshot="paper-2023",
                     snapshot_date="2023-07-25")


def test_estimate_prints_the_bill_per_data_type(tmp_path):
    ledger = write_ledger([ledger_row("generate", "generated", 0.254, 1000)], tmp_path / "ledger.jsonl")
    out = run(cost_group, ["estimate", str(ledger), "--classes", "1638", "--shots", "500"])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.output.splitlines()[2:]}
    assert "819,000" in lines["generated"] and "208.03" in lines["generated"]
    assert "9,828.00" in lines["original"] and "human-labelling reference" in lines["original"]
    out = run(cost_group, ["estimate", str(ledger), "--target", "generated=1000", "--json"])
    assert json.loads(out.output)["generated"]["usd_total"] == pytest.approx(0.254)


def test_estimate_scale_multiplies_a_stages_work_before_pricing(tmp_path):
    rows = [ledger_row("generate", "generated", 0.254, 1000), ledger_row("retrieve", "retrieved", 0.05, 100)]
    ledger = write_ledger(rows, tmp_path / "ledger.jsonl")
    out = run(cost_group, ["estimate", str(ledger), "--target", "generated=2000", "--target", "retrieved=200",
                           "--scale", "generate=4", "--json"])
    assert out.exit_code == 0, out.output
    # generate: 0.254 x 4 USD for 1000 images, priced for 2000; retrieve as measured: 0.05 for 100, priced for 200
    assert json.loads(out.output)["generated"]["usd_total"] == pytest.approx(2.032)
    assert json.loads(out.output)["retrieved"]["usd_total"] == pytest.approx(0.1)
    for bad in ("generate", "generate=fast", "=2", "generate=0"):
        out = run(cost_group, ["estimate", str(ledger), "--target", "generated=1", "--scale", bad])
        assert out.exit_code == 2 and out.output.count("\n") == 1 and "error:" in out.output, (bad, out.output)


def test_estimate_errors_exit_2(tmp_path):
    out = run(cost_group, ["estimate", str(tmp_path / "missing.jsonl"), "--classes", "2", "--shots", "3"])
    assert out.exit_code == 2 and out.output.startswith("error: ledger file")
    ledger = write_ledger([ledger_row("generate", "generated", 0.254, 1000)], tmp_path / "ledger.csv")
    out = run(cost_group, ["estimate", str(ledger), "--target", "generated"])
    assert out.exit_code == 2 and "must read TYPE=COUNT" in out.output


def test_audit_command_flags_table5():
    out = run(cost_group, ["audit", str(TABLE5)])
    assert out.exit_code == 0
    flagged = [line for line in out.output.splitlines() if line.startswith("FLAG")]
    assert len(flagged) == 2
    assert "819,000 images x 2.54e-04 = 208 USD generated; x 1.20e-02 = 9,828 USD human-labelled" in out.output
