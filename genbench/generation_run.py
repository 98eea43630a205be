"""One generate run: plan it (genbench.generation_plan), make its shards with an executor
(genbench.executors), and, for a whole run, keep the CF/RF candidates that pass
(genbench.generation.select_images), write the manifest, the dropped rows and the sample grid.

Outputs in `out_dir`: shard-*.tar/.done, manifest.parquet (the images kept), dropped.parquet
(CF/RF candidates not kept, with their scores and reason; only with CF or RF) and
strategy-texts.json (LE sentences and CiP captions used; only with those strategies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from genbench import storage
from genbench.datasets.base import DatasetSpec
from genbench.executors import EXECUTORS, ExecutorOptions
from genbench.generation import select_images, select_shards
from genbench.generation_plan import GenerationPaths, plan_generation
from genbench.strategies.clip_filter import default_threshold

@dataclass
class Generated:
    """What a run made: its metrics, the images made now, the images it delivers counted as
    cost.ledger.delivered_items(made, kept, candidates) (for a shard part: the whole plan's target
    and candidates), the workers' readings, and the generator's weights hash."""

    metrics: dict
    made: int
    kept: int
    candidates: int
    weights_sha256: str
    readings: list[dict] = field(default_factory=list)


def cf_threshold(threshold: float | None, num_classes: int) -> float:
    """CF's threshold: generate.cf_threshold, or He et al.'s 1 / number of classes when it is null."""
    return threshold if threshold is not None else default_threshold(num_classes)


def write_dropped(out_dir: Path, dropped: list[dict]) -> None:
    """dropped.parquet of the candidates CF/RF did not keep; no file when there are none."""
    path = out_dir / storage.DROPPED
    if not dropped:
        path.unlink(missing_ok=True)
        return
    with storage.atomic_path(path) as tmp:
        pd.DataFrame(dropped).to_parquet(tmp, index=False)


def run_generation(p: dict, ds: DatasetSpec, where: GenerationPaths, *, executor: str = "local",
                   options: ExecutorOptions | None = None, shard: tuple[int, int] | None = None,
                   log: Callable[[str], None] = print) -> Generated:
    """Make the images the generate section `p` plans for `ds` with the executor `executor`; with
    `shard` (part, parts) only that part of the shards, else all of them, then select and write
    the manifest, dropped rows and sample grid. `log` gets one line per event."""
    plan = plan_generation(p, ds, where, executor)
    out_dir, settings = where.out_dir, plan.settings
    indices = select_shards(len(plan.shards), *shard) if shard else list(range(len(plan.shards)))
    run = EXECUTORS[executor](out_dir, plan.shards, indices, plan.worker, plan.row_extra, plan.hashes,
                              init_images=plan.init_images, options=options or ExecutorOptions())
    rows, made = run.rows, run.made
    weights = plan.generator_id["weights_sha256"]

    metrics = {"images_made": made, "images_planned": len(plan.jobs), "shards": len(plan.shards),
               "oom_retries": len(run.oom_events),
               "final_batch_size": min([settings.batch_size] + [e["retry_batch_size"] for e in run.oom_events]),
               "workers": run.workers, "shard_retries": run.failures}
    for event in run.oom_events:
        log(f"generate: out of memory at batch size {event['batch_size']} (image {event['key']}); "
            f"retried at {event['retry_batch_size']}")
    if shard:
        log(f"generate: shard part {shard[0]}/{shard[1]}: {made} images made; run without --shard to finish")
        target = p["images_per_class"] * ds.num_classes * len(plan.strategies)
        return Generated(metrics, made, target, len(plan.jobs), weights, run.readings)

    cf = plan.filtered
    threshold = cf_threshold(p["cf_threshold"], ds.num_classes)
    kept, dropped = select_images(rows, p["images_per_class"], threshold, p["cf_fill"]) if cf else (rows, [])
    storage.remove_stale(out_dir, {f"{storage.shard_name(i)}.{ext}" for i in range(len(plan.shards)) for ext in ("tar", "done")})
    write_dropped(out_dir, dropped)
    storage.write_manifest(out_dir, kept)
    metrics.update({"images_kept": len(kept), "filter_dropped": len(dropped),
                    "filter_filled": sum(r.get("filter_status") == "filled" for r in kept)})
    from genbench.figures.samples import grid_rows, sample_grid  # matplotlib only when the grid is drawn

    shown = grid_rows(storage.read_manifest(out_dir))
    sample_grid(storage.load_images(out_dir, shown), shown, ds.classnames, where.samples,
                title=f"{ds.name}, {p['model']}: {', '.join(p['strategies'])}")
    log(f"generate: {len(kept)} images ({made} made now{f', {len(dropped)} dropped by CF/RF' if cf else ''}) "
        f"in {len(plan.shards)} shards -> {out_dir}")
    return Generated(metrics, made, len(kept), len(rows), weights, run.readings)
