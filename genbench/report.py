"""The run report: a Markdown summary of the pipeline's own metric files."""

from __future__ import annotations


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "not run"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 and value != 0 else f"{value:.{digits}f}"
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
        data_type = name.split("/")[0]
        rows.append([
            name,
            scores["images"],
            scores["cler"],
            scores["cler_ensemble"],
            probe["sets"].get(name, {}).get("score"),
            usd(usd_by_type.get(data_type)),
        ])
    return rows


def build_report(meta: dict, cler: dict, probe: dict, cost: dict, *, profile: str, commit: str,
                 figures: dict[str, str]) -> str:
    per_image = cost["usd_per_image"]
    metric = meta["metric"].replace("_", " ")
    parts = [
        f"# GenBench Kit report: {meta['name']} ({profile} profile)",
        "",
        f"Dataset `{meta['name']}`: {len(meta['classnames'])} classes, {meta['num_test']} test images, "
        f"{meta['shots']}-shot original set; metric: {metric}. Commit `{commit[:12]}`; prices: snapshot "
        f"`{cost['snapshot']}`.",
        "",
        "## Scores on the real test set (percent) and acquisition cost",
        "",
        markdown_table(
            ["data source", "images", "CLER", "CLER-ensemble", f"linear probe ({probe['protocol']})", "USD per image"],
            summary_rows(cler, probe, per_image),
        ),
        "",
        "CLER: nearest class prototype (mean of L2-normalised CLIP image features) on the test set; "
        "CLER-ensemble: mean of CLER and zero-shot logits (GenBench Algorithm 1). The probe picks its L2 "
        "strength on a validation split of the training images only. Original data is priced at the "
        "human-labelling reference; generated data at the measured generation time on this machine.",
        "",
        "## What each data type cost",
        "",
        markdown_table(["data type", "USD per image"], [[k, usd(v)] for k, v in per_image.items()]),
        "",
        f"Total metered cost of the upstream stages: {usd(cost['usd_total'])} USD (see `ledger.csv`).",
        "",
        "## Figures",
        "",
    ]
    parts += [f"![{caption}]({path})" for caption, path in figures.items()]
    return "\n".join(parts) + "\n"
