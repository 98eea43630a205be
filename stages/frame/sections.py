"""Params sections that more than one stage reads (cler's ranking, the probe's protocol, read again
by tune and frontier): their schemas live in the frame, so that no stage imports another."""

from __future__ import annotations

from genbench.metrics.evaluation import RANKING_SCORES
from genbench.probe import PROTOCOLS, RENAMED_PROTOCOLS
from stages.frame.params import Field, fraction, non_negative, positive

CLER_SCHEMA = {
    "timing_repeats": Field(int, 3, positive, help="timed repeats per metric (Figure 5)"),
    "ranking": Field(str, "softmax", choices=RANKING_SCORES,
                     help="scores 11-point mAP and ROC AUC rank by: softmax (released code) | cosine"),
}


def protocol_check(value: str) -> str | None:
    if value in RENAMED_PROTOCOLS:
        return f"was renamed {RENAMED_PROTOCOLS[value]!r} (it chooses L2 on the test set; ELEVATER's toolkit does not, docs/metrics.md)"
    return None


PROBE_SCHEMA = {
    "val_fraction": Field(float, 0.2, fraction),
    "seed": Field(int, 0, non_negative),
    "protocol": Field(str, "clean", protocol_check, choices=PROTOCOLS, help="clean (L2 on validation) | l2-on-test (selects on test; labelled so)"),
}
