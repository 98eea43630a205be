"""What a finished rehearsal must show, read from its workdir as a user would read the run.

Each check takes the workdir and the params the run used and returns a `Check`: a name, the
lines it prints, and one text per failure (printed as `error: ...` lines by the command).
Contract of CHECKS: name -> function(workdir, params) -> Check, run in this order.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from genbench.datasets import get_dataset
from genbench.tables.render import NOT_RUN

REFERENCE_TABLE4 = Path("reports/reference/genbench_table4_datasets.csv")
PAPER_METRICS = {"Accuracy": "accuracy", "Mean Per Class": "mean_per_class", "11-point mAP": "map_11point",
                 "ROC AUC": "roc_auc"}  # Table 4's wording -> the metric name the stages write
FIGURES = {"Figure 3": "figure3_shots.png", "Figure 4": "figure4.png", "Figure 5": "figure5.png",
           "Figure 6": "figure6_mts.png"}
FIGURE_INPUTS = {"Figure 3": ("shots.json", None), "Figure 4": ("quality.json", None),
                 "Figure 5": ("quality.json", None), "Figure 6": ("retrieve.json", "mts")}  # per-dataset point


@dataclass
class Check:
    name: str
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def is_number(text: str | None) -> bool:
    try:
        return text is not None and float(text) == float(text)
    except ValueError:
        return False


def datasets_without_a_number(datasets: list[str], cells_of) -> list[tuple[str, list]]:
    """The datasets none of whose table cells (`cells_of(name)`) reads as a number, with those cells."""
    out = []
    for name in datasets:
        cells = cells_of(name)
        if not any(is_number(c) for c in cells):
            out.append((name, cells))
    return out


def foreach_items(expression, params: dict) -> list:
    """The items of a dvc.yaml `foreach`: a list, or `${key.path}` looked up in the params."""
    if isinstance(expression, list):
        return expression
    value = params
    for key in str(expression).strip().removeprefix("${").removesuffix("}").split("."):
        value = value[key]
    return list(value)


def expanded_stages(workdir: Path, params: dict) -> dict[str, list[str]]:
    """dvc.yaml's stages as DVC names them (stage@item for foreach stages) -> their meter/ outputs."""
    spec = yaml.safe_load((workdir / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in spec.items():
        items = foreach_items(stage["foreach"], params) if "foreach" in stage else [None]
        body = stage.get("do", stage)
        for item in items:
            outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]
            meters = [o.replace("${item}", item or "") for o in outs if o.startswith("meter/")]
            out[f"{name}@{item}" if item else name] = meters
    return out


def check_stages(workdir: Path, params: dict) -> Check:
    check = Check("every stage ran")
    stages = expanded_stages(workdir, params)
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=workdir, capture_output=True, text=True)
    status = json.loads(proc.stdout or "null") if proc.returncode == 0 else None
    if status is None:
        check.errors.append(f"dvc status failed in {workdir}: {proc.stderr.strip()[-300:]}")
    elif status:
        check.errors.append(f"dvc status is not clean: stages {', '.join(sorted(status))} changed or never ran")
    missing = [f"{s} ({m})" for s, meters in stages.items() for m in meters if not (workdir / m).is_file()]
    if missing:
        check.errors.append(f"stage(s) without a meter file: {', '.join(missing)}")
    check.lines.append(f"{len(stages)} stages in dvc.yaml, {len(stages) - len(missing)} with their meter file; "
                       f"dvc status {'clean' if status == {} else 'NOT clean'}")
    return check


def _dataset_columns(row: dict) -> dict[str, str]:
    """Registry dataset name -> the table's column for it."""
    from genbench.tables.reference import registry_name

    out = {}
    for column in row:
        name = registry_name(column.removesuffix(" (kit only)"))
        if name:
            out[name] = column
    return out


def check_table2(workdir: Path, params: dict) -> Check:
    check = Check("Table 2")
    model = (params.get("report") or {}).get("compare_with", "Stable Diffusion 2.1")
    rows = [r for r in read_csv(workdir / "reports/tables/table2.csv")
            if r["Row"].startswith("reproduced") and r["Model"] == model]
    if not rows:
        check.errors.append(f"reports/tables/table2.csv has no reproduced rows under {model!r} (report.compare_with)")
        return check
    columns = _dataset_columns(rows[0])
    for strategy in params["generate"]["strategies"]:
        row = next((r for r in rows if r["Prompt strategy"] == strategy), None)
        for name in params["datasets"]:
            cell = row.get(columns.get(name, ""), NOT_RUN) if row else NOT_RUN
            if not is_number(cell):
                check.errors.append(f"Table 2: strategy {strategy} on {name} reads {cell!r}, not a CLER")
            else:
                check.lines.append(f"Table 2  {strategy:10s} {name:16s} CLER {float(cell):7.2f}")
    return check


def check_table3(workdir: Path, params: dict) -> Check:
    check = Check("Table 3")
    ti = [s for s in params["generate"]["strategies"] if "TI" in s.split("+")]
    if not ti:
        check.lines.append("Table 3: the profile generates with no TI strategy, so it fills no Table 3 cell")
        return check
    rows = [r for r in read_csv(workdir / "reports/tables/table3.csv") if r["Row"] == "reproduced"]
    if not rows:
        check.errors.append(f"Table 3: the profile's TI strategies ({', '.join(ti)}) left no reproduced row")
        return check
    columns = _dataset_columns(rows[0])
    ti_rows = [r for r in rows if r["TI reference data"] != "none"]
    for name, _ in datasets_without_a_number(params["datasets"],
                                             lambda name: [r.get(columns.get(name, ""), NOT_RUN) for r in ti_rows]):
        check.errors.append(f"Table 3: no TI row has a number for {name}")
    check.lines.append(f"Table 3: {len(rows)} reproduced row(s) for TI strategies {', '.join(ti)}")
    return check


