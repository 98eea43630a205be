"""He et al. (2023) Table 1: zero-shot classification with synthetic data, per dataset, the
published CLIP-RN50 and CLIP-ViT-B/16 rows (zero-shot and +SYN, their LE+CF+SCE) beside this
run's classifier tuning (the `tune` stage: zero-shot head, CE and SCE)."""

from __future__ import annotations

from genbench.tables.reference import number, registry_name
from genbench.tables.render import NOT_PUBLISHED, NOT_RUN, Column, Row, Table

PUBLISHED_BACKBONES = {"CLIP-RN50": ("clip_rn50", "clip_rn50_plus_syn"), "CLIP-ViT-B/16": ("clip_vitb16", "clip_vitb16_plus_syn")}


def he_table1(published_rows: list[dict], tuned: dict[str, dict]) -> Table:
    """`tuned` maps a registry dataset name to its metrics/<ds>/tune.json."""
    columns = [Column("Dataset"), Column("Task"), Column("Row"), Column("zero-shot", "score"), Column("CE", "score"),
               Column("SCE (published: +SYN)", "score")]
    table = Table("he2023_table1", "He et al. (2023) Table 1: zero-shot with synthetic data, CE and SCE", columns)
    seen = set()
    for row in published_rows:
        name = registry_name(row["dataset"]) if row["dataset"] != "Average" else None
        for label, (zs, syn) in PUBLISHED_BACKBONES.items():
            table.rows.append(Row([row["dataset"], row["task"], f"published {label}", number(row[zs]), None,
                                   number(row[syn])], missing=NOT_PUBLISHED))
        if row["dataset"] == "Average":
            continue
        seen.add(name)
        t = tuned.get(name) if name else None
        table.rows.append(Row([row["dataset"], row["task"], "reproduced (run's CLIP)",
                               *(t[k] if t else None for k in ("zero_shot", "ce", "sce"))]))
    for name in sorted(set(tuned) - seen):
        t = tuned[name]
        table.rows.append(Row([f"{name} (kit only)", "-", "reproduced (run's CLIP)", t["zero_shot"], t["ce"], t["sce"]]))
    table.notes += [
        "Published cells are top-1 accuracy with GLIDE images and LE+CF+SCE (He et al. print no separate CE column). "
        "Reproduced cells are the dataset's own metric from the `tune` stage (genbench/tune.py, docs/tune.md): the head "
        "initialised from the zero-shot text classifier, tuned with CE and with SCE on the run's generated images "
        f"after RF when tune.real_filter is on; '{NOT_RUN}' for datasets the run did not tune.",
    ]
    return table
