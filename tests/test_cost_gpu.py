"""The NVML sampler: hand-worked utilisation and energy math, and a fake NVML with two GPUs."""

import sys
import time
import types

import pytest

import cost.gpu
from cost.gpu import MIB, Sample, summarise_samples
from cost.meter import Meter, Reading


class NVMLError(Exception):
    pass


class FakeNVML(types.ModuleType):
    """pynvml's calls used by cost.gpu, for GPUs described as dicts; records every energy read."""

    def __init__(self, gpus, *, init_fails=False):
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_fails = init_fails
        self.energy_reads = {i: [] for i in range(len(gpus))}
        self.mem_reads = {i: 0 for i in range(len(gpus))}
        self.NVMLError = NVMLError

    def nvmlInit(self):
        if self.init_fails:
            raise NVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return self.gpus[handle]["name"]

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-0000000{handle}-aaaa-bbbb-cccc-dddddddddddd"

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=self.gpus[handle]["util"], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle):
        self.mem_reads[handle] += 1
        used = self.gpus[handle]["mem_bytes"][min(self.mem_reads[handle], 2) - 1]
        return types.SimpleNamespace(used=used, total=80 * 1024 * MIB, free=0)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.gpus[handle]["power_mw"]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        step = self.gpus[handle]["energy_step_mj"]
        if step is None:
            raise NVMLError("Not Supported")
        reads = self.energy_reads[handle]
        reads.append(5_000_000_000 + step * len(reads))
        return reads[-1]


TWO_GPUS = [
    {"name": "NVIDIA A100 80GB PCIe", "util": 50, "mem_bytes": (10 * 1024 * MIB, 20 * 1024 * MIB),
     "power_mw": 250_000, "energy_step_mj": 40_000},
    {"name": b"NVIDIA A100 80GB PCIe", "util": 100, "mem_bytes": (1024 * MIB, 1024 * MIB),
     "power_mw": 300_000, "energy_step_mj": None},
]


@pytest.fixture
def fake_nvml(monkeypatch):
    def install(gpus=TWO_GPUS, **kwargs):
        fake = FakeNVML(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        monkeypatch.setattr(cost.gpu, "_nvml_cache", {})
        return fake

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return install


def test_summary_by_hand():
    # util of the first sample describes time before the span and is ignored (sample and hold)
    samples = [Sample(0.0, 90, 1 * MIB, 999_000), Sample(0.5, 40, 3 * MIB, 100_000),
               Sample(1.0, 100, 2 * MIB, 300_000), Sample(2.0, 0, 2 * MIB, 50_000)]
    # gpu_s = 0.4*0.5 + 1.0*0.5 + 0*1.0 = 0.7; util_mean = 0.7/2 = 35 %
    # power integral = 100*0.5 + 300*0.5 + 50*1 = 250 J over 2 s = 125 W
    s = summarise_samples(samples, 1_000_000, 1_260_000)
    assert s["gpu_s"] == pytest.approx(0.7)
    assert s["util_mean"] == pytest.approx(35.0)
    assert s["power_mean_w"] == pytest.approx(125.0)
    assert s["mem_peak_mb"] == pytest.approx(3.0)
    assert s["energy_j"] == pytest.approx(260.0)
    assert s["energy_source"] == "counter"
    fallback = summarise_samples(samples, None, None)
    assert fallback["energy_j"] == pytest.approx(250.0)
    assert fallback["energy_source"] == "power_integral"


def test_summary_skips_unsupported_metrics():
    samples = [Sample(0.0, None, None, None), Sample(1.0, None, None, None)]
    s = summarise_samples(samples, None, None)
    assert s["gpu_s"] == 0.0
    assert s["util_mean"] is None and s["energy_j"] is None and s["mem_peak_mb"] is None


def test_sampler_with_two_fake_gpus(fake_nvml):
    fake = fake_nvml()
    with Meter("generate", gpu_sample_interval_s=0.02) as m:
        time.sleep(0.2)
        m.add_items(3)
    r = m.reading
    assert [g["index"] for g in r.gpus] == [0, 1]
    assert [g["name"] for g in r.gpus] == ["NVIDIA A100 80GB PCIe"] * 2
    g0, g1 = r.gpus
    assert g0["samples"] >= 4
    # constant utilisation: the time-weighted mean is exact, and busy time is util x span
    assert g0["util_mean"] == pytest.approx(50.0)
    assert g1["util_mean"] == pytest.approx(100.0)
    assert g1["gpu_s"] == pytest.approx(r.wall_s, abs=0.05)
    assert g0["gpu_s"] == pytest.approx(0.5 * g1["gpu_s"], rel=0.02)
    # energy: the counter delta between the first and the last read
    reads = fake.energy_reads[0]
    assert len(reads) == 2
    assert g0["energy_j"] == pytest.approx((reads[-1] - reads[0]) / 1000) == pytest.approx(40.0)
    assert g0["energy_source"] == "counter"
    # no counter on GPU 1: the power integral, 300 W over the sampled span
    assert g1["energy_source"] == "power_integral"
    assert g1["energy_j"] == pytest.approx(300.0 * g1["gpu_s"], rel=0.01)
    assert g0["power_mean_w"] == pytest.approx(250.0)
    assert g0["mem_peak_mb"] == pytest.approx(20 * 1024)
    assert r.gpu_s == pytest.approx(g0["gpu_s"] + g1["gpu_s"])
    assert r.gpu_energy_j == pytest.approx(g0["energy_j"] + g1["energy_j"])
    assert r.gpu_util_mean == pytest.approx(75.0)
    assert Reading.from_dict(r.to_dict()) == r


def test_cuda_visible_devices_selects_gpus(fake_nvml, monkeypatch):
    fake_nvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with Meter("x", gpu_sample_interval_s=0.05) as m:
        pass
    assert [g["index"] for g in m.reading.gpus] == [1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-00000000")
    with Meter("x", gpu_sample_interval_s=0.05) as m:
        pass
    assert [g["index"] for g in m.reading.gpus] == [0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with Meter("x", gpu_sample_interval_s=0.05) as m:
        pass
    assert m.reading.gpus == []


def test_explicit_gpu_indices(fake_nvml):
    fake_nvml()
    with Meter("x", gpu_sample_interval_s=0.05, gpu_indices=[1]) as m:
        pass
    assert [g["index"] for g in m.reading.gpus] == [1]


def test_nvml_init_failure_is_silent(fake_nvml, recwarn, capfd):
    fake_nvml(init_fails=True)
    with Meter("x") as m:
        pass
    assert m.reading.gpus == []
    assert len(recwarn) == 0
    assert capfd.readouterr().err == ""


def test_sampler_thread_stops(fake_nvml):
    import threading

    fake_nvml()
    with Meter("x", gpu_sample_interval_s=0.01):
        assert any(t.name == "cost-gpu-sampler" for t in threading.enumerate())
    assert not any(t.name == "cost-gpu-sampler" for t in threading.enumerate())
