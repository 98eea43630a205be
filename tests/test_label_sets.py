"""The label sets and templates read from package data (genbench/datasets/data/*.json) by
`label_sets.load_table`: entries and counts checked against values written out by hand (from the
CLIP prompts the tables were transcribed from), and the files shipped with the package."""

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from genbench.datasets import label_sets
from genbench.datasets.label_sets import CLASSNAMES, FER_SYNONYMS, TEMPLATES, load_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "genbench" / "datasets" / "data"


def test_counts_of_classes_and_templates():
    assert len(CLASSNAMES) == len(TEMPLATES) == 22
    assert sum(len(names) for names in CLASSNAMES.values()) == 2548
    assert sum(len(t) for t in TEMPLATES.values()) == 214
    assert {k: len(v) for k, v in TEMPLATES.items() if len(v) > 8} == {
        "imagenet-1k": 80, "cifar-10": 18, "cifar-100": 18, "caltech-101": 34, "resisc-45": 18}
    assert len(CLASSNAMES["imagenet-1k"]) == 1000 and len(CLASSNAMES["caltech-101"]) == 102


def test_hand_picked_entries():
    imagenet = CLASSNAMES["imagenet-1k"]
    assert imagenet[:3] == ("tench", "goldfish", "great white shark")
    assert imagenet[500] == "cliff dwelling"
    assert [i for i, name in enumerate(imagenet) if name in {"missile", "sunglasses"}] == [657, 744, 836, 837]
    assert CLASSNAMES["caltech-101"][0] == "background"
    assert CLASSNAMES["country-211"][-1] == "Zimbabwe"
    assert CLASSNAMES["stanford-cars"][0] == "AM General Hummer SUV 2000"
    assert CLASSNAMES["fgvc-aircraft"][0] == "707-320"
    assert CLASSNAMES["voc-2007"][:3] == ("aeroplane", "bicycle", "bird")
    assert CLASSNAMES["kitti-distance"][-1] == "a photo i took with no car."
    assert TEMPLATES["mnist"] == ('a photo of the number: "{c}".',)
    assert TEMPLATES["imagenet-1k"][0] == "a bad photo of a {c}."
    assert TEMPLATES["kitti-distance"] == ("{c}",)
    assert [names[0] for names in FER_SYNONYMS] == list(CLASSNAMES["fer-2013"])


def test_tables_are_tuples_in_the_files_order():
    raw = json.loads((DATA / "classnames.json").read_text(encoding="utf-8"))
    assert list(CLASSNAMES) == list(raw)
    assert all(type(v) is tuple for v in (*CLASSNAMES.values(), *TEMPLATES.values()))
    assert load_table("templates") == TEMPLATES


def test_data_files_are_package_data():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = package_data["genbench.datasets"]
    files = sorted(p.relative_to(DATA.parent).as_posix() for p in DATA.glob("*.json"))
    assert files == ["data/classnames.json", "data/templates.json"]
    assert all(any(fnmatch(f, g) for g in globs) for f in files)
    assert Path(label_sets.__file__).parent / "data" == DATA
