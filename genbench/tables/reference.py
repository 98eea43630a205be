"""The paper's published tables (reports/reference/*.csv), read as the paper prints them, and
the mapping of the paper's dataset names to the kit's registry names."""

from __future__ import annotations

import csv
from pathlib import Path

from genbench.errors import GenBenchError

REFERENCE_FILES: dict[str, str] = {  # table key -> file in the reference directory
    "table2": "genbench_table2_cler_20shot.csv",
    "table3": "genbench_table3_textual_inversion_cler.csv",
    "table4": "genbench_table4_datasets.csv",
    "table5": "genbench_table5_cost.csv",
    "he2023_table1": "he2023_table1_zeroshot_synthetic.csv",
}


def read_reference(directory: str | Path, key: str) -> list[dict[str, str]]:
    """The rows of a published table as text cells, in the paper's order."""
    path = Path(directory) / REFERENCE_FILES[key]
    if not path.is_file():
        raise GenBenchError(f"published table {path} not found; copy it from the kit's reports/reference/ "
                            "or pass the reference directory that holds it")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def number(text: str | None) -> float | None:
    """A published cell as a float, None when the paper leaves it empty."""
    text = (text or "").strip()
    return float(text) if text else None


def registry_name(paper_name: str) -> str | None:
    """The kit's dataset name for a name the paper prints ('MNIST' -> 'mnist'), None if unknown."""
    from genbench.datasets import get_dataset

    try:
        return get_dataset(paper_name).name
    except GenBenchError:
        return None


def dataset_columns(header: list[str], skip: tuple[str, ...]) -> dict[str, str | None]:
    """Paper column name -> registry name, for the dataset columns of a published table."""
    return {name: registry_name(name) for name in header if name not in skip}
