"""Which candidates of a filtered strategy (CF, RF or both) the manifest keeps.

The plan makes `ceil(n * (1 + generate.cf_oversample))` candidates per class for every filtered
strategy; each candidate's row carries the score of each of its filters, written by the shard
workers. Per class, `select_passing` keeps, in index order, the first n candidates that pass
every filter of the strategy. With `fill`, a class short of n is filled with its best remaining
candidates: those passing more of the filters first, then by RF own share, then by CF
confidence (the own share takes few values, so confidence orders the images within one share),
then by index. Every row comes back with `filter_status`: passed or filled (kept); surplus
(passed, beyond n) or the reasons of the filters it failed, joined by '+' (dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from genbench.strategies.real_filter import KEEP_SHARE

PASSED, FILLED, SURPLUS = "passed", "filled", "surplus"
STATUS = "filter_status"


@dataclass(frozen=True)
class FilterRule:
    """One filter part: the row field holding its score, its pass test, the reason a failure records."""

    field: str
    passes: Callable[[float], bool]
    reason: str


def filter_rules(cf_threshold: float) -> dict[str, FilterRule]:
    """Filter part -> its rule, in fill order: RF (own share >= 1/2), CF (confidence > threshold, strict as He et al.)."""
    return {
        "RF": FilterRule("rf_own_share", lambda v: v >= KEEP_SHARE, "real_filter"),
        "CF": FilterRule("cf_confidence", lambda v: v > cf_threshold, "below_threshold"),
    }


def _failed(row: Mapping, rules: Sequence[FilterRule]) -> list[str]:
    return [r.reason for r in rules if not r.passes(row[r.field])]


def select_passing(candidates: list[dict], wanted: int, rules: Sequence[FilterRule], fill: bool) -> tuple[list[dict], list[dict]]:
    """Split one class's candidates (rows with 'index' and each rule's field) into (kept, dropped),
    each row copied with `filter_status` set; both come back in index order."""
    ordered = sorted(candidates, key=lambda r: r["index"])
    failed = {r["index"]: _failed(r, rules) for r in ordered}
    passing = [r for r in ordered if not failed[r["index"]]]
    kept = {r["index"]: PASSED for r in passing[:wanted]}
    if fill and len(kept) < wanted:
        rest = sorted((r for r in ordered if r["index"] not in kept),
                      key=lambda r: (len(failed[r["index"]]), *(-r[rule.field] for rule in rules), r["index"]))
        kept.update({r["index"]: FILLED for r in rest[: wanted - len(kept)]})
    out_kept, out_dropped = [], []
    for r in ordered:
        if r["index"] in kept:
            out_kept.append({**r, STATUS: kept[r["index"]]})
        else:
            out_dropped.append({**r, STATUS: "+".join(failed[r["index"]]) or SURPLUS})
    return out_kept, out_dropped
