"""Which SKU prices a run: GPU family matching, CPU scaling to the cores used, overrides, errors."""

import os
import sys

import pytest

import cost.gpu
from cost.errors import CostError
from cost.hardware import choose_sku, detect_hardware, gpu_family
from cost.prices import load_snapshot


@pytest.fixture
def paper():
    return load_snapshot("paper-2023")


@pytest.mark.parametrize("name, family", [
    ("NVIDIA A100 80GB PCIe", "A100"), ("NVIDIA A100-SXM4-40GB", "A100"), ("NVIDIA A10", "A10"),
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 NVL", "H100"), ("NVIDIA H200", "H200"),
    ("NVIDIA GH200 480GB", "GH200"), ("Tesla T4", "T4"), ("Tesla V100-SXM2-16GB", "V100"),
    ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("Quadro RTX 8000", None), (None, None),
])
def test_gpu_family(name, family):
    assert gpu_family(name) == family


def test_one_a100_is_the_whole_nc24ads_instance(paper):
    price = choose_sku({"gpu_model": "NVIDIA A100 80GB PCIe", "gpu_count": 1, "vcpus": 24}, paper)
    assert price.sku == "Standard_NC24ads_A100_v4"
    assert price.usd_per_hour == 1.47 and price.scale == 1.0
    assert price.basis == "NC24ads A100 v4 spot 1.47 USD/h, whole instance (1x A100 80GB)"
    assert (price.snapshot, price.snapshot_date, price.pricing) == ("paper-2023", "2023-07-25", "spot")


def test_two_a100s_are_priced_per_gpu(paper):
    price = choose_sku({"gpu_model": "NVIDIA A100 80GB PCIe", "gpu_count": 2, "vcpus": 48}, paper)
    assert price.usd_per_hour == pytest.approx(2.94)
    assert price.basis == "NC24ads A100 v4 spot 1.47 USD/h x 2/1 GPUs used (A100 80GB)"


def test_cpu_only_run_is_scaled_to_the_cores_used(paper):
    price = choose_sku({"gpu_model": None, "gpu_count": 0, "vcpus": 2}, paper)
    assert price.sku == "Standard_E32ads_v5"
    assert price.usd_per_hour == pytest.approx(0.21 * 2 / 32)
    assert price.basis == "E32ads v5 spot 0.21 USD/h x 2/32 vCPUs used"


def test_unknown_gpu_is_an_error_not_a_zero(paper):
    with pytest.raises(CostError, match="unknown GPU 'Quadro RTX 8000'.*override SKU"):
        choose_sku({"gpu_model": "Quadro RTX 8000", "gpu_count": 1, "vcpus": 8}, paper)


def test_gpu_the_snapshot_does_not_price_is_an_error(paper):
    with pytest.raises(CostError, match="prices no H100 GPU instance"):
        choose_sku({"gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 1, "vcpus": 16}, paper)


def test_override_prices_an_unknown_gpu(paper):
    price = choose_sku({"gpu_model": "Quadro RTX 8000", "gpu_count": 1, "vcpus": 8}, paper,
                       override="NC24ads A100 v4")
    assert price.usd_per_hour == 1.47
    assert price.basis.startswith("override: NC24ads A100 v4 spot 1.47 USD/h")


def test_override_cpu_sku_on_a_cpu_run_is_still_scaled(paper):
    price = choose_sku({"gpu_model": None, "gpu_count": 0, "vcpus": 4}, paper, override="standard_e32ads_v5")
    assert price.usd_per_hour == pytest.approx(0.21 * 4 / 32)


def test_override_missing_from_snapshot(paper):
    with pytest.raises(CostError, match="override SKU 'ND96asr v4' has no spot price"):
        choose_sku({"gpu_count": 0, "vcpus": 2}, paper, override="ND96asr v4")


def test_pricing_missing_from_snapshot(paper):
    with pytest.raises(CostError, match="no 'on-demand' prices"):
        choose_sku({"gpu_count": 0, "vcpus": 2}, paper, pricing="on-demand")


def test_mixed_gpu_models_need_an_override(paper):
    hw = {"gpu_model": "NVIDIA A100 80GB PCIe", "gpu_count": 2, "vcpus": 48,
          "gpu_names": ["NVIDIA A100 80GB PCIe", "Tesla T4"]}
    with pytest.raises(CostError, match="mixed GPU models"):
        choose_sku(hw, paper)


def test_detect_hardware_without_nvml(monkeypatch):
    monkeypatch.setattr(cost.gpu, "_nvml_cache", {})
    monkeypatch.setitem(sys.modules, "pynvml", None)
    hw = detect_hardware()
    assert hw == {"gpu_model": None, "gpu_count": 0, "gpu_names": [], "vcpus": len(os.sched_getaffinity(0))}
