"""USD per image, checked against hand-worked numbers."""

import pytest

from cost.errors import CostError
from cost.ledger import (LedgerRow, apportion_items, bill_by_data_type, cost_table, delivered_items, estimate,
                         price_reading, read_ledger, usd_per_image_by_data_type, write_ledger)
from cost.meter import Reading
from cost.prices import load_snapshot

A100 = {"index": 0, "name": "NVIDIA A100 80GB PCIe", "gpu_s": 500.0, "util_mean": 80.4, "mem_peak_mb": 9000.0,
        "energy_j": 150000.0, "energy_source": "counter", "power_mean_w": 241.2, "samples": 1244}


def reading(stage, wall_s, items, *, vcpus=2, gpus=()):
    gpus = [dict(g) for g in gpus]
    return Reading(stage=stage, started_at="2025-01-15T10:00:00.000+00:00", wall_s=wall_s, cpu_s=wall_s * 0.9,
                   vcpus=vcpus, cpu_utilisation=0.45, peak_rss_mb=500.0, items=items, hostname="box",
                   gpus=gpus, gpu_s=sum(g["gpu_s"] for g in gpus),
                   gpu_energy_j=sum(g["energy_j"] for g in gpus) if gpus else None)


@pytest.fixture
def paper():
    return load_snapshot("paper-2023")


def test_paper_generation_price_by_hand(paper):
    # 1.47 USD/h x 0.622 s per image: 1.47 x 0.622 / 3600 = 0.91434 / 3600 = 2.5398e-4 USD per image
    row = price_reading(reading("generate", 622.0, 1000, vcpus=24, gpus=[A100]), paper)
    assert row.usd_per_image == pytest.approx(2.5398e-4, rel=1e-4)
    assert f"{row.usd_per_image:.3g}" == "0.000254"
    assert row.billed_hours == pytest.approx(622 / 3600)
    assert (row.sku, row.usd_per_hour, row.data_type) == ("Standard_NC24ads_A100_v4", 1.47, "generated")
    # billed on wall clock; GPU-seconds, energy and utilisation are carried beside it
    assert (row.gpu_s, row.gpu_energy_j, row.gpu_util_mean) == (500.0, 150000.0, 80.4)
    assert (row.snapshot, row.snapshot_date, row.region) == ("paper-2023", "2023-07-25", "unspecified")


def test_cpu_stage_scaled_to_cores_by_hand(paper):
    # 0.21 USD/h x 2/32 vCPUs x 1 h / 100 images = 0.013125 / 100 = 1.3125e-4 USD per image
    row = price_reading(reading("retrieve", 3600.0, 100, vcpus=2), paper)
    assert row.billed_hours == 1.0
    assert row.usd_per_hour == pytest.approx(0.013125)
    assert row.usd_total == pytest.approx(0.013125)
    assert row.usd_per_image == pytest.approx(0.21 * 2 / 32 / 100)
    assert row.usd_per_hour_basis == "E32ads v5 spot 0.21 USD/h x 2/32 vCPUs used"
    assert row.data_type == "retrieved"


def test_no_items_means_no_per_image_price(paper):
    row = price_reading(reading("embed", 10.0, 0), paper)
    assert row.usd_per_image is None and row.data_type is None
    assert price_reading(reading("embed", 10.0, 0), paper, data_type="generated").data_type == "generated"


def row(stage, data_type, usd_total, items, wall_s=100.0):
    return LedgerRow(stage=stage, data_type=data_type, items=items, wall_s=wall_s, cpu_s=wall_s, gpu_s=0.0,
                     gpu_energy_j=None, gpu_util_mean=None, vcpus=2, gpu_count=0, gpu_model=None,
                     billed_hours=wall_s / 3600, sku="Standard_E32ads_v5", provider="Azure", pricing="spot",
                     region="unspecified", usd_per_hour=usd_total * 3600 / wall_s,
                     usd_per_hour_basis="E32ads v5 spot 0.21 USD/h x 2/32 vCPUs used", usd_total=usd_total,
                     usd_per_image=usd_total / items if items else None, snapshot="paper-2023",
                     snapshot_date="2023-07-25")


LEDGER = [
    row("generate", "generated", 1.00, 100),
    row("invert", "generated", 0.50, 10),     # textual inversion: 10 tokens learned, amortised
    row("filter", "generated", 0.10, 100),    # filtering: amortised over the generated images
    row("retrieve", "retrieved", 0.02, 200),
    row("index", "retrieved", 0.18, 1),       # index build, amortised
    row("embed", None, 5.00, 300),            # evaluation, not acquisition
]


