"""The Azure Retail Prices client on a recorded three-page response (fabricated in the API's
JSON shape, invented prices); the network is never used."""

import json
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from cost import azure
from cost.errors import CostError
from cost.hardware import choose_sku
from cost.prices import load_snapshot

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def recorded_pages():
    """url -> page: page 1 answers the client's first URL, later pages their NextPageLink."""
    pages = [json.loads((DATA / f"azure_retail_eastus_page{i}.json").read_text()) for i in (1, 2, 3)]
    urls = [azure.prices_url("eastus"), pages[0]["NextPageLink"], pages[1]["NextPageLink"]]
    return dict(zip(urls, pages))


class Replay:
    def __init__(self, pages):
        self.pages = pages
        self.requested = []

    def __call__(self, url):
        self.requested.append(url)
        return self.pages[url]


def test_fetch_follows_paging_and_filters_rows():
    replay = Replay(recorded_pages())
    stats = {}
    rows = azure.fetch_prices("eastus", get_json=replay, stats=stats)
    assert replay.requested == list(replay.pages)  # all three pages, in order, once each
    assert stats["pages"] == 3 and stats["items"] == 15
    assert len(rows) == 8
    assert stats["dropped_windows"] == 2
    assert stats["dropped_low_priority"] == 1
    assert stats["dropped_not_consumption"] == 2  # a reservation and a dev/test row
    assert stats["dropped_not_primary_meter_region"] == 1
    assert stats["duplicates"] == 1
    by_key = {(r["sku"], r["pricing"]): r for r in rows}
    assert {k for k in by_key if k[1] == "spot"} == {
        ("Standard_NC24ads_A100_v4", "spot"), ("Standard_E32ads_v5", "spot"),
        ("Standard_NC40ads_H100_v5", "spot"), ("Standard_D2s_v5", "spot"),
    }
    # spot and on-demand kept apart; Low Priority (also 0.7346) did not become a second spot row
    assert by_key[("Standard_NC24ads_A100_v4", "on-demand")]["usd_per_hour"] == 3.673
    assert by_key[("Standard_NC24ads_A100_v4", "spot")]["usd_per_hour"] == 0.7346
    # the Windows spot price (1.536) is gone; of two Linux listings the higher price is kept
    assert by_key[("Standard_E32ads_v5", "spot")]["usd_per_hour"] == 0.3528
    assert by_key[("Standard_E32ads_v5", "on-demand")]["usd_per_hour"] == 2.016
    assert all(r["region"] == "eastus" for r in rows)


def test_known_skus_get_vcpu_and_gpu_counts():
    rows = {(r["sku"], r["pricing"]): r for r in azure.fetch_prices("eastus", get_json=Replay(recorded_pages()))}
    a100 = rows[("Standard_NC24ads_A100_v4", "spot")]
    assert (a100["vcpus"], a100["gpus"], a100["gpu_model"]) == (24, 1, "A100 80GB")
    e32 = rows[("Standard_E32ads_v5", "spot")]
    assert (e32["vcpus"], e32["gpus"]) == (32, 0)
    hb = rows[("Standard_HB120rs_v3", "on-demand")]
    assert (hb["vcpus"], hb["gpus"], hb["gpu_model"]) == (None, None, None)


@pytest.mark.parametrize("sku, spec", [
    ("Standard_D2s_v5", (2, 0, None)),
    ("Standard_E32-16ads_v5", (16, 0, None)),
    ("Standard_E96ads_v5", (96, 0, None)),
    ("Standard_NC40ads_H100_v5", (40, 1, "H100 NVL 94GB")),
    ("Standard_NV6ads_A10_v5", (None, None, None)),
    ("Standard_HB120rs_v3", (None, None, None)),
])
def test_sku_spec(sku, spec):
    assert azure.sku_spec(sku) == spec


def test_refresh_writes_a_dated_snapshot_atomically(tmp_path):
    path = azure.refresh_snapshot("eastus", tmp_path, get_json=Replay(recorded_pages()), today=date(2025, 1, 15))
    assert path == tmp_path / "azure-eastus-2025-01-15.yaml"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    snap = load_snapshot(path)
    assert snap.name == "azure-eastus-2025-01-15" and snap.date == date(2025, 1, 15)
    assert snap.provider == "Azure" and snap.regions == ["eastus"] and len(snap.rows) == 8
    assert snap.extra["fetch_stats"]["pages"] == 3
    one_a100 = {"gpu_model": "NVIDIA A100 80GB PCIe", "gpu_count": 1, "vcpus": 24}
    price = choose_sku(one_a100, snap)
    assert (price.sku, price.usd_per_hour) == ("Standard_NC24ads_A100_v4", 0.7346)
    one_h100 = {"gpu_model": "NVIDIA H100 NVL", "gpu_count": 1, "vcpus": 40}
    assert choose_sku(one_h100, snap, pricing="on-demand").usd_per_hour == 6.98


def test_paging_that_loops_is_an_error():
    first = azure.prices_url("eastus")
    loop = {first: {"Items": [], "NextPageLink": first, "Count": 0}}
    with pytest.raises(CostError, match="paging does not end"):
        azure.fetch_prices("eastus", get_json=Replay(loop))


def test_page_without_items_is_an_error():
    with pytest.raises(CostError, match="no 'Items' list"):
        azure.fetch_prices("eastus", get_json=lambda url: {"error": "throttled"})


def test_region_without_prices_is_an_error(tmp_path):
    empty = {azure.prices_url("mars"): {"Items": [], "NextPageLink": None, "Count": 0}}
    with pytest.raises(CostError, match="no hourly Linux VM prices for region 'mars'"):
        azure.refresh_snapshot("mars", tmp_path, get_json=Replay(empty))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("region", ["East US", "", "eastus'", None])
def test_bad_region_names(region):
    with pytest.raises(CostError, match="not an Azure ARM region name"):
        azure.prices_url(region)


def test_unreachable_api_is_a_cost_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CostError, match="cannot reach the Azure Retail Prices API"):
        azure.urllib_get_json(azure.prices_url("eastus"), attempts=1)
