"""Metadata of the 22 GenBench datasets, checked against the paper's Table 4 as transcribed in
reports/reference/ (an independent copy of the numbers), and the category total."""

import csv
import json
from pathlib import Path

import pytest

from genbench.datasets import DATASETS, GENBENCH, category_total, get_dataset
from genbench.datasets.label_sets import CLASSNAMES, TEMPLATES

REFERENCE = Path(__file__).resolve().parents[1] / "reports" / "reference"
TABLE4_ROWS = list(csv.DictReader((REFERENCE / "genbench_table4_datasets.csv").open()))
METRIC = {"Accuracy": "accuracy", "Mean Per Class": "mean_per_class", "11-point mAP": "map_11point", "ROC AUC": "roc_auc"}
TASK = {"Multi-Class": "multiclass", "Multi-Label": "multilabel"}
# Real label sets that differ from Table 4's column, each stated in the dataset's notes.
REAL_COUNT = {"FER-2013": 7, "Caltech-101": 102}


def test_table4_has_22_rows_and_each_resolves_to_one_registered_dataset():
    assert len(TABLE4_ROWS) == 22
    names = {get_dataset(row["dataset"]).name for row in TABLE4_ROWS}
    assert len(names) == 22
    assert names == {spec.name for spec in GENBENCH}
    assert set(DATASETS) >= names | {"digits"}


@pytest.mark.parametrize("row", TABLE4_ROWS, ids=lambda r: r["dataset"])
def test_group_metric_task_and_class_count_match_table4(row):
    spec = get_dataset(row["dataset"])
    assert spec.group == row["group"]
    assert spec.metric == METRIC[row["metric"]]
    assert spec.task == TASK[row["task_type"]]
    expected = REAL_COUNT.get(row["dataset"], int(row["num_categories"]))
    assert spec.num_classes == expected
    if expected != int(row["num_categories"]):
        assert "Table 4 says" in spec.notes
    assert spec.extra["paper_validation_size"] == int(row["validation_size"])


@pytest.mark.parametrize("spec", GENBENCH, ids=lambda s: s.name)
def test_templates_have_one_class_placeholder_and_class_names_are_real_strings(spec):
    assert spec.templates
    for template in spec.templates:
        assert template.count("{c}") == 1
        assert "zebra" in template.format(c="zebra")
    assert all(isinstance(c, str) and c.strip() == c and c for c in spec.classnames)
    repeated = {c for c in spec.classnames if spec.classnames.count(c) > 1}
    # CLIP's ImageNet names repeat two (projectile/missile, sunglass/sunglasses); nothing else repeats.
    assert repeated == ({"missile", "sunglasses"} if spec.name == "imagenet-1k" else set())
    json.dumps(spec.metadata())


def test_every_alias_is_unique_and_resolves_to_its_own_dataset():
    seen = {}
    for spec in DATASETS.values():
        for key in (spec.name, *spec.aliases):
            assert key.lower() not in seen, f"{key} of {spec.name} also names {seen.get(key.lower())}"
            seen[key.lower()] = spec.name
            assert get_dataset(key.upper()) is spec


def test_dataset_names_of_the_papers_result_tables_resolve():
    for table in ("genbench_table2_cler_20shot.csv", "genbench_table3_textual_inversion_cler.csv"):
        header = next(csv.reader((REFERENCE / table).open()))
        datasets = [h for h in header if h not in {"model", "strategy", "Mean", "ti_reference_data",
                                                   "ti_reference_shots", "generated_shots"}]
        assert datasets
        for name in datasets:
            get_dataset(name)


def test_category_total_against_the_papers_two_totals():
    by_hand = sum(len(names) for names in CLASSNAMES.values())
    table4_sum = sum(int(row["num_categories"]) for row in TABLE4_ROWS)
    total = category_total()
    assert total["datasets"] == 22
    assert total["total"] == by_hand == 2548
    assert total["table4_sum"] == table4_sum == 2542
    assert total["paper_text_total"] == 2548
    assert total["difference_from_paper_text"] == 0
    assert total["difference_from_table4_sum"] == 6  # FER-2013 +5, Caltech-101 +1
    assert total["differences"] == {"caltech-101": {"kit": 102, "table4": 101}, "fer-2013": {"kit": 7, "table4": 2}}


def test_label_sets_and_templates_cover_exactly_the_registered_datasets():
    assert set(CLASSNAMES) == set(TEMPLATES) == {spec.name for spec in GENBENCH}


def test_known_label_ids():
    assert get_dataset("cifar10").classnames[0] == "airplane"
    assert get_dataset("imagenet").classnames[0] == "tench"
    assert get_dataset("imagenet").classnames[999] == "toilet paper"
    assert get_dataset("gtsrb").classnames[14] == "stop"
    assert get_dataset("mnist").classnames == tuple("0123456789")
    assert get_dataset("pcam").classnames[1] == "lymph node containing metastatic tumor tissue"
    # FER-2013 csv emotion ids: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral
    assert get_dataset("fer2013").classnames == ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
    # EuroSAT's torchvision copy is an ImageFolder: labels follow the sorted folder names.
    folders = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
               "PermanentCrop", "Residential", "River", "SeaLake"]
    assert sorted(folders) == folders
    assert get_dataset("eurosat").classnames[2] == "brushland or shrubland"
    assert get_dataset("eurosat").classnames[9] == "lake or sea"
    # Caltech-101's sorted folders start BACKGROUND_Google, Faces, Faces_easy, Leopards, Motorbikes, accordion.
    assert get_dataset("caltech101").classnames[:6] == (
        "background", "off-center face", "centered face", "leopard", "motorbike", "accordion")
    # Oxford-IIIT Pet numbers the breeds in case-insensitive alphabetical order of their file prefixes.
    pets = get_dataset("pets").classnames
    assert [p.lower() for p in pets] == sorted(p.lower() for p in pets)


@pytest.mark.parametrize("name", ["cifar-100", "food-101", "dtd", "resisc-45", "sun-397", "voc-2007"])
def test_folder_sorted_datasets_list_classes_in_sorted_order(name):
    # torchvision numbers these classes by sorted folder (or file) name, written with '_' for ' '.
    raw = [c.replace(" ", "_") for c in get_dataset(name).classnames]
    assert raw == sorted(raw)


def test_multilabel_and_positive_class():
    assert get_dataset("VOC 2007").task == "multilabel"
    assert get_dataset("hateful memes").extra["positive_class"] == 1
    assert [s.name for s in GENBENCH if s.task == "multilabel"] == ["voc-2007"]
