"""The run report: Markdown built from the pipeline's own metric files (reports/report.md), and
the index page that links the reproduced tables and figures (reports/index.md), with a section
per cost-quality frontier; and what the report reads of each dataset's metric files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genbench.datasets import get_dataset
from genbench.frontier import frontier_figure, table_markdown
from genbench.tables.render import NOT_RUN, Table, to_markdown


@dataclass
class DatasetResults:
    """One dataset's metric files as the report reads them, and its figures (caption -> path).
    `info`: name, classes, num_test, shots (original images per class), metric."""

    info: dict
    cler: dict
    probe: dict
    figures: dict


METRIC_FILES = ("cler", "probe", "shots", "quality", "retrieve", "tune", "finetune", "backbones")  # metrics/<ds>/<stem>.json


def optional_json(path: Path) -> dict | None:
    """The JSON file at `path`, None when there is none."""
    return json.loads(path.read_text()) if path.is_file() else None


def read_results(folders: dict) -> dict[str, dict]:
    """What the report reads per dataset: {"info": dataset_info, and each of METRIC_FILES (None when
    absent)}. `folders` maps dataset -> its folders, an object with `metrics` (metrics/<ds>) and
    `prepared` (the stages' DatasetPaths)."""
    out = {}
    for name, folder in folders.items():
        files = {stem: optional_json(folder.metrics / f"{stem}.json") for stem in METRIC_FILES}
        meta = None if files["shots"] else optional_json(folder.prepared / "meta.json")
        out[name] = {"info": dataset_info(name, files["shots"], meta), **files}
    return out


def dataset_info(name: str, shots: dict | None, meta: dict | None) -> dict:
    """name, group, classes, metric, num_test, shots of a dataset: from its shots.json (`shots`),
    else its prepared/meta.json (`meta`), else the registry (num_test and shots then None)."""
    if shots:
        return shots["dataset"]
    if meta:
        return {**{k: meta.get(k) for k in ("name", "group", "metric", "num_test", "shots")},
                "classes": len(meta["classnames"])}
    spec = get_dataset(name)
    return {"name": name, "group": spec.group, "metric": spec.metric, "num_test": None, "shots": None,
            "classes": spec.num_classes}


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


def frontier_section(name: str, data: dict, figure: Path, link: str) -> str:
    """The index section of one dataset's cost-quality frontier (`data`: its metrics/<name>/frontier.json):
    draws the frontier to `figure`, links it as `link` and lists the cheapest setting within 1, 2
    and 5 CLER points of the best, the default setting marked."""
    rows = data["points"]
    frontier_figure(rows, figure, zero_shot=data["zero_shot"], original=data["original_cler"],
                    title=f"{name}: CLER against cost, {len(rows)} settings")
    default = next((r for r in rows if r["id"] == data["default"]), None)
    return (f"## Cost-quality frontier: {name}\n\n![frontier {name}]({link})\n\n"
            f"Cheapest setting within 1, 2 and 5 CLER points of the best ({len(rows)} settings, "
            f"95 % bootstrap intervals in metrics/{name}/frontier.json):\n\n" + table_markdown(data["table"], default))
