"""The meter on this machine: wall and CPU time (children included), items, no GPU, JSON round trip."""

import json
import os
import subprocess
import sys
import time

import pytest

import cost.gpu
from cost.errors import CostError
from cost.meter import Meter, Reading


@pytest.fixture(autouse=True)
def no_nvml(monkeypatch):
    """NVML unavailable, as on a machine without a GPU driver (whatever machine runs the tests)."""
    monkeypatch.setattr(cost.gpu, "_nvml_cache", {})
    monkeypatch.setitem(sys.modules, "pynvml", None)


def busy(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_wall_time_covers_a_sleep_and_cpu_time_does_not():
    with Meter("sleep") as m:
        time.sleep(0.25)
    assert 0.25 <= m.reading.wall_s < 1.5
    assert m.reading.cpu_s < 0.1


def test_cpu_time_grows_with_a_busy_loop():
    with Meter("busy") as m:
        busy(0.3)
    assert m.reading.cpu_s >= 0.29
    assert m.reading.wall_s >= 0.29


def test_cpu_time_includes_a_finished_child_process():
    child = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
             "print(time.process_time())")
    with Meter("child") as m:
        out = subprocess.run([sys.executable, "-c", child], check=True, capture_output=True, text=True)
    child_cpu = float(out.stdout)
    assert child_cpu >= 0.4
    assert m.reading.cpu_s >= child_cpu - 0.01


def test_derived_fields_follow_their_definitions():
    with Meter("generate") as m:
        busy(0.05)
        m.add_items(7)
        m.add_items(3)
    r = m.reading
    assert r.items == 10
    assert r.stage == "generate"
    assert r.vcpus == len(os.sched_getaffinity(0))
    assert r.cpu_utilisation == pytest.approx(r.cpu_s / (r.wall_s * r.vcpus))
    assert r.peak_rss_mb > 1
    assert r.started_at.endswith("+00:00")


def test_no_gpu_means_empty_gpu_figures_and_no_warning(recwarn, capfd):
    with Meter("generate") as m:
        pass
    assert m.reading.gpus == []
    assert m.reading.gpu_s == 0.0
    assert m.reading.gpu_energy_j is None
    assert m.reading.gpu_util_mean is None
    assert len(recwarn) == 0
    assert capfd.readouterr().err == ""


def test_reading_round_trips_through_json():
    with Meter("embed") as m:
        m.add_items(4)
    again = Reading.from_dict(json.loads(json.dumps(m.reading.to_dict())))
    assert again == m.reading


def test_reading_from_dict_names_a_missing_field():
    with Meter("x") as m:
        pass
    broken = m.reading.to_dict()
    del broken["wall_s"]
    with pytest.raises(CostError, match="wall_s"):
        Reading.from_dict(broken)


def test_reading_exists_when_the_block_raises():
    m = Meter("fails")
    with pytest.raises(RuntimeError):
        with m:
            m.add_items(2)
            raise RuntimeError("boom")
    assert m.reading.items == 2


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_add_items_rejects_bad_counts(bad):
    with Meter("x") as m:
        with pytest.raises(CostError, match="add_items"):
            m.add_items(bad)


def test_bad_arguments_are_cost_errors():
    with pytest.raises(CostError, match="gpu_sample_interval_s"):
        Meter("x", gpu_sample_interval_s=0)
    with pytest.raises(CostError, match="stage"):
        Meter("")
