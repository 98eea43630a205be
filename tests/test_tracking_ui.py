"""What the kit writes for the MLflow UI: the parent run's name, the headline view and the dataset inputs."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib

import pandas as pd

from stages.frame.mlflow_store import HEADLINE_VIEW_NAME, dataset_inputs, headline_view
from stages.frame.tracking import parent_run_name


def test_parent_run_is_named_after_the_experiment_else_profile_and_short_commit(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert parent_run_name("embedded", "0123456789abcdef") == "embedded 0123456"
    monkeypatch.setenv("DVC_EXP_NAME", "g3")
    assert parent_run_name("embedded", "0123456789abcdef") == "g3"


# MLflow 3.17.2's UI (server/js bundle, the runs page's shared-view hook): the tag's value is first
# read as a saved-view envelope, else as the bare state; a "deflate;" prefix marks base64 zlib data.
UI_VIEW_FIELDS = ["selectedColumns", "columnOrder", "columnWidths", "runsExpanded", "runsPinned", "runsHidden",
                  "runsVisibilityMap", "runsHiddenMode", "compareRunCharts", "compareRunSections", "viewMaximized",
                  "runListHidden", "isAccordionReordered", "groupBy", "groupsExpanded", "autoRefreshEnabled",
                  "useGroupedValuesInCharts", "hideEmptyCharts", "globalLineChartConfig", "chartsSearchFilter"]
UI_VIEW_DROPPED = ["runsExpanded", "runsPinned", "runsHidden", "runsVisibilityMap", "autoRefreshEnabled"]


def _ui_text(text: str) -> str:
    return zlib.decompress(base64.b64decode(text[len("deflate;"):])).decode() if text.startswith("deflate;") else text


def ui_reads_shared_view(value: str) -> dict:
    """The runs-table state the UI takes from a `mlflow.sharedViewState.<key>` tag value."""
    try:
        envelope = json.loads(value)
        if not (isinstance(envelope, dict) and isinstance(envelope.get("name"), str)
                and isinstance(envelope.get("createdAt"), (int, float)) and isinstance(envelope.get("state"), str)):
            raise ValueError("not a saved-view envelope")
        state = json.loads(_ui_text(envelope["state"]))
    except ValueError:
        state = json.loads(_ui_text(value))
    return {k: v for k, v in state.items() if k in UI_VIEW_FIELDS and k not in UI_VIEW_DROPPED}


def test_ui_reader_takes_envelopes_deflated_and_bare_states():
    state = {"selectedColumns": ["metrics.`m`"], "runsExpanded": {"r": True}}
    deflated = "deflate;" + base64.b64encode(zlib.compress(json.dumps(state).encode())).decode()
    envelope = json.dumps({"name": "v", "createdAt": 1, "state": deflated})
    for value in (envelope, deflated, json.dumps(state)):
        assert ui_reads_shared_view(value) == {"selectedColumns": ["metrics.`m`"]}


def test_headline_view_is_a_saved_view_the_ui_opens_with_the_shared_headline_columns():
    keys = ["headline/digits/cler/generated", "headline/digits/cler/generated/DT", "headline/digits/zero_shot",
            "headline/usd_per_image/generated", "headline/usd_total"]
    value = headline_view(keys, now_ms=1_700_000_000_000)
    envelope = json.loads(value)
    assert envelope["name"] == HEADLINE_VIEW_NAME and envelope["createdAt"] == 1_700_000_000_000
    view = ui_reads_shared_view(value)
    metrics = ["metrics.`headline/digits/cler/generated`", "metrics.`headline/digits/zero_shot`",
               "metrics.`headline/usd_per_image/generated`", "metrics.`headline/usd_total`"]
    assert view["selectedColumns"] == ["attributes.`Dataset`"] + metrics
    assert view["columnOrder"][-len(metrics):] == metrics and "attributes.`Run Name`" in view["columnOrder"]
    assert view["columnWidths"]["metrics.`headline/usd_total`"] == 8 * len("headline/usd_total") + 16
    assert set(view) == {"selectedColumns", "columnOrder", "columnWidths"}


def test_dataset_inputs_carry_the_manifests_digest_and_row_count(tmp_path):
    folder = tmp_path / "data" / "digits" / "generated"
    folder.mkdir(parents=True)
    pd.DataFrame({"path": ["a.png", "b.png", "c.png"]}).to_parquet(folder / "manifest.parquet")
    (inp,) = dataset_inputs(tmp_path, "digits")
    assert inp.dataset.name == "digits/generated"
    assert inp.dataset.digest == hashlib.sha256((folder / "manifest.parquet").read_bytes()).hexdigest()[:16]
    assert json.loads(inp.dataset.profile) == {"num_rows": 3}
    assert inp.dataset.source == "data/digits/generated/manifest.parquet"
    assert dataset_inputs(tmp_path, "other") == []
