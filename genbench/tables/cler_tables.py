"""Tables 2 and 3 of the paper: CLER per dataset, published beside reproduced, with the difference.

Both keep the paper's layout (one row per setting, one column per dataset in the paper's order,
then the mean) and expand each published row into three: `published`, `reproduced` and
`difference` (reproduced - published). Datasets the run scored that the paper does not have
(the embedded `digits`) get columns of their own after the paper's. A mean is reproduced only
when every dataset of the paper's row was run.
"""

from __future__ import annotations

from genbench.tables.reference import dataset_columns, number
from genbench.tables.render import NOT_PUBLISHED, NOT_RUN, Column, Table

PUBLISHED, REPRODUCED, DIFFERENCE = "published", "reproduced", "difference"
NOT_COMPARABLE = "n/a"


def _difference(reproduced, published):
    if isinstance(reproduced, (int, float)) and isinstance(published, (int, float)):
        return reproduced - published
    return NOT_COMPARABLE


def _mean_if_complete(values: list) -> float | None:
    if values and all(isinstance(v, (int, float)) for v in values):
        return sum(values) / len(values)
    return None


def _triple(table: Table, labels: list, paper_cols: dict[str, str | None], extra: list[str],
            published: dict[str, float | None], reproduced: dict[str, float], published_mean: float | None,
            reproduced_label: str, mean_first: bool = False) -> None:
    """Append the published, reproduced and difference rows of one setting."""
    pub = [published.get(col) for col in paper_cols] + [None] * len(extra)
    rep = [reproduced.get(reg) if reg else None for reg in paper_cols.values()] + [reproduced.get(name) for name in extra]
    rep_mean = _mean_if_complete(rep[: len(paper_cols)])
    diff = [_difference(r, p) for r, p in zip(rep, pub)]
    diff_mean = _difference(rep_mean, published_mean)

    def cells(label, values, mean):
        return [*labels, label, mean, *values] if mean_first else [*labels, label, *values, mean]

    table.add(cells(PUBLISHED, pub, published_mean), missing=NOT_PUBLISHED)
    table.add(cells(reproduced_label, rep, rep_mean), missing=NOT_RUN)
    table.add(cells(DIFFERENCE, diff, diff_mean), signed=True)


def _extra_datasets(reproduced: dict[str, dict[str, float]], paper_cols: dict[str, str | None]) -> list[str]:
    known = {reg for reg in paper_cols.values() if reg}
    return sorted({name for by_dataset in reproduced.values() for name in by_dataset if name not in known})


def table2(published_rows: list[dict], reproduced: dict[str, dict[str, float]], *, run_model: str,
           compare_with: str, images_per_class: dict[str, int] | None = None) -> Table:
    """Table 2: CLER (%) of 20-shot generated data per dataset, model and prompt strategy.

    `reproduced` maps a prompt strategy (as the kit names it: 'ST', 'DT+NP+RD') to
    {registry dataset name: CLER}; the run's rows sit under the published model `compare_with`.
    """
    header = list(published_rows[0]) if published_rows else ["model", "strategy", "Mean"]
    paper_cols = dataset_columns(header, ("model", "strategy", "Mean"))
    extra = _extra_datasets(reproduced, paper_cols)
    columns = [Column("Model"), Column("Prompt strategy"), Column("Row")]
    columns += [Column(name, "score") for name in paper_cols] + [Column(f"{n} (kit only)", "score") for n in extra]
    columns.append(Column("Mean", "score"))
    table = Table("table2", "Table 2: CLER (%) of generated data per dataset, model and prompt strategy", columns)
    label = f"{REPRODUCED} ({run_model})"
    seen = set()
    for row in published_rows:
        model, strategy = row["model"], row["strategy"]
        ours = reproduced.get(strategy, {}) if model == compare_with else {}
        seen.update([strategy] if model == compare_with else [])
        _triple(table, [model, strategy], paper_cols, extra, {c: number(row[c]) for c in paper_cols}, ours,
                number(row.get("Mean")), label)
    for strategy in sorted(set(reproduced) - seen):
        _triple(table, [compare_with, strategy], paper_cols, extra, {}, reproduced[strategy], None, label)
    shots = sorted(set((images_per_class or {}).values()))
    table.notes += [
        f"Reproduced rows: the run's generator `{run_model}` placed under the paper's {compare_with} rows "
        f"(params report.compare_with); GLIDE rows and strategies the run did not generate read '{NOT_RUN}'.",
        "The paper scores 20 generated images per class; this run used "
        + (", ".join(f"{n}" for n in shots) if shots else "no") + " per class.",
        f"Difference = reproduced - published; '{NOT_COMPARABLE}' where either is missing. The mean is reproduced "
        "only when all 22 datasets of the paper ran.",
    ]
    if extra:
        table.notes.append(f"{', '.join(extra)}: the kit's own dataset(s), not in the paper ('{NOT_PUBLISHED}').")
    return table


TI_KEYS = ("ti_reference_data", "ti_reference_shots", "generated_shots")


def table3(published_rows: list[dict], reproduced: dict[tuple[str, str], dict[str, float]]) -> Table:
    """Table 3: CLER (%) after Textual Inversion on retrieved or original reference images.

    `reproduced` maps (ti_reference_data, generated_shots) -- e.g. ('original', '5'), ('none',
    '100') -- to {registry dataset name: CLER}. Empty until the run generates with a TI strategy;
    settings the paper does not print (other shot counts) get rows of their own.
    """
    header = list(published_rows[0]) if published_rows else [*TI_KEYS, "Mean"]
    paper_cols = dataset_columns(header, (*TI_KEYS, "Mean"))
    extra = _extra_datasets(reproduced, paper_cols)
    columns = [Column("TI reference data"), Column("TI reference shots"), Column("Generated shots"), Column("Row"),
               Column("Mean", "score")]
    columns += [Column(name, "score") for name in paper_cols] + [Column(f"{n} (kit only)", "score") for n in extra]
    table = Table("table3", "Table 3: CLER (%) after Textual Inversion on retrieved or original reference data", columns)
    seen = set()
    for row in published_rows:
        key = (row["ti_reference_data"], row["generated_shots"])
        seen.add(key)
        _triple(table, [row[k] or "-" for k in TI_KEYS], paper_cols, extra, {c: number(row[c]) for c in paper_cols},
                reproduced.get(key, {}), number(row.get("Mean")), REPRODUCED, mean_first=True)
    for key in sorted(set(reproduced) - seen):
        _triple(table, [key[0], "-", key[1]], paper_cols, extra, {}, reproduced[key], None, REPRODUCED, mean_first=True)
    table.notes += [
        "Reproduced rows: CLER of the run's strategies with the TI modifier (e.g. DT+TI, tokens from the invert "
        "stage on generate.ti_embeddings' reference data) and, as 'none', of the same strategy without TI; "
        f"'{NOT_RUN}' until the run generates with TI.",
        "The published mean covers the 17 datasets of the row; a reproduced mean needs all 17.",
    ]
    return table
