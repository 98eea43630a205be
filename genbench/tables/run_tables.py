"""The report's tables from a run: the run's metric files turned into the reproduced cells the
table builders take, and every table built beside the published rows (reports/reference).

`results` maps a pipeline dataset name -> {"info": {name, group, classes, metric, num_test,
shots}, and each metric file as a dict or None: "cler", "probe", "tune", ...}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from genbench.datasets import DATASETS, category_total, get_dataset
from genbench.tables.cler_tables import table2, table3
from genbench.tables.cost_tables import KIT_DATA_TYPES, section31, table1, table5
from genbench.tables.datasets_table import table4
from genbench.tables.he_table1 import he_table1
from genbench.tables.orientation import mnist_orientation
from genbench.tables.reference import number, read_reference
from genbench.tables.render import Table

ORIENTATION_DATASET = "digits"  # the embedded default, set beside the paper's MNIST
TI_REFERENCES = {"original": "original", "retrieved": "retrieval"}  # invert source -> Table 3's TI reference data


def cler_by_strategy(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """{strategy: {registry dataset name: CLER of generated/<strategy>}} from the cler.json files."""
    out: dict[str, dict[str, float]] = {}
    for name, r in results.items():
        for source, scores in (r["cler"] or {}).get("sets", {}).items():
            if source.startswith("generated/"):
                out.setdefault(source.split("/", 1)[1], {})[get_dataset(name).name] = scores["cler"]
    return out


def images_per_class(results: dict[str, dict]) -> dict[str, int]:
    """{dataset: generated images per class}: the first generated/<strategy> set's images over the classes."""
    out = {}
    for name, r in results.items():
        sets = (r["cler"] or {}).get("sets", {})
        per_strategy = [s["images"] for k, s in sets.items() if k.startswith("generated/")]
        if per_strategy and r["info"]["classes"]:
            out[name] = per_strategy[0] // r["info"]["classes"]
    return out


def ti_reference(ti_embeddings: str) -> str:
    """Table 3's 'TI reference data' (original | retrieval) of the token embeddings that
    generate.ti_embeddings names: the invert source (TI_REFERENCES) whose folder the path is in or
    under (data/{dataset}/inversion/<source>), nearest the path's end; the path itself when it
    names none."""
    parts = PurePath(ti_embeddings).parts
    return next((TI_REFERENCES[part] for part in reversed(parts) if part in TI_REFERENCES), ti_embeddings)


def ti_results(results: dict[str, dict], reference: str) -> dict[tuple[str, str], dict[str, float]]:
    """Table 3's reproduced cells from cler.json: a strategy with the TI modifier (DT+TI) is
    Textual Inversion on `reference` images; the same strategy without TI (DT), at the same
    images per class, is the 'none' row. Keys: (reference data, generated images per class)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for name, r in results.items():
        sets = (r["cler"] or {}).get("sets", {})
        classes = r["info"]["classes"]
        for source, scores in sets.items():
            parts = source.split("/", 1)[1].split("+") if source.startswith("generated/") else []
            if "TI" not in parts:
                continue
            shots = str(scores["images"] // classes)
            out.setdefault((reference, shots), {})[get_dataset(name).name] = scores["cler"]
            plain = sets.get("generated/" + "+".join(p for p in parts if p != "TI"))
            if plain and plain["images"] // classes == int(shots):
                out.setdefault(("none", shots), {})[get_dataset(name).name] = plain["cler"]
    return out


def section31_prices(published: list[dict], audit: list[dict], run_rows: list[dict] | None,
                     human_usd: float | None) -> list[tuple[float, float] | None]:
    """The (generated, human) USD per image of Section 3.1's three comparisons: as printed in
    Table 5, with the generated price recomputed from the audited hours, and this run's (None
    without a priced generated row, or without `human_usd`, the price snapshot's human-labelling
    price). The human price is Table 5's 'original' row, else `human_usd`; this run's is `human_usd`."""
    printed = {r["data_type"]: number(r["usd_per_image"]) for r in published}
    gen_audit = next(a for a in audit if KIT_DATA_TYPES.get(a["data_type"]) == "generated")
    human = printed.get("original") or human_usd
    ours = next((r for r in run_rows or [] if r["data_type"] == "generated" and r["usd_per_image"]), None)
    return [(printed["generative"], human), (gen_audit["recomputed_usd_per_image"], human),
            (ours["usd_per_image"], human_usd) if ours and human_usd is not None else None]


@dataclass
class CostInputs:
    """The cost tables' inputs: published Table 5 rows, the cost layer's audit of them, this run's
    cost table (None without a ledger) and Section 3.1's three comparisons (section31_prices priced)."""

    published: list[dict]
    audit: list[dict]
    run_rows: list[dict] | None
    section31: list[dict | None]


def paper_tables(reference: str | Path, results: dict[str, dict], cost: CostInputs, *, models: dict[str, str],
                 compare_with: str, snapshot: str, ti_embeddings: str) -> tuple[list[Table], list[Table]]:
    """(Tables 1 to 5, Section 3.1 and He et al.'s Table 1, the embedded default set beside MNIST
    when ORIENTATION_DATASET ran). `models`: {"generator", "CLIP"} of the run; `compare_with`: the
    paper's model whose Table 2 rows the run sits under; `snapshot`: the price snapshot's label."""
    t2_rows = read_reference(reference, "table2")
    test_sizes = {get_dataset(n).name: r["info"]["num_test"] for n, r in results.items() if r["info"].get("num_test")}
    specs = {**{name: spec for name, spec in DATASETS.items() if spec.group != "Embedded"},
             **{get_dataset(n).name: get_dataset(n) for n in results}}
    tables = [
        table1(cost.published, cost.audit, cost.run_rows, snapshot=snapshot),
        table2(t2_rows, cler_by_strategy(results), run_model=models["generator"], compare_with=compare_with,
               images_per_class=images_per_class(results)),
        table3(read_reference(reference, "table3"), ti_results(results, ti_reference(ti_embeddings))),
        table4(read_reference(reference, "table4"), specs, category_total(), test_sizes=test_sizes),
        table5(cost.published, cost.audit, cost.run_rows, snapshot=snapshot),
        section31(*cost.section31, snapshot=snapshot),
        he_table1(read_reference(reference, "he2023_table1"),
                  {get_dataset(n).name: r["tune"] for n, r in results.items() if r["tune"]}),
    ]
    orientation = []
    mini = results.get(ORIENTATION_DATASET)
    if mini and mini["cler"]:
        used = f"generator `{models['generator']}` and CLIP `{models['CLIP']}`"
        orientation.append(mnist_orientation(t2_rows, mini["cler"], mini["probe"], dataset=ORIENTATION_DATASET,
                                             models=used))
    return tables, orientation