def test_usd_per_image_by_data_type_by_hand():
    by_type = usd_per_image_by_data_type(LEDGER, human_usd_per_image=0.012)
    # generated: (1.00 + 0.50 + 0.10) / 100 = 0.016; retrieved: (0.02 + 0.18) / 200 = 0.001
    assert by_type == pytest.approx({"generated": 0.016, "retrieved": 0.001, "original": 0.012})


def test_amortisation_is_an_explicit_argument():
    # counting nothing as amortised: every row's items are images of its type
    by_type = usd_per_image_by_data_type(LEDGER, human_usd_per_image=0.012, amortise=())
    assert by_type["generated"] == pytest.approx(1.60 / 210)
    bill = bill_by_data_type(LEDGER)
    assert bill["generated"]["usd_amortised"] == pytest.approx(0.60)
    assert bill["generated"]["stages"] == ["generate", "invert", "filter"]
    assert "original" not in bill


def test_original_is_the_human_reference_not_the_compute_of_preparing_it():
    rows = LEDGER + [row("prepare", "original", 0.30, 50)]
    bill = bill_by_data_type(rows, human_usd_per_image=0.012)
    assert bill["original"]["usd_per_image"] == 0.012
    assert bill["original"]["compute_usd_total"] == pytest.approx(0.30)
    assert bill_by_data_type(rows)["original"]["usd_per_image"] is None


def test_estimate_to_a_target_by_hand():
    est = estimate(LEDGER, {"generated": 819_000, "original": 819_000, "retrieved": 1000},
                   human_usd_per_image=0.012)
    assert est["generated"]["usd_total"] == pytest.approx(0.016 * 819_000)  # 13,104 USD
    assert est["original"]["usd_total"] == pytest.approx(9828.0)
    assert est["retrieved"]["usd_total"] == pytest.approx(1.0)
    assert est["original"]["basis"] == "human-labelling reference"
    with pytest.raises(CostError, match="no measured USD per image for data type 'original'"):
        estimate(LEDGER, {"original": 10})
    with pytest.raises(CostError, match="must be a whole number"):
        estimate(LEDGER, {"generated": -5})


def test_cost_table_hours_per_1k_by_hand(paper):
    rows = [price_reading(reading("generate", 622.0, 1000, vcpus=24, gpus=[A100]), paper)]
    table = cost_table(rows, human_usd_per_image=0.012)
    gen = table[0]
    assert gen["hours_per_1k_images"] == pytest.approx(622 / 3600)  # 0.1728 h per 1K images
    assert gen["usd_per_hour"] == pytest.approx(1.47)
    assert gen["instance_type"] == "Azure NC24ads A100 v4 (spot)"
    assert table[1]["data_type"] == "original" and table[1]["usd_per_image"] == 0.012


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_ledger_file_round_trip(tmp_path, suffix):
    path = write_ledger(LEDGER, tmp_path / f"ledger{suffix}")
    assert read_ledger(path) == LEDGER


def test_ledger_file_errors(tmp_path):
    with pytest.raises(CostError, match="must end in"):
        write_ledger(LEDGER, tmp_path / "ledger.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"stage": "generate"}\n')
    with pytest.raises(CostError, match="ledger row lacks 'data_type'"):
        read_ledger(bad)
    with pytest.raises(CostError, match="cannot be read"):
        read_ledger(tmp_path / "none.jsonl")


def test_delivered_items_charge_discarded_candidates_to_the_kept_by_hand():
    # 30 candidates planned (CF oversample 0.5 on 20), 20 kept: a run that made all 30 delivers 20;
    # a resumed run that made the last 12 delivers 12 x 20 / 30 = 8; nothing discarded: made.
    assert delivered_items(30, 20, 30) == 20
    assert delivered_items(12, 20, 30) == 8
    assert delivered_items(16, 16, 16) == 16 and delivered_items(0, 20, 30) == 0
    with pytest.raises(CostError, match="kept <= candidates"):
        delivered_items(3, 5, 4)


def test_apportion_items_over_workers_by_hand():
    # 20 kept of 30 made by workers that made 10, 11 and 9: shares 6.67, 7.33, 6.0 -> 7, 7, 6
    readings = [{"worker": "a", "items": 10}, {"worker": "b", "items": 11}, {"worker": "c", "items": 9}]
    assert [r["items"] for r in apportion_items(readings, 20)] == [7, 7, 6]
    assert [r["worker"] for r in apportion_items(readings, 20)] == ["a", "b", "c"]
    assert apportion_items([], 5) == []
