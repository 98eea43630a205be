"""Metrics of GenBench: the per-dataset evaluation metrics, CLER and the zero-shot baseline,
distribution distances (Frechet distance in feature space, proxy-A distance), CLIP score, mean
text similarity, correlations across runs, and a timing helper. Inputs may be numpy arrays or
torch tensors; results are plain Python floats (scores in percent)."""

from genbench.metrics.cler import class_prototypes, cler, label_agreement, zero_shot
from genbench.metrics.clip_score import clip_score
from genbench.metrics.correlation import correlations
from genbench.metrics.distribution import frechet_distance, proxy_a_distance
from genbench.metrics.evaluation import METRIC_FUNCTIONS, evaluate
from genbench.metrics.text_similarity import mean_text_similarity, per_class_text_similarity
from genbench.metrics.timing import timed

__all__ = [
    "METRIC_FUNCTIONS",
    "class_prototypes",
    "cler",
    "clip_score",
    "correlations",
    "evaluate",
    "frechet_distance",
    "label_agreement",
    "mean_text_similarity",
    "per_class_text_similarity",
    "proxy_a_distance",
    "timed",
    "zero_shot",
]
