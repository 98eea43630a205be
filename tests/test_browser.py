"""What a user reads after two pipeline runs: the tiny pipeline runs twice (prompt strategy ST,
then DT) into one MLflow store; the report's tables are checked against the first run's metric
files, `genbench runs compare` against both, and the MLflow UI in headless Chromium.

The browser test starts `mlflow server` on 127.0.0.1 (a free port, bounded wait, always
stopped), opens the experiment's runs page and the compare page of the two pipeline runs, checks
CLER, probe score and USD per image for both, and saves screenshots under tests/artifacts/ (or
$GENBENCH_TEST_ARTIFACTS). It is skipped when Chromium (/usr/bin/chromium or $GENBENCH_CHROMIUM)
or the `playwright` package is missing; `.ci/install-browser.sh` installs both.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT, write_params

STRATEGIES = ("ST", "DT")
EXPERIMENT = "genbench-embedded"
CHROMIUM = os.environ.get("GENBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("GENBENCH_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
SERVER_START_TIMEOUT_S = 120
# the parent-run metrics the compare view must show for both runs (stages/frame/tracking.py names them)
COMPARED = {"CLER": "headline/digits/cler/generated", "probe score": "headline/digits/probe/generated",
            "USD per image": "headline/usd_per_image/generated"}
HEADLINE_COLUMNS = list(COMPARED.values()) + ["headline/digits/zero_shot"]


def tiny_params(strategy: str) -> dict:
    return {
        "generate": {"model": "tiny-sd", "strategies": [strategy], "images_per_class": 4, "steps": 4, "batch_size": 8,
                     "shard_size": 16},
        "embed": {"model": "tiny-clip", "pretrained": None},
        "shots": {"draws": 1},
        "report": {"reference_dir": str(ROOT / "reports" / "reference")},
    }


def run_pipeline(root: Path, strategy: str, store: str, *, report: bool) -> None:
    """The stage commands in dvc.yaml's order, in this process (one import of torch and MLflow
    for all of them), as one pipeline execution named strategy-<S>."""
    from stages.frame.cli import cli

    stages = [["prepare"], ["generate"], ["embed"], ["cler"], ["probe"]]
    stages += [["shots"], ["cost"], ["report"]] if report else [["cost"]]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", store)
        mp.setenv("TQDM_DISABLE", "1")
        mp.setenv("GENBENCH_PIPELINE_ID", f"browser-test-{strategy}-{uuid.uuid4().hex[:8]}")
        mp.setenv("DVC_EXP_NAME", f"strategy-{strategy}")
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        for args in stages:
            result = CliRunner().invoke(cli, args)
            if result.exit_code != 0:
                raise AssertionError(f"genbench {' '.join(args)} ({strategy}) failed: {result.output}") from result.exception


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("two-runs")
    store = f"sqlite:///{base / 'mlflow.db'}"
    dirs = {}
    for strategy in STRATEGIES:
        root = base / f"run-{strategy}"
        root.mkdir()
        write_params(root, tiny_params(strategy))
        run_pipeline(root, strategy, store, report=strategy == STRATEGIES[0])
        dirs[strategy] = root
    return {"store": store, "db": base / "mlflow.db", "dirs": dirs, "names": [f"strategy-{s}" for s in STRATEGIES]}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_report_tables_match_the_runs_metric_files(runs):
    root = runs["dirs"]["ST"]
    cler = _json(root / "metrics" / "digits" / "cler.json")
    cost = _json(root / "metrics" / "cost.json")
    tables = root / "reports" / "tables"
    st = next(r for r in _csv(tables / "table2.csv")
              if r["Model"] == "Stable Diffusion 2.1" and r["Prompt strategy"] == "ST" and r["Row"].startswith("reproduced"))
    assert float(st["digits (kit only)"]) == pytest.approx(cler["sets"]["generated/ST"]["cler"], abs=1e-9)
    published = next(r for r in _csv(ROOT / "reports" / "reference" / "genbench_table2_cler_20shot.csv")
                     if r["model"] == "Stable Diffusion 2.1" and r["strategy"] == "ST")
    pub = next(r for r in _csv(tables / "table2.csv")
               if r["Model"] == "Stable Diffusion 2.1" and r["Prompt strategy"] == "ST" and r["Row"] == "published")
    assert float(pub["MNIST"]) == float(published["MNIST"]) and float(pub["Mean"]) == float(published["Mean"])
    t1 = {r["Data type"]: r for r in _csv(tables / "table1.csv")}
    assert float(t1["generative"]["USD/image (this run)"]) == pytest.approx(cost["usd_per_image"]["generated"])
    mini = {r["Measure (%, test set)"]: r for r in _csv(tables / "orientation_digits.csv")}
    assert float(mini["zero-shot (CLIP text prototypes)"]["Miniature on digits (this run)"]) == pytest.approx(cler["zero_shot"])
    shots = _json(root / "metrics" / "digits" / "shots.json")
    largest = shots["sources"]["generated/ST"][-1]
    assert largest["shots"] == 4 and largest["cler"] == pytest.approx(cler["sets"]["generated/ST"]["cler"])
    index = (root / "reports" / "index.md").read_text()
    assert "figures/figure3_shots.png" in index and (root / "reports" / "figures" / "figure3_shots.png").is_file()


def test_runs_compare_prints_both_runs_metrics(runs):
    from stages.commands.runs import command

    result = CliRunner().invoke(command, ["compare", *runs["names"], "--tracking-uri", runs["store"],
                                          "--experiment", EXPERIMENT])
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.output.splitlines()
    strategies = next(line for line in lines if line.strip().startswith("generate.strategies"))
    assert "A: ['ST']" in strategies and "B: ['DT']" in strategies
    start = lines.index("  cler@digits")
    row = next(line for line in lines[start:] if line.strip().startswith("cler.generated "))
    a, b = (_json(runs["dirs"][s] / "metrics" / "digits" / "cler.json")["sets"]["generated"]["cler"] for s in STRATEGIES)
    assert [float(v) for v in row.split()[1:4]] == pytest.approx([a, b, b - a], rel=1e-5, abs=1e-9)


# ---- the MLflow UI in a real browser ----

def browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or .ci/install-browser.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; .ci/install-browser.sh)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_server(db: Path, port: int, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
    cmd += ["server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"mlflow server not ready after {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


# The compare page lists metrics in two virtualised grids that the page keeps in step, a scroll
# behind (names, then one value column per run; the value grid takes the mouse wheel). Cells are
# absolutely placed, so a metric's row is where its name cell's `top` says in both grids. FIND_ROW
# returns the value grid's scroll offset, the row's offset when the name cell is rendered, and the
# value cells at that offset (left to right).
GRIDS = """const grids = [...document.querySelectorAll('[role=grid]')];
  const names = grids.find(g => g.querySelector('a[href*="metric="]'));
  const values = names ? grids[grids.indexOf(names) + 1] : null;"""
FIND_ROW = """([metric, top]) => { %s
  if (!names) return null;
  const cells = g => [...g.querySelector('[role=rowgroup]').children];
  const cell = cells(names).find(c => c.textContent.trim() === metric);
  const at = top !== null ? top : (cell ? parseFloat(cell.style.top) : null);
  if (at === null) return {scroll: values.scrollTop, names_scroll: names.scrollTop, top: null, values: []};
  const row = cells(values).filter(c => parseFloat(c.style.top) === at);
  row.sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left));
  return {scroll: values.scrollTop, names_scroll: names.scrollTop, top: at, values: row.map(c => c.textContent.trim())};
}""" % GRIDS
GRID_BOX = """() => { %s
  names.scrollIntoView({block: 'center'});
  const a = names.getBoundingClientRect(), b = values.getBoundingClientRect();
  return {x: a.left, y: a.top, width: b.right - a.left, height: Math.max(a.height, b.height)};
}""" % GRIDS


def compare_row(page, metric: str) -> list[str]:
    """Wheel the metric grids to the top, down until `metric`'s name shows, then bring its row to
    the top and return the values shown in it."""
    def over_values():  # a wheel past the grid's end scrolls the page: find the grid again
        box = page.evaluate(GRID_BOX)
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)

    over_values()
    page.mouse.wheel(0, -100_000)
    page.wait_for_timeout(300)
    over_values()
    found, stuck = page.evaluate(FIND_ROW, [metric, None]), 0
    while found is not None and found["top"] is None and stuck < 10:  # 10 wheels without moving: the end
        page.mouse.wheel(0, 200)
        page.wait_for_timeout(150)
        moved = page.evaluate(FIND_ROW, [metric, None])
        stuck = stuck + 1 if moved["scroll"] == found["scroll"] else 0
        found = moved
    if found is None or found["top"] is None:
        raise AssertionError(f"metric {metric!r} not found in the compare view")
    for _ in range(10):
        if len(found["values"]) >= 2 and found["scroll"] == found["top"]:
            break
        page.mouse.wheel(0, found["top"] - found["scroll"])
        page.wait_for_timeout(300)
        found = page.evaluate(FIND_ROW, [metric, found["top"]])
    for delta in (1, -1):  # two more events bring the name grid level with the values (to 1 px)
        page.mouse.wheel(0, delta)
        page.wait_for_timeout(300)
    found = page.evaluate(FIND_ROW, [metric, found["top"]])
    assert abs(found["names_scroll"] - found["scroll"]) <= 2, f"name and value grids out of step: {found}"
    return found["values"]


def close_assistant(page) -> None:
    """The MLflow 3 assistant panel takes a quarter of the page; close it when it is there."""
    button = page.locator("button[aria-label*='lose']").first
    try:
        button.click(timeout=2000)
    except Exception:  # noqa: BLE001 - the panel is optional UI
        pass


def stack(images: list[Path], out: Path) -> None:
    """One PNG of the crops, top to bottom."""
    from PIL import Image

    tiles = [Image.open(p).convert("RGB") for p in images]
    sheet = Image.new("RGB", (max(t.width for t in tiles), sum(t.height for t in tiles) + 8 * len(tiles)), "white")
    y = 0
    for tile in tiles:
        sheet.paste(tile, (0, y))
        y += tile.height + 8
    sheet.save(out)


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_mlflow_ui_lists_both_runs_and_compares_cler_probe_and_usd(runs, tmp_path):
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    from stages.frame.mlflow_store import runs_view_url

    client = MlflowClient(tracking_uri=runs["store"])
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parents = {r.info.run_name: r for r in client.search_runs([exp_id], filter_string="tags.`genbench.kind` = 'pipeline'")}
    assert sorted(parents) == sorted(runs["names"])
    for parent in parents.values():
        assert parent.info.status == "FINISHED"
        children = client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert {c.data.tags["genbench.stage"] for c in children} >= {"generate", "cler", "probe", "cost"}
        names = {d.dataset.name: d.dataset.digest for d in parent.inputs.dataset_inputs}
        assert {"digits/prepared/original", "digits/prepared/test", "digits/generated"} <= set(names), names
        for column in HEADLINE_COLUMNS:
            assert column in parent.data.metrics, (column, sorted(parent.data.metrics))
    ids = [parents[name].info.run_id for name in runs["names"]]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "mlflow-server.log"
    server = mlflow_server(runs["db"], port, log)
    try:
        wait_ready(server, f"{base}/health", log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                # the UI's per-browser workflow type (default genai) overrides the experiment's kind: the
                # kit's links carry workflowType=machine_learning; with it the experiment opens on its runs
                page.goto(f"{base}/#/experiments/{exp_id}?workflowType=machine_learning")
                page.wait_for_url(f"**/experiments/{exp_id}/runs**", timeout=90_000)
                for name in runs["names"]:
                    page.get_by_text(name, exact=True).first.wait_for(timeout=90_000)
                close_assistant(page)
                page.screenshot(path=ARTIFACTS / "mlflow_experiment_opens_on_runs.png")

                # the runs table renders only the columns in view: wide enough for all the headline columns
                page.set_viewport_size({"width": 3000, "height": 1000})
                page.goto(f"{base}/{runs_view_url(exp_id)}")
                for name in runs["names"]:
                    page.get_by_text(name, exact=True).first.wait_for(timeout=90_000)
                close_assistant(page)
                page.get_by_text("digits/prepared/original", exact=False).first.wait_for(timeout=30_000)
                headers = page.locator("[role=columnheader]").all_inner_texts()
                for column in HEADLINE_COLUMNS:
                    assert any(column in h or h.strip() and column.endswith(h.strip().rstrip(".…")) for h in headers), \
                        (column, headers)
                page.screenshot(path=ARTIFACTS / "mlflow_runs.png", full_page=True)
                expanders = page.locator("[role=row] button[data-component-id*='runnamecellrenderer']")  # a parent's +
                assert expanders.count() == len(runs["names"]), expanders.count()
                for i in range(expanders.count()):
                    expanders.nth(i).click()
                page.get_by_text("cler@digits", exact=True).first.wait_for(timeout=30_000)
                page.screenshot(path=ARTIFACTS / "mlflow_runs_children.png", full_page=True)

                page.set_viewport_size({"width": 1500, "height": 1000})
                page.goto(f"{base}/#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([exp_id])}"
                          "&workflowType=machine_learning")
                page.get_by_text("Run Name:", exact=True).first.wait_for(timeout=90_000)
                close_assistant(page)
                header = page.locator("table", has=page.get_by_text("Run Name:", exact=True)).first
                for name in runs["names"]:
                    assert header.get_by_text(name, exact=True).count() >= 1
                header.screenshot(path=tmp_path / "header.png")
                crops, seen = [tmp_path / "header.png"], {}
                for label, metric in COMPARED.items():
                    values = compare_row(page, metric)
                    seen[label] = values
                    box = page.evaluate(GRID_BOX)
                    page.screenshot(path=tmp_path / f"{label}.png", clip={**box, "height": min(box["height"], 140)})
                    crops.append(tmp_path / f"{label}.png")
                page.screenshot(path=ARTIFACTS / "mlflow_compare_page.png")
            finally:
                browser.close()
    finally:
        stop(server)
    stack(crops, ARTIFACTS / "mlflow_compare.png")
    print(f"screenshots: {ARTIFACTS / 'mlflow_runs.png'}, {ARTIFACTS / 'mlflow_compare.png'}, "
          f"{ARTIFACTS / 'mlflow_compare_page.png'}")
    for label, metric in COMPARED.items():
        shown = seen[label]
        assert len(shown) == 2, (label, shown)
        for name, text in zip(runs["names"], shown):
            expected = parents[name].data.metrics[metric]
            assert text not in ("", "NaN", "-"), (label, name, text)
            assert math.isclose(float(text), expected, rel_tol=1e-3, abs_tol=1e-12), (label, name, text, expected)
