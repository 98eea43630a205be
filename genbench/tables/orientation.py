"""The embedded default's numbers beside the paper's closest dataset (MNIST), for orientation only.

The miniature runs on scikit-learn's 8x8 digits with a tiny CLIP and a tiny generator it trains
itself; the paper runs CLIP ViT-B/32 and Stable Diffusion 2.1 / GLIDE on MNIST. The numbers are
not comparable; the table says so in its title and puts no difference column.
"""

from __future__ import annotations

from genbench.tables.reference import number
from genbench.tables.render import NOT_PUBLISHED, Column, Table

TITLE = "Miniature on sklearn digits vs paper on MNIST: not comparable numbers, shown for orientation"
PAPER_DATASET = "MNIST"


def mnist_orientation(table2_rows: list[dict], cler: dict, probe: dict | None, *, dataset: str = "digits",
                      models: str = "the kit's miniature models") -> Table:
    """Rows: zero-shot, CLER of each data source, how often CLIP recognises a generated image's
    prompt class, probe of each data source. Columns: this run on `dataset`, then the paper's MNIST
    value for every model of its Table 2 (CLER of 20-shot generated data per prompt strategy; the
    paper prints no MNIST zero-shot or probe value)."""
    paper_models = list(dict.fromkeys(r["model"] for r in table2_rows))
    published = {(r["model"], r["strategy"]): number(r.get(PAPER_DATASET)) for r in table2_rows}
    columns = [Column("Measure (%, test set)"), Column(f"Miniature on {dataset} (this run)", "score")]
    columns += [Column(f"Paper on MNIST: {m}", "score") for m in paper_models]
    table = Table(f"orientation_{dataset}", TITLE, columns)
    table.add(["zero-shot (CLIP text prototypes)", cler["zero_shot"], *[None] * len(paper_models)], missing=NOT_PUBLISHED)
    for name, scores in cler["sets"].items():
        strategy = name.split("/", 1)[1] if name.startswith("generated/") else None
        paper = [published.get((m, strategy)) if strategy else None for m in paper_models]
        table.add([f"CLER {name} ({scores.get('images', '?')} images)", scores["cler"], *paper], missing=NOT_PUBLISHED)
    for name, scores in cler["sets"].items():
        if name.startswith("generated") and "label_agreement" in scores:
            table.add([f"{name} images zero-shot labelled as their prompt's class", scores["label_agreement"],
                       *[None] * len(paper_models)], missing=NOT_PUBLISHED)
    for name, scores in (probe or {}).get("sets", {}).items():
        table.add([f"linear probe {name} ({probe.get('protocol', 'clean')})", scores["score"], *[None] * len(paper_models)],
                  missing=NOT_PUBLISHED)
    table.notes += [
        "Paper columns: GenBench Table 2, MNIST, CLER of 20 generated images per class (ViT-B/32) under the "
        "same prompt strategy; the paper prints no MNIST zero-shot or linear-probe number, and He et al. "
        "(reports/reference/he2023_table1_zeroshot_synthetic.csv) has no MNIST row.",
        f"This run: {dataset} (scikit-learn's 1,797 8x8 scans of 10 digits; 540 test images) with {models}; "
        "chance is 10%.",
    ]
    return table
