"""Overhead of the cost meter on a CPU-bound workload (target: below 1% of wall time).

    python benchmarks/bench_meter.py                 # this machine as it is (NVML if a GPU is there)
    python benchmarks/bench_meter.py --fake-gpus 8   # the sampler thread at work, 8 simulated GPUs

Method, end to end: a pure-Python workload sized to about --seconds is timed --repeats times
without the meter and with it, alternating which goes first, after one warm-up of each; medians
and minima are compared. On a shared machine run-to-run noise can exceed 1%, so the meter's cost
is also measured directly and the verdict rests on that:
- enter/exit: median time of 200 empty `with Meter(...)` blocks, as a share of the workload;
- sampler: CPU time the process spends while a metered block only sleeps (the sampler thread
  is all that runs), as a share of the wall time. Under the GIL each sampler CPU-second can
  delay the metered work by at most that much, so the sum of the two bounds the overhead.
Prints one line per figure and, with --json, writes them as one JSON row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cost.gpu  # noqa: E402
from cost.meter import Meter, visible_vcpus  # noqa: E402


def workload(n: int) -> int:
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def calibrate(seconds: float) -> int:
    n = 100_000
    while True:
        t0 = time.perf_counter()
        workload(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * seconds / elapsed))
        n *= 4


def fake_nvml(gpus: int) -> types.ModuleType:
    """A pynvml stand-in with `gpus` idle devices: measures the sampler's Python-side cost only."""
    mod = types.ModuleType("pynvml")
    reading = types.SimpleNamespace(gpu=50, used=1 << 30)
    mod.nvmlInit = lambda: None
    mod.nvmlDeviceGetCount = lambda: gpus
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: "Simulated A100 80GB"
    mod.nvmlDeviceGetUtilizationRates = lambda h: reading
    mod.nvmlDeviceGetMemoryInfo = lambda h: reading
    mod.nvmlDeviceGetPowerUsage = lambda h: 250_000
    mod.nvmlDeviceGetTotalEnergyConsumption = lambda h: int(time.monotonic() * 250_000)
    return mod


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(n: int, metered: bool, interval: float) -> float:
    t0 = time.perf_counter()
    if metered:
        with Meter("bench", gpu_sample_interval_s=interval) as m:
            workload(n)
            m.add_items(1)
    else:
        workload(n)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="workload length per repeat")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--interval", type=float, default=0.5, help="GPU sample interval (s)")
    parser.add_argument("--fake-gpus", type=int, default=0, help="simulate this many GPUs through a fake NVML")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 when the overhead is 1%% or more")
    args = parser.parse_args()

    if args.fake_gpus:
        sys.modules["pynvml"] = fake_nvml(args.fake_gpus)
        cost.gpu._nvml_cache.clear()
    gpus = [name for _, name, _ in cost.gpu.list_gpus()]

    n = calibrate(args.seconds)
    timed(n, False, args.interval)
    timed(n, True, args.interval)
    bare, metered = [], []
    for i in range(args.repeats):
        order = (False, True) if i % 2 == 0 else (True, False)
        for flag in order:
            (metered if flag else bare).append(timed(n, flag, args.interval))
    bare_s, metered_s = statistics.median(bare), statistics.median(metered)

    empty = []
    for _ in range(200):
        t0 = time.perf_counter()
        with Meter("empty", gpu_sample_interval_s=args.interval):
            pass
        empty.append(time.perf_counter() - t0)
    enter_exit_s = statistics.median(empty)

    idle_s = max(2.0, 4 * args.interval)
    cpu0 = time.process_time()
    with Meter("idle", gpu_sample_interval_s=args.interval):
        time.sleep(idle_s)
    sampler_share = (time.process_time() - cpu0) / idle_s

    row = {
        "machine": f"{platform.node()} | {cpu_model()} | {visible_vcpus()} vCPUs of {os.cpu_count()} | "
                   f"Python {platform.python_version()} | {platform.platform()}",
        "gpus": gpus if not args.fake_gpus else f"{args.fake_gpus} simulated",
        "gpu_sample_interval_s": args.interval,
        "repeats": args.repeats,
        "workload_s_median_bare": bare_s,
        "workload_s_median_metered": metered_s,
        "ratio_metered_over_bare": metered_s / bare_s,
        "overhead_pct_from_medians": 100 * (metered_s / bare_s - 1),
        "overhead_pct_from_minima": 100 * (min(metered) / min(bare) - 1),
        "spread_pct_bare": 100 * (max(bare) - min(bare)) / bare_s,
        "meter_enter_exit_s": enter_exit_s,
        "overhead_pct_enter_exit": 100 * enter_exit_s / bare_s,
        "sampler_cpu_pct_of_wall": 100 * sampler_share,
        "overhead_pct_bound": 100 * (enter_exit_s / bare_s + sampler_share),
    }
    for key, value in row.items():
        print(f"{key:28s} {value:.6g}" if isinstance(value, float) else f"{key:28s} {value}")
    below = row["overhead_pct_bound"] < 1.0
    print(f"{'verdict':28s} overhead bound {row['overhead_pct_bound']:.3f}%: {'below' if below else 'NOT below'} "
          f"1% of wall time (end-to-end medians differ by {row['overhead_pct_from_medians']:.2f}% "
          f"with a run-to-run spread of {row['spread_pct_bare']:.1f}%)")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    if args.check and not below:
        sys.exit(1)


if __name__ == "__main__":
    main()
