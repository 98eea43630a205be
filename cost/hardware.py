"""Which priced instance stands for the hardware a run used.

Rules of `choose_sku` (each chosen price carries a `basis` sentence that states the rule used):
- an override SKU names the row to use; it is still scaled as below;
- a GPU run is priced with a snapshot row holding the same GPU family (A100, H100, ...), the row
  with as many GPUs as the run first, else the smallest such row scaled by GPUs used / GPUs of the
  row; a GPU the table below does not know, or that the snapshot does not price, is a CostError
  (never a silent zero) unless an override SKU is given;
- a CPU-only run is priced with the CPU reference instance (Standard_E32ads_v5, the paper's, or the
  snapshot's only CPU row) scaled to the cores used: vCPUs used / vCPUs of the instance.
Everything on a GPU machine is billed as the GPU instance: it is rented by the hour whether or
not a stage uses the GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cost.errors import CostError
from cost.prices import NamedSku, PriceRow, Snapshot, normalise_sku

CPU_REFERENCE_SKU = "Standard_E32ads_v5"

# GPU family tokens, matched as whole tokens in upper-cased NVML or catalog names (A100 is not A10).
GPU_FAMILIES = ("GH200", "H200", "H100", "A100", "A10G", "A10", "L40S", "L40", "L4",
                "V100", "T4", "P100", "P40", "K80", "M60", "MI300X", "MI250X")
_FAMILY_RE = re.compile(r"(?<![A-Z0-9])(" + "|".join(GPU_FAMILIES) + r")(?![A-Z0-9])")


def gpu_family(name: str | None) -> str | None:
    """'NVIDIA A100 80GB PCIe' -> 'A100'; None when no known family token is in the name."""
    if not name:
        return None
    match = _FAMILY_RE.search(name.upper())
    return match.group(1) if match else None


def _memory_gb(name: str | None) -> int | None:
    match = re.search(r"(\d+)\s*GB", (name or "").upper())
    return int(match.group(1)) if match else None


def detect_hardware() -> dict:
    """gpu_model (NVML name of the first GPU, or None), gpu_count, gpu_names and vcpus of this machine."""
    from cost.gpu import list_gpus
    from cost.meter import visible_vcpus

    names = [name for _, name, _ in list_gpus()]
    return {"gpu_model": names[0] if names else None, "gpu_count": len(names),
            "gpu_names": names, "vcpus": visible_vcpus()}


def hardware_of_reading(reading) -> dict:
    """The hardware dict of a `cost.meter.Reading` (what the metered block ran on)."""
    names = [g["name"] for g in reading.gpus]
    return {"gpu_model": names[0] if names else None, "gpu_count": len(names),
            "gpu_names": names, "vcpus": reading.vcpus}


@dataclass(frozen=True)
class SkuPrice(NamedSku):
    """The hourly price a run is billed at, and the sentence that says how it was reached."""

    sku: str
    provider: str
    region: str
    pricing: str
    sku_usd_per_hour: float
    scale: float
    usd_per_hour: float
    basis: str
    snapshot: str
    snapshot_date: str
    vcpus: int | None
    gpus: int | None
    gpu_model: str | None


def _price(row: PriceRow, snapshot: Snapshot, scale: float, basis: str) -> SkuPrice:
    return SkuPrice(sku=row.sku, provider=snapshot.provider, region=row.region, pricing=row.pricing,
                    sku_usd_per_hour=row.usd_per_hour, scale=scale, usd_per_hour=row.usd_per_hour * scale,
                    basis=basis, snapshot=snapshot.name, snapshot_date=snapshot.date.isoformat(),
                    vcpus=row.vcpus, gpus=row.gpus, gpu_model=row.gpu_model)


def _head(row: PriceRow) -> str:
    return f"{row.name} {row.pricing} {row.usd_per_hour:g} USD/h"


def _scaled(row: PriceRow, snapshot: Snapshot, hardware: dict, prefix: str = "") -> SkuPrice:
    gpu_count, vcpus = hardware.get("gpu_count") or 0, hardware.get("vcpus")
    if gpu_count and row.gpus:
        model = row.gpu_model or "GPU"
        if gpu_count == row.gpus:
            return _price(row, snapshot, 1.0,
                          f"{prefix}{_head(row)}, whole instance ({row.gpus}x {model})")
        return _price(row, snapshot, gpu_count / row.gpus,
                      f"{prefix}{_head(row)} x {gpu_count}/{row.gpus} GPUs used ({model})")
    if not gpu_count and not row.gpus and row.vcpus and vcpus:
        return _price(row, snapshot, vcpus / row.vcpus,
                      f"{prefix}{_head(row)} x {vcpus}/{row.vcpus} vCPUs used")
    return _price(row, snapshot, 1.0, f"{prefix}{_head(row)}, whole instance")


def _rows(snapshot: Snapshot, pricing: str) -> list[PriceRow]:
    rows = [r for r in snapshot.rows if r.pricing == pricing]
    if not rows:
        have = sorted({r.pricing for r in snapshot.rows})
        raise CostError(f"price snapshot {snapshot.name!r} has no {pricing!r} prices; it has {', '.join(have)}")
    return rows


def choose_sku(hardware: dict, snapshot: Snapshot, *, override: str | None = None,
               pricing: str = "spot") -> SkuPrice:
    """The SKU and hourly price that bill a run on `hardware` (see the module docstring)."""
    rows = _rows(snapshot, pricing)
    if override:
        key = normalise_sku(override)
        matches = [r for r in rows if normalise_sku(r.sku) == key]
        if not matches:
            raise CostError(f"override SKU {override!r} has no {pricing} price in snapshot {snapshot.name!r}; "
                            f"it prices {', '.join(sorted({r.sku for r in rows})[:20])}")
        return _scaled(matches[0], snapshot, hardware, prefix="override: ")
    if hardware.get("gpu_count"):
        return _choose_gpu_row(hardware, snapshot, rows)
    return _choose_cpu_row(hardware, snapshot, rows)


def _choose_gpu_row(hardware: dict, snapshot: Snapshot, rows: list[PriceRow]) -> SkuPrice:
    names = hardware.get("gpu_names") or [hardware.get("gpu_model")]
    families = {gpu_family(n) for n in names}
    if None in families or not names:
        unknown = next((n for n in names if gpu_family(n) is None), None)
        raise CostError(f"unknown GPU {unknown!r}: no price row can stand for it; give an override SKU "
                        f"(cost.override_sku in params.yaml) naming a row of snapshot {snapshot.name!r}")
    if len(families) > 1:
        raise CostError(f"mixed GPU models {sorted(set(names))} on one machine; give an override SKU "
                        "(cost.override_sku in params.yaml) that prices this machine")
    family = families.pop()
    candidates = [r for r in rows if r.gpus and gpu_family(r.gpu_model) == family]
    if not candidates:
        priced = sorted({f"{r.sku} ({r.gpu_model})" for r in rows if r.gpus})
        raise CostError(f"price snapshot {snapshot.name!r} prices no {family} GPU instance "
                        f"(GPU rows: {', '.join(priced[:12]) or 'none'}); give an override SKU or another snapshot")
    count, memory = hardware["gpu_count"], _memory_gb(hardware.get("gpu_model"))

    def rank(r: PriceRow):
        row_memory = _memory_gb(r.gpu_model)
        memory_mismatch = memory is not None and row_memory is not None and memory != row_memory
        return (r.gpus != count, memory_mismatch, r.gpus, r.usd_per_hour, r.sku)

    return _scaled(min(candidates, key=rank), snapshot, hardware)


def _choose_cpu_row(hardware: dict, snapshot: Snapshot, rows: list[PriceRow]) -> SkuPrice:
    cpu_rows = [r for r in rows if r.gpus == 0]
    reference = [r for r in cpu_rows if normalise_sku(r.sku) == normalise_sku(CPU_REFERENCE_SKU)]
    if reference:
        return _scaled(reference[0], snapshot, hardware)
    if len(cpu_rows) == 1:
        return _scaled(cpu_rows[0], snapshot, hardware)
    raise CostError(f"price snapshot {snapshot.name!r} has no {CPU_REFERENCE_SKU} row to price a CPU-only run; "
                    "give an override SKU (cost.override_sku in params.yaml)")