def check_table4(workdir: Path, params: dict) -> Check:
    check = Check("Table 4")
    rows = {r["Kit name"]: r for r in read_csv(workdir / "reports/tables/table4.csv")}
    def cells(name: str) -> list:
        row = rows.get(get_dataset(name).name)
        return [row.get("Test images (this run)") if row else None]

    for name, (cell,) in datasets_without_a_number(params["datasets"], cells):
        check.errors.append(f"Table 4: {name} has no test-set size of this run ({cell!r})")
    check.lines.append(f"Table 4: test-set sizes for {len(params['datasets'])} dataset(s)")
    return check


def check_cost_tables(workdir: Path, params: dict) -> Check:
    check = Check("Tables 1 and 5")
    table1 = {r["Data type"]: r for r in read_csv(workdir / "reports/tables/table1.csv")}
    table5 = {r["Data type"]: r for r in read_csv(workdir / "reports/tables/table5.csv") if r["Row"] == "this run"}
    for data_type in ("generative", "retrieval"):
        for key, rows, column in (("Table 1", table1, "USD/image (this run)"), ("Table 5", table5, "USD/image")):
            cell = rows.get(data_type, {}).get(column)
            if not is_number(cell):
                check.errors.append(f"{key}: {data_type} USD/image of this run reads {cell!r}")
            elif key == "Table 5":
                check.lines.append(f"Table 5  {data_type:10s} {float(cell):.3e} USD/image (this rehearsal)")
    return check


def check_figures(workdir: Path, params: dict) -> Check:
    check = Check("Figures 3-6")
    for figure, png in FIGURES.items():
        if not (workdir / "reports/figures" / png).is_file():
            check.errors.append(f"{figure}: reports/figures/{png} was not drawn")
        source, key = FIGURE_INPUTS[figure]
        for name in params["datasets"]:
            data = _json(workdir / "metrics" / name / source)
            if data is None or (key and data.get(key) is None):
                check.errors.append(f"{figure}: {name} has no point (metrics/{name}/{source}{f' key {key}' if key else ''})")
    check.lines.append(f"Figures 3-6: {sum((workdir / 'reports/figures' / p).is_file() for p in FIGURES.values())} of 4 drawn")
    return check


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def check_metrics(workdir: Path, params: dict) -> Check:
    """Each dataset is scored with the metric the paper's Table 4 names, on targets of its task's
    shape (label vectors for a multi-label dataset)."""
    from genbench.features import load_features

    check = Check("metrics")
    paper = {get_dataset(r["dataset"]).name: PAPER_METRICS.get(r["metric"], r["metric"])
             for r in read_csv(workdir / REFERENCE_TABLE4) if _known(r["dataset"])}
    for name in params["datasets"]:
        spec = get_dataset(name)
        want = paper.get(spec.name, spec.metric)
        for stem in ("cler", "probe"):
            got = (_json(workdir / "metrics" / name / f"{stem}.json") or {}).get("metric")
            if got != want:
                check.errors.append(f"{name}: {stem}.json scores with {got!r}; the paper's Table 4 says {want!r}")
        test = workdir / "data" / name / "features" / "test.safetensors"
        if test.is_file():
            labels = load_features(test)[1]
            multilabel = want == "map_11point"
            if multilabel and (labels.ndim != 2 or labels.shape[1] != spec.num_classes):
                check.errors.append(f"{name}: test labels have shape {labels.shape}, not one label vector of "
                                    f"{spec.num_classes} per image (multi-label)")
            if not multilabel and labels.ndim != 1:
                check.errors.append(f"{name}: test labels have shape {labels.shape}, not one class index per image")
            check.lines.append(f"{name:16s} metric {want:14s} test labels {tuple(labels.shape)}")
        else:
            check.errors.append(f"{name}: {test.relative_to(workdir)} missing")
    return check


def _known(name: str) -> bool:
    from genbench.errors import GenBenchError

    try:
        get_dataset(name)
        return True
    except GenBenchError:
        return False


def stage_times(workdir: Path) -> list[tuple[str, float]]:
    """(stage run, wall seconds) from every meter file, pipeline stages and stage@dataset."""
    out = []
    for path in sorted((workdir / "meter").glob("**/*.json")):
        record = json.loads(path.read_text())
        name = f"{record['stage']}@{record['dataset']}" if record.get("dataset") else record["stage"]
        out.append((name, float(record["reading"]["wall_s"])))
    return out


def check_times(workdir: Path, params: dict) -> Check:
    check = Check("stage wall times")
    times = stage_times(workdir)
    per_stage: dict[str, float] = {}
    for name, wall in times:
        per_stage[name.split("@")[0]] = per_stage.get(name.split("@")[0], 0.0) + wall
    for stage, wall in sorted(per_stage.items(), key=lambda kv: -kv[1]):
        runs = [w for n, w in times if n.split("@")[0] == stage]
        check.lines.append(f"{stage:16s} {wall:8.1f} s  ({len(runs)} run(s), slowest {max(runs):.1f} s)")
    check.lines.append(f"{'all stages':16s} {sum(per_stage.values()):8.1f} s")
    return check


CHECKS = {
    "stages": check_stages,
    "table2": check_table2,
    "table3": check_table3,
    "table4": check_table4,
    "cost_tables": check_cost_tables,
    "figures": check_figures,
    "metrics": check_metrics,
    "times": check_times,
}
