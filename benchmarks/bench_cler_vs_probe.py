"""Wall time of CLER versus the linear probe on the same features (GenBench Figure 5, in small).

Random class-structured features of the embedded default's shape stand in for CLIP features:
the timings depend on the shapes, not on the values. When the pipeline has embedded a dataset
(default: data/digits/features, the embedded default), the same comparison also runs on its real
generated and test features. Each method gets warm-up calls, then timed repeats (CUDA
synchronised); the script prints the median and spread of each, the probe/CLER ratio, and the
machine it ran on.

    python benchmarks/bench_cler_vs_probe.py                      # 10 classes, 160 train, 540 test, 64 dims
    python benchmarks/bench_cler_vs_probe.py --dim 512 --train 1000
    python benchmarks/bench_cler_vs_probe.py --blas-threads 1     # numpy BLAS on one thread
    python benchmarks/bench_cler_vs_probe.py --features data/pets/features   # another dataset's features
    python benchmarks/bench_cler_vs_probe.py --features ""        # random features only

On a busy machine a multi-threaded BLAS can make CLER's small matrix products tens of times
slower (threads wait for cores); --blas-threads shows that effect. The probe picks its own torch
thread count (see genbench.probe.SMALL_PROBLEM_SIZE).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from genbench.features import load_features
from genbench.metrics import cler, timed
from genbench.probe import linear_probe


def class_features(rows: int, classes: int, dims: int, rng: np.random.Generator, centers: np.ndarray):
    labels = rng.permutation(np.arange(rows) % classes)
    return centers[labels] + rng.normal(size=(rows, dims)), labels


def cpu_name() -> str:
    """platform.processor(), or the Linux model name when that is empty."""
    name = platform.processor()
    if name and name != platform.machine():
        return name
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    except OSError:
        models = []
    return models[0] if models else name or platform.machine()


def describe(seconds: list[float]) -> str:
    quartiles = np.percentile(seconds, [25, 75])
    return (f"median {statistics.median(seconds) * 1e3:9.3f} ms  "
            f"IQR {quartiles[0] * 1e3:.3f}-{quartiles[1] * 1e3:.3f} ms  (n={len(seconds)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train", type=int, default=160, help="external (generated) images, all classes")
    parser.add_argument("--test", type=int, default=540)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="probe device (default: cuda if available, else cpu)")
    parser.add_argument("--blas-threads", type=int, default=None, help="numpy BLAS threads (default: unchanged)")
    parser.add_argument("--features", default="data/digits/features",
                        help="a features folder of the pipeline (generated and test .safetensors) to time as well; "
                             "'' for none (default: the embedded default's, when it exists)")
    args = parser.parse_args()
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        random_set = random_features(args)
        print(f"random features: {args.classes} classes, {args.train} train, {args.test} test, {args.dim} dims")
        compare(args, *random_set, num_classes=args.classes, show_machine=True)
        real, skipped = pipeline_features(Path(args.features)) if args.features else (None, None)
        if skipped:
            print(f"real features: skipped, {skipped}")
        elif real is not None:
            train_feats, train_labels, test_feats, test_labels = real
            classes = int(max(train_labels.max(), test_labels.max())) + 1
            print(f"real features ({args.features}): {classes} classes, {len(train_feats)} generated, "
                  f"{len(test_feats)} test, {train_feats.shape[1]} dims")
            compare(args, *real, num_classes=classes)


def random_features(args: argparse.Namespace):
    rng = np.random.default_rng(args.seed)
    centers = rng.normal(size=(args.classes, args.dim)) * 3 / np.sqrt(args.dim)  # same overlap at any dim
    train_feats, train_labels = class_features(args.train, args.classes, args.dim, rng, centers)
    test_feats, test_labels = class_features(args.test, args.classes, args.dim, rng, centers)
    return train_feats, train_labels, test_feats, test_labels


def pipeline_features(directory: Path):
    """((generated feats, labels, test feats, labels), None) of a pipeline features folder, or
    (None, why not): single-label sets only (the quality stage times the multi-label ones)."""
    files = [directory / "generated.safetensors", directory / "test.safetensors"]
    if not all(f.is_file() for f in files):
        return None, f"no generated and test features in {directory} (run `dvc repro embed@<dataset>` first)"
    (train_feats, train_labels, _), (test_feats, test_labels, _) = (load_features(f) for f in files)
    if test_labels.ndim != 1:
        return None, f"{directory} has a multi-label test set"
    return (train_feats, train_labels, test_feats, test_labels), None


def compare(args: argparse.Namespace, train_feats, train_labels, test_feats, test_labels, *, num_classes: int,
            show_machine: bool = False) -> None:
    cler_result, cler_seconds = timed(cler, train_feats, train_labels, test_feats, test_labels,
                                      num_classes=num_classes, repeats=args.repeats, warmup=args.warmup)
    probe_result, probe_seconds = timed(linear_probe, train_feats, train_labels, test_feats, test_labels, num_classes=num_classes,
                                        seed=args.seed, device=args.device, repeats=args.repeats, warmup=args.warmup)
    if show_machine:
        print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"BLAS threads {[pool['num_threads'] for pool in threadpool_info() if pool['user_api'] == 'blas']}, "
              f"probe device {probe_result['device']}; warm-up {args.warmup}, repeats {args.repeats}")
    print(f"CLER          {describe(cler_seconds)}  score {cler_result['cler']:.2f}")
    print(f"linear probe  {describe(probe_seconds)}  score {probe_result['score']:.2f} "
          f"(l2 {probe_result['l2']:.1e} from {len(probe_result['l2_grid'])} on validation)")
    print(f"probe / CLER  {statistics.median(probe_seconds) / statistics.median(cler_seconds):.0f}x")


if __name__ == "__main__":
    main()
