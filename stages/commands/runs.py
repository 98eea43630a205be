"""`genbench runs compare A B`: the differences of two pipeline runs, in the terminal.

A and B name parent runs of one experiment (a pipeline execution each, see stages/frame/tracking.py):
by run id, by a unique prefix of it, or by run name (the DVC experiment name when there was one;
the newest run of that name wins). The command prints the params that differ, then every stage's
metrics side by side with B - A, stage by stage (child runs matched by name, e.g. cler@digits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from genbench.errors import GenBenchError
from stages.frame.options import params_option
from stages.frame.params import read_params_file
from stages.frame.tracking import KIND_TAG, STAGE_TAG, experiment_name, tracking_uri

SYSTEM_PREFIX = "system/"


@dataclass
class PipelineRun:
    """A parent run with its children keyed by run name (the newest child of each name)."""

    run: object
    children: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.info.run_name

    def params(self) -> dict[str, str]:
        """The parent's `<stage>.<key>` params, completed from the children's for older runs."""
        out = dict(self.run.data.params)
        for child in self.children.values():
            stage = child.data.tags.get(STAGE_TAG, child.info.run_name.split("@")[0])
            for key, value in child.data.params.items():
                out.setdefault(f"{stage}.{key}", value)
        return out


def _client(uri: str):
    from stages.frame.mlflow_store import GuardedClient

    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise GenBenchError(f"no MLflow store at {path}; run the pipeline first (dvc repro) or pass "
                                "--tracking-uri / set MLFLOW_TRACKING_URI")
    return GuardedClient(uri)


def pipeline_runs(client, experiment_id: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'pipeline'",
                              order_by=["attributes.start_time DESC"], max_results=5000)


def resolve_run(client, experiment_id: str, ref: str) -> PipelineRun:
    """The pipeline run `ref` names: a run id, a unique id prefix (6+ characters) or a run name."""
    parents = pipeline_runs(client, experiment_id)
    matches = [r for r in parents if r.info.run_id == ref]
    matches = matches or [r for r in parents if r.info.run_name == ref]
    if not matches and len(ref) >= 6:
        matches = [r for r in parents if r.info.run_id.startswith(ref)]
        if len(matches) > 1:
            raise GenBenchError(f"run id prefix {ref!r} matches {len(matches)} pipeline runs; give more characters")
    if not matches:
        known = ", ".join(f"{r.info.run_name} ({r.info.run_id[:8]})" for r in parents[:10]) or "none"
        raise GenBenchError(f"no pipeline run {ref!r} in this experiment; newest runs: {known}")
    run = matches[0]
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=5000)
    return PipelineRun(run, {child.info.run_name: child for child in children})


def resolve_exp(client, experiment_id: str, exp_name: str) -> PipelineRun:
    """The newest pipeline run of the DVC experiment `exp_name` (its parent run's `dvc_exp_name` tag)."""
    found = [r for r in pipeline_runs(client, experiment_id) if r.data.tags.get("dvc_exp_name") == exp_name]
    if not found:
        raise GenBenchError(f"no pipeline run of DVC experiment {exp_name!r} in this experiment; "
                            "run it with `dvc exp run -n NAME` (dvc exp show lists the names)")
    return resolve_run(client, experiment_id, found[0].info.run_id)


def param_differences(a: PipelineRun, b: PipelineRun, *, show_all: bool = False) -> list[tuple[str, str, str]]:
    pa, pb = a.params(), b.params()
    rows = [(k, pa.get(k, "-"), pb.get(k, "-")) for k in sorted(set(pa) | set(pb))]
    return rows if show_all else [r for r in rows if r[1] != r[2]]


def metric_rows(a: PipelineRun, b: PipelineRun, *, show_all: bool = False) -> dict[str, list[tuple]]:
    """{child run name: [(metric, value in A or None, value in B or None, B - A or None)]}."""
    out = {}
    for name in sorted(set(a.children) | set(b.children)):
        ma = a.children[name].data.metrics if name in a.children else {}
        mb = b.children[name].data.metrics if name in b.children else {}
        keys = sorted(k for k in set(ma) | set(mb) if show_all or not k.startswith(SYSTEM_PREFIX))
        out[name] = [(k, ma.get(k), mb.get(k), mb[k] - ma[k] if k in ma and k in mb else None) for k in keys]
    return out


def _num(value, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def format_comparison(a: PipelineRun, b: PipelineRun, *, show_all: bool = False) -> str:
    lines = []
    for label, run in (("A", a), ("B", b)):
        tags = run.run.data.tags
        lines.append(f"{label}: {run.name}  id {run.run.info.run_id}  status {run.run.info.status}  "
                     f"commit {tags.get('git_commit', '?')[:12]}  dvc.lock {tags.get('dvc_lock_sha256', '?')[:12]}  "
                     f"stages {len(run.children)}")
    params = param_differences(a, b, show_all=show_all)
    lines += ["", "params" + ("" if show_all else " that differ") + ":"]
    if params:
        width = max(len(k) for k, _, _ in params)
        lines += [f"  {k:<{width}}  A: {va}  B: {vb}" for k, va, vb in params]
    else:
        lines.append("  (none)")
    lines += ["", "metrics per stage (B - A):"]
    for stage, rows in metric_rows(a, b, show_all=show_all).items():
        where = "" if stage in a.children and stage in b.children else ("  (only in A)" if stage in a.children
                                                                         else "  (only in B)")
        lines.append(f"  {stage}{where}")
        if not rows:
            continue
        width = max(len(k) for k, *_ in rows)
        lines.append(f"    {'metric':<{width}}  {'A':>12}  {'B':>12}  {'B - A':>12}")
        lines += [f"    {k:<{width}}  {_num(va):>12}  {_num(vb):>12}  {_num(d, signed=True):>12}" for k, va, vb, d in rows]
    return "\n".join(lines)


@click.group("runs")
def command() -> None:
    """Pipeline runs tracked in MLflow (one parent run per `dvc repro`)."""


@command.command("compare")
@click.argument("runs", nargs=-1)
@click.option("--exp", "exps", multiple=True, metavar="NAME",
              help="A DVC experiment's name (dvc exp run -n NAME); its newest pipeline run is compared. Repeatable.")
@click.option("--experiment", default=None,
              help="MLflow experiment [default: MLFLOW_EXPERIMENT_NAME, else genbench-<profile of --params>].")
@click.option("--tracking-uri", "uri", default=None, help="MLflow tracking URI [default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].")
@click.option("--all", "show_all", is_flag=True, help="Also list equal params and the system/ metrics.")
@params_option
def compare_command(runs: tuple[str, ...], exps: tuple[str, ...], experiment: str | None, uri: str | None, show_all: bool,
                    params_file: str) -> None:
    """Print what differs between two pipeline runs: RUNS (run ids, id prefixes or run names) and
    --exp NAME (DVC experiments by name), two in all, e.g. `--exp g3 --exp g4` or `--exp g3 RUN`."""
    if len(runs) + len(exps) != 2:
        raise GenBenchError(f"compare takes two runs in all (RUN arguments and --exp NAME); got {len(runs) + len(exps)}")
    uri = uri or tracking_uri()
    if experiment is None:
        profile = read_params_file(params_file).get("profile", "embedded") if Path(params_file).is_file() else "embedded"
        experiment = experiment_name(profile)
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise GenBenchError(f"no MLflow experiment {experiment!r} at {uri}; experiments: {names} (pass --experiment)")
    a, b = ([resolve_exp(client, exp.experiment_id, name) for name in exps]
            + [resolve_run(client, exp.experiment_id, ref) for ref in runs])
    click.echo(f"experiment {experiment} at {uri}")
    click.echo(format_comparison(a, b, show_all=show_all))
