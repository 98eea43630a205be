"""The run report: Markdown built from the pipeline's own metric files (reports/report.md), and
the index page that links the reproduced tables and figures (reports/index.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genbench.tables.render import NOT_RUN, Table, to_markdown


@dataclass
class DatasetResults:
    """One dataset's metric files as the report reads them, and its figures (caption -> path).
    `info`: name, classes, num_test, shots (original images per class), metric."""

    info: dict
    cler: dict
    probe: dict
    figures: dict


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "not run"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def usd(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_rows(cler: dict, probe: dict, usd_by_type: dict) -> list[list]:
    """One row per data source: source, images, CLER, CLER-ensemble, probe, USD per image."""
    rows = [["zero-shot (CLIP text prototypes)", "-", cler["zero_shot"], "-", "-", "-"]]
    for name, scores in cler["sets"].items():
        rows.append([
            name,
            scores["images"],
            scores["cler"],
            scores["cler_ensemble"],
            probe["sets"].get(name, {}).get("score"),
            usd(usd_by_type.get(name.split("/")[0])),
        ])
    return rows


def dataset_section(result: DatasetResults, per_image: dict) -> list[str]:
    info, probe = result.info, result.probe
    return [
        f"## {info['name']}",
        "",
        f"{info['classes']} classes, {fmt(info.get('num_test'))} test images, {fmt(info.get('shots'))}-shot original "
        f"set; metric: {info['metric'].replace('_', ' ')} (percent, on the real test set).",
        "",
        markdown_table(
            ["data source", "images", "CLER", "CLER-ensemble", f"linear probe ({probe['protocol']})", "USD per image"],
            summary_rows(result.cler, probe, per_image),
        ),
        "",
        *[f"![{caption}]({path})" for caption, path in result.figures.items()],
        "",
    ]


def build_report(results: list[DatasetResults], cost: dict, *, profile: str, commit: str, title: str | None = None) -> str:
    per_image = cost["usd_per_image"]
    names = ", ".join(r.info["name"] for r in results)
    parts = [
        f"# {title or f'GenBench Kit report: {names} ({profile} profile)'}",
        "",
        f"Profile `{profile}`, commit `{commit[:12]}`, prices from snapshot `{cost['snapshot']}`.",
        "",
        "CLER: nearest class prototype (renormalised mean of L2-normalised CLIP image features) on the test "
        "set; CLER-ensemble: mean of CLER and zero-shot logits (GenBench Algorithm 1). The linear probe picks "
        "its L2 strength on a validation split of the training images only and scores the test set once.",
        "",
    ]
    for result in results:
        parts += dataset_section(result, per_image)
    parts += [
        "## What each data type cost",
        "",
        markdown_table(["data type", "USD per image"], [[k, usd(v)] for k, v in per_image.items()]),
        "",
        "Generated images are priced at the measured wall time of the generate stage on this machine (billed "
        "as the instance in the ledger); original images at the human-labelling reference price. Total metered "
        f"cost of the per-dataset stages: {usd(cost['usd_total'])} USD (see `ledger.csv`).",
        "",
    ]
    return "\n".join(parts)


@dataclass
class TableEntry:
    """A written table for the index: its files (suffix -> path relative to the index page)."""

    table: Table
    files: dict[str, str]


@dataclass
class FigureEntry:
    """A figure for the index: its PNG (relative to the index page), or None and why it is not drawn."""

    key: str
    title: str
    path: str | None
    reason: str = ""


def _table_status(table: Table) -> str:
    filled, total = table.reproduced_cells()
    return f"{filled} of {total} reproduced cells filled" if total else "this run's values beside the published"


def build_index(*, profile: str, commit: str, snapshot: str, datasets: list[str], models: dict[str, str],
                tables: list[TableEntry], figures: list[FigureEntry], orientation: list[Table],
                summary: str = "report.md", sections: list[str] = ()) -> str:
    """reports/index.md: which run produced the report, and a link to every table and figure."""
    model_text = ", ".join(f"{k} `{v}`" for k, v in models.items())
    parts = [
        "# GenBench Kit: reproduced tables and figures",
        "",
        f"Produced by profile `{profile}` at commit `{commit[:12]}`, prices from snapshot {snapshot}; "
        f"datasets: {', '.join(datasets)}; models: {model_text}.",
        "",
        f"This run's own numbers per dataset (scores per data source, cost per data type) are in [{summary}]({summary}); "
        "the priced stage runs in [ledger.csv](ledger.csv). Every table below puts the paper's published value "
        f"beside this run's and the difference; a cell reads '{NOT_RUN}' when the pipeline has not produced it.",
        "",
        "## Tables",
        "",
        markdown_table(["table", "files", "reproduced"], [
            [entry.table.title, " · ".join(f"[{s}]({p})" for s, p in entry.files.items()), _table_status(entry.table)]
            for entry in tables
        ]),
        "",
        "## Figures",
        "",
        markdown_table(["figure", "file"], [
            [fig.title, f"[{Path(fig.path).name}]({fig.path})" if fig.path else f"{NOT_RUN}: {fig.reason}"]
            for fig in figures
        ]),
        "",
    ]
    for fig in figures:
        if fig.path:
            parts += [f"![{fig.title}]({fig.path})", ""]
    for table in orientation:
        parts += [to_markdown(table), ""]
    parts += [text for section in sections for text in (section, "")]
    parts += [
        "## Comparing runs",
        "",
        "`mlflow ui --backend-store-uri sqlite:///mlflow.db` opens the MLflow UI at http://127.0.0.1:5000: one "
        f"experiment per profile (`genbench-{profile}`), one parent run per pipeline execution, one child run per "
        "stage. Without a browser: `genbench runs compare RUN_A RUN_B`.",
        "",
    ]
    return "\n".join(parts)
