"""Readings of distributed workers: each worker meters the blocks it runs (loading its model, each
shard), and the blocks of one worker are combined into one reading for the cost ledger.

A worker is one GPU (or one group of `cpu_threads` CPUs) on one node, and runs one block at a
time, so its blocks add up: wall, CPU and GPU seconds, items and energy are sums; peak memory is
the maximum; vcpus is what the worker was given; a GPU's util_mean is recomputed as
100 x gpu_s / wall_s and its power_mean_w as energy_j / wall_s. Rows per worker price the way a
node is billed: a 1-GPU worker is priced as 1/N of an N-GPU instance. The node's cost is the sum
of its workers' rows (`hostname`). Blocks lost with a worker that died are not counted.
"""

from __future__ import annotations

from typing import Any, Callable


def metered(meter: Callable[[str], Any] | None, stage: str, work: Callable[[], tuple[Any, int]],
            worker: str, vcpus: int | None = None) -> tuple[Any, dict | None]:
    """Run `work() -> (result, items)` inside `meter(stage)`; return (result, reading dict or None),
    the reading labelled with `worker` and, when given, the `vcpus` the worker was allotted."""
    if meter is None:
        return work()[0], None
    with meter(stage) as m:
        result, items = work()
        m.add_items(items)
    reading = {**m.reading.to_dict(), "worker": worker}
    if vcpus is not None:
        reading["vcpus"] = vcpus
        reading["cpu_utilisation"] = reading["cpu_s"] / (reading["wall_s"] * vcpus) if reading["wall_s"] > 0 else 0.0
    return result, reading


def _sum(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _combine_gpus(blocks: list[dict], wall_s: float) -> list[dict]:
    by_index: dict[Any, list[dict]] = {}
    for block in blocks:
        for gpu in block.get("gpus") or []:
            by_index.setdefault(gpu.get("index"), []).append(gpu)
    out = []
    for index, gpus in sorted(by_index.items(), key=lambda kv: str(kv[0])):
        gpu_s = sum(g.get("gpu_s") or 0.0 for g in gpus)
        energy = _sum([g.get("energy_j") for g in gpus])
        mems = [g["mem_peak_mb"] for g in gpus if g.get("mem_peak_mb") is not None]
        out.append({
            "index": index,
            "name": gpus[0].get("name"),
            "gpu_s": gpu_s,
            "util_mean": 100.0 * gpu_s / wall_s if wall_s > 0 else None,
            "mem_peak_mb": max(mems) if mems else None,
            "energy_j": energy,
            "energy_source": gpus[0].get("energy_source"),
            "power_mean_w": energy / wall_s if energy is not None and wall_s > 0 else None,
            "samples": sum(g.get("samples") or 0 for g in gpus),
        })
    return out


def combine_readings(blocks: list[dict]) -> dict:
    """One reading (a cost.meter.Reading dict plus 'worker') for the blocks of one worker."""
    if not blocks:
        raise ValueError("combine_readings needs at least one reading")
    first = min(blocks, key=lambda b: b["started_at"])
    wall = sum(b["wall_s"] for b in blocks)
    cpu = sum(b["cpu_s"] for b in blocks)
    cores = max(b["vcpus"] for b in blocks)
    gpus = _combine_gpus(blocks, wall)
    return {
        "stage": first["stage"],
        "started_at": first["started_at"],
        "wall_s": wall,
        "cpu_s": cpu,
        "vcpus": cores,
        "cpu_utilisation": cpu / (wall * cores) if wall > 0 and cores else 0.0,
        "peak_rss_mb": max(b["peak_rss_mb"] for b in blocks),
        "items": sum(b["items"] for b in blocks),
        "hostname": first["hostname"],
        "gpus": gpus,
        "gpu_s": sum(g["gpu_s"] for g in gpus),
        "gpu_energy_j": _sum([g["energy_j"] for g in gpus]),
        "worker": first.get("worker", first["hostname"]),
    }


def readings_by_worker(blocks: list[dict]) -> list[dict]:
    """Combine the blocks of each worker (key 'worker'); one reading per worker, in worker order."""
    groups: dict[str, list[dict]] = {}
    for block in blocks:
        groups.setdefault(block["worker"], []).append(block)
    return [combine_readings(groups[w]) for w in sorted(groups)]
