"""Cost instrumentation: meter stage runs, price them from dated snapshots, report USD per image.

Importable without genbench. Modules: `meter` (wall, CPU, GPU time and energy of a block of
work), `gpu` (the NVML sampler), `prices` (dated price snapshots), `azure` (refreshing a snapshot
from the Azure Retail Prices API), `hardware` (which SKU prices a run), `ledger` (readings to
USD), `audit` (the paper's cost tables recomputed), `cli` (click commands).
"""

from cost.errors import CostError, StaleSnapshotWarning

__all__ = ["CostError", "StaleSnapshotWarning"]
