"""Table 4 of the paper: the datasets (group, categories, test-set size, metric, task), the
published row beside what the kit's registry declares and what this run prepared."""

from __future__ import annotations

from genbench.datasets.base import DatasetSpec
from genbench.tables.reference import number, registry_name
from genbench.tables.render import NOT_PUBLISHED, NOT_RUN, Column, Table

METRIC_NAMES: dict[str, str] = {  # registry metric -> the paper's wording
    "accuracy": "Accuracy",
    "mean_per_class": "Mean Per Class",
    "map_11point": "11-point mAP",
    "roc_auc": "ROC AUC",
}
TASK_NAMES: dict[str, str] = {"multiclass": "Multi-Class", "multilabel": "Multi-Label"}


def _diff(kit, paper):
    return kit - paper if isinstance(kit, (int, float)) and isinstance(paper, (int, float)) else "n/a"


def _same(kit: str, paper: str | None) -> str:
    return "" if paper is None or kit == paper else "differs"


def table4(published_rows: list[dict], specs: dict[str, DatasetSpec], totals: dict, *,
           test_sizes: dict[str, int] | None = None) -> Table:
    """`specs`: registry name -> spec (the 22 datasets, plus any the run used); `totals`:
    `genbench.datasets.category_total()`; `test_sizes`: registry name -> test images this run
    prepared (prepared/meta.json `num_test`)."""
    test_sizes = test_sizes or {}
    columns = [
        Column("Group"), Column("Dataset"), Column("Kit name"),
        Column("Categories (paper)", "int"), Column("Categories (kit)", "int"), Column("Categories: kit - paper", "int"),
        Column("Test images (paper: validation size)", "int"), Column("Test images (this run)", "int"),
        Column("Test images: run - paper", "int"),
        Column("Metric (paper)"), Column("Metric (kit)"), Column("Task (paper)"), Column("Task (kit)"), Column("Check"),
    ]
    table = Table("table4", "Table 4: the GenBench datasets, published statistics beside the kit's", columns)
    listed = set()
    for row in published_rows:
        name = registry_name(row["dataset"])
        spec = specs.get(name) if name else None
        listed.add(name)
        paper_classes, paper_size = (None if v is None else int(v)
                                     for v in (number(row["num_categories"]), number(row["validation_size"])))
        kit_classes = spec.num_classes if spec else None
        kit_metric = METRIC_NAMES.get(spec.metric, spec.metric) if spec else None
        kit_task = TASK_NAMES.get(spec.task, spec.task) if spec else None
        size = test_sizes.get(name)
        checks = [c for c, bad in (("categories differ", kit_classes is not None and kit_classes != paper_classes),
                                   ("metric differs", kit_metric is not None and _same(kit_metric, row["metric"])),
                                   ("task differs", kit_task is not None and _same(kit_task, row["task_type"])))
                  if bad]
        table.add([row["group"], row["dataset"], name or "not in the registry",
                   paper_classes, kit_classes, _diff(kit_classes, paper_classes),
                   paper_size, size, _diff(size, paper_size),
                   row["metric"], kit_metric, row["task_type"], kit_task, "; ".join(checks) or "ok"])
    for name in sorted(set(specs) - listed):
        spec = specs[name]
        table.add([spec.group, NOT_PUBLISHED, name, NOT_PUBLISHED, spec.num_classes, "n/a", NOT_PUBLISHED,
                   test_sizes.get(name), "n/a",
                   NOT_PUBLISHED, METRIC_NAMES.get(spec.metric, spec.metric), NOT_PUBLISHED,
                   TASK_NAMES.get(spec.task, spec.task), "kit only"])
    column_sum = sum(number(r["num_categories"]) or 0 for r in published_rows)
    table.add(["Total", f"{totals['datasets']} datasets", "", int(column_sum), totals["total"],
               totals["total"] - int(column_sum), None, None, "n/a", "", "", "", "",
               f"paper text: {totals['paper_text_total']:,} categories; kit - text = "
               f"{totals['difference_from_paper_text']:+d}"], missing="")
    differing = ", ".join(f"{n} {d['kit']} vs {d['table4']}" for n, d in totals.get("differences", {}).items())
    table.notes += [
        f"Test images (this run): what the run prepared (prepared/meta.json, copied into metrics/<dataset>/shots.json); "
        f"datasets the run did not prepare read '{NOT_RUN}'.",
        f"Categories where the kit departs from Table 4 on purpose: {differing or 'none'} "
        "(FER-2013 has 7 expression classes; Caltech-101 counts 'background' as CLIP and VTAB do).",
        f"Table 4's category column sums to {int(column_sum):,}; the paper's text says {totals['paper_text_total']:,}; "
        f"the kit's registry holds {totals['total']:,} over its {totals['datasets']} datasets.",
    ]
    return table
