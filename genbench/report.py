"""The run report: Markdown built from the pipeline's own metric files."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DatasetResults:
    """One dataset's metric files as the report reads them, and its figures (caption -> path)."""

    meta: dict
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
    meta, probe = result.meta, result.probe
    return [
        f"## {meta['name']}",
        "",
        f"{len(meta['classnames'])} classes, {meta['num_test']} test images, {meta['shots']}-shot original set; "
        f"metric: {meta['metric'].replace('_', ' ')} (percent, on the real test set).",
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
    names = ", ".join(r.meta["name"] for r in results)
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
