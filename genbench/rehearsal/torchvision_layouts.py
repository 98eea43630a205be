"""Stand-in copies in the layouts torchvision's dataset classes read (what their download leaves
on disk), one writer per dataset. A writer fills `top`, the dataset's folder below the data root,
and returns the per-class label counts of each split when they are not `plan.per_split` for
every class (VOC's multi-hot positives), else None.

Folder and file names follow the real releases; where a release's names cannot be derived from
the registry's class names, names of the same shape are used that sort in label order (ImageNet
wnids when timm's synset list is not installed, Country-211's two-letter codes)."""

from __future__ import annotations

import csv
import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np

from genbench.rehearsal.plan import Plan

CIFAR_SIZE = 32  # the batch format stores 32x32 images

CALTECH101_FOLDERS = (
    "BACKGROUND_Google Faces Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel bass beaver "
    "binocular bonsai brain brontosaurus buddha butterfly camera cannon car_side ceiling_fan cellphone chair "
    "chandelier cougar_body cougar_face crab crayfish crocodile crocodile_head cup dalmatian dollar_bill dolphin "
    "dragonfly electric_guitar elephant emu euphonium ewer ferry flamingo flamingo_head garfield gerenuk gramophone "
    "grand_piano hawksbill headphone hedgehog helicopter ibis inline_skate joshua_tree kangaroo ketch lamp laptop "
    "llama lobster lotus mandolin mayfly menorah metronome minaret nautilus octopus okapi pagoda panda pigeon pizza "
    "platypus pyramid revolver rhino rooster saxophone schooner scissors scorpion sea_horse snoopy soccer_ball "
    "stapler starfish stegosaurus stop_sign strawberry sunflower tick trilobite umbrella watch water_lilly "
    "wheelchair wild_cat windsor_chair wrench yin_yang"
).split()
EUROSAT_FOLDERS = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")
PET_CATS = {"Abyssinian", "Bengal", "Birman", "Bombay", "British Shorthair", "Egyptian Mau", "Maine Coon", "Persian",
            "Ragdoll", "Russian Blue", "Siamese", "Sphynx"}  # file prefixes capitalised, species 1
VOC_SECOND_CLASS_EVERY = 2  # every 2nd VOC image also holds the next class
VOC_DIFFICULT_EVERY = 3     # every 3rd VOC image also holds a difficult object of another class


def underscored(name: str) -> str:
    return name.replace(" ", "_")


def sortable_codes(n: int) -> list[str]:
    """n two-letter upper-case codes in sorted order (AA, AB, ...)."""
    return [chr(65 + i // 26) + chr(65 + i % 26) for i in range(n)]


def imagenet_wnids(n: int) -> list[str]:
    """The 1,000 ILSVRC-2012 wnids in label order (timm ships the list), else n ids of their shape."""
    spec = importlib.util.find_spec("timm")
    wnids = []
    if spec is not None and spec.submodule_search_locations:
        listing = Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / "imagenet_synsets.txt"
        wnids = listing.read_text().split() if listing.is_file() else []
    return wnids if len(wnids) == n and wnids == sorted(wnids) else [f"n{i:08d}" for i in range(n)]


def imagenet(plan: Plan, top: Path) -> None:
    """ImageNet as torchvision.datasets.ImageNet leaves it after unpacking: meta.bin, train/<wnid>/,
    val/<wnid>/."""
    import torch

    wnids = imagenet_wnids(plan.num_classes)
    val_wnids = []
    for split, folder in (("train", "train"), ("test", "val")):
        for k, i in plan.items(split):
            if split == "train":
                name = f"{wnids[k]}_{i + 1}.JPEG"
            else:
                val_wnids.append(wnids[k])
                name = f"ILSVRC2012_val_{len(val_wnids):08d}.JPEG"
            plan.write_image(top / folder / wnids[k] / name, plan.painter.rgb(k, plan.size))
    top.mkdir(parents=True, exist_ok=True)
    torch.save(({w: (c,) for w, c in zip(wnids, plan.classnames)}, val_wnids), top / "meta.bin")


def _cifar_batch(plan: Plan, labels: list[int], label_key: str, tag: str) -> dict:
    data = np.stack([plan.painter.rgb(k, CIFAR_SIZE).transpose(2, 0, 1).reshape(-1) for k in labels])
    plan.count_arrays(len(labels))
    return {"batch_label": tag, label_key: list(labels), "data": data,
            "filenames": [f"standin_{tag.replace(' ', '_')}_{i}.png" for i in range(len(labels))]}


def _pickle(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def cifar10(plan: Plan, top: Path) -> None:
    """cifar-10-batches-py/: data_batch_1..5 (the training images dealt out), test_batch, batches.meta."""
    top.mkdir(parents=True, exist_ok=True)
    train = plan.labels("train")
    for b in range(5):
        _pickle(top / f"data_batch_{b + 1}", _cifar_batch(plan, train[b::5], "labels", f"training batch {b + 1} of 5"))
    _pickle(top / "test_batch", _cifar_batch(plan, plan.labels("test"), "labels", "testing batch 1 of 1"))
    _pickle(top / "batches.meta", {"label_names": list(plan.classnames), "num_cases_per_batch": len(train[0::5]),
                                   "num_vis": 3 * CIFAR_SIZE * CIFAR_SIZE})


def cifar100(plan: Plan, top: Path) -> None:
    """cifar-100-python/: train, test, meta (fine labels only; torchvision reads no coarse labels)."""
    top.mkdir(parents=True, exist_ok=True)
    _pickle(top / "train", _cifar_batch(plan, plan.labels("train"), "fine_labels", "training batch 1 of 1"))
    _pickle(top / "test", _cifar_batch(plan, plan.labels("test"), "fine_labels", "testing batch 1 of 1"))
    _pickle(top / "meta", {"fine_label_names": [underscored(c) for c in plan.classnames]})


def _idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0800 | array.ndim
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def mnist(plan: Plan, top: Path) -> None:
    """MNIST/raw/: the four idx files (images idx3, labels idx1), uncompressed."""
    raw = top / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        labels = plan.labels(split)
        _idx(raw / f"{prefix}-images-idx3-ubyte", np.stack([plan.painter.grey(k, plan.size) for k in labels]))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.asarray(labels, dtype=np.uint8))
        plan.count_arrays(len(labels))


def _voc_xml(stem: str, size: int, objects: list[tuple[str, int]]) -> str:
    parts = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{size}</xmax><ymax>{size}</ymax></bndbox></object>"
        for name, difficult in objects
    )
    return (f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename>"
            "<source><database>GenBench stand-in</database></source>"
            f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size><segmented>0</segmented>"
            f"{parts}</annotation>\n")


def voc2007(plan: Plan, top: Path) -> dict[str, list[int]]:
    """VOCdevkit/VOC2007/: Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{trainval,test}.txt.
    Each image has one object of its class; every 2nd also one of the next class (two labels),
    every 3rd also a difficult object of the class after that (not a label)."""
    voc = top / "VOC2007"
    (voc / "Annotations").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    n, number = plan.num_classes, 0
    positives = {}
    for split, image_set in (("train", "trainval"), ("test", "test")):
        stems, counts = [], [0] * n
        for k, _ in plan.items(split):
            number += 1
            stem = f"{number:06d}"
            present = [k] + ([(k + 1) % n] if number % VOC_SECOND_CLASS_EVERY == 0 else [])
            objects = [(plan.classnames[c], 0) for c in present]
            if number % VOC_DIFFICULT_EVERY == 0:
                objects.append((plan.classnames[(k + 2) % n], 1))
            for c in present:
                counts[c] += 1
            (voc / "Annotations" / f"{stem}.xml").write_text(_voc_xml(stem, plan.size, objects))
            plan.write_image(voc / "JPEGImages" / f"{stem}.jpg", plan.painter.bands(present, plan.size))
            stems.append(stem)
        (voc / "ImageSets" / "Main" / f"{image_set}.txt").write_text("".join(s + "\n" for s in stems))
        positives[split] = counts
    return positives


def class_folders(plan: Plan, base: Path, folders: list[str], stem: str = "image_{n:04d}.jpg") -> None:
    """`base/<folder of class k>/` holding all of class k's images (train and test together), for
    readers that split by a seeded per-class rule. Past `plan.distinct_per_class()` images a class's
    files are hard links to its earlier ones, in turn (a rule's surplus costs no encoding)."""
    total = plan.per_split["train"] + plan.per_split["test"]
    distinct = plan.distinct_per_class()
    for k, folder in enumerate(folders):
        paths = [base / folder / stem.format(n=n + 1, folder=folder) for n in range(total)]
        for n, path in enumerate(paths):
            if n < distinct:
                plan.write_image(path, plan.painter.rgb(k, plan.size))
            else:
                plan.link_image(path, paths[n % distinct])


def caltech101(plan: Plan, top: Path) -> None:
    """caltech101/101_ObjectCategories/<folder>/image_0001.jpg, the release's 102 folder names."""
    class_folders(plan, top / "101_ObjectCategories", list(CALTECH101_FOLDERS))


def sun397(plan: Plan, top: Path) -> None:
    """SUN397/ClassName.txt (/a/abbey, ...) and SUN397/<letter>/<name>/sun_*.jpg (sub-categories
    written with '_' for '/', which the kit's name matching treats alike)."""
    paths = [f"/{c[0].lower()}/{underscored(c)}" for c in plan.classnames]
    top.mkdir(parents=True, exist_ok=True)
    (top / "ClassName.txt").write_text("".join(p + "\n" for p in paths))
    class_folders(plan, top, [p[1:] for p in paths], stem="sun_{n:08d}.jpg")


def eurosat(plan: Plan, top: Path) -> None:
    """eurosat/2750/<ClassFolder>/<ClassFolder>_<n>.jpg."""
    class_folders(plan, top / "2750", list(EUROSAT_FOLDERS), stem="{folder}_{n}.jpg")


def food101(plan: Plan, top: Path) -> None:
    """food-101/meta/{train,test}.json and classes.txt, food-101/images/<class>/<id>.jpg."""
    folders = [underscored(c) for c in plan.classnames]
    (top / "meta").mkdir(parents=True, exist_ok=True)
    number = 0
    for split in ("train", "test"):
        listing = {f: [] for f in folders}
        for k, _ in plan.items(split):
            number += 1
            listing[folders[k]].append(f"{folders[k]}/{number}")
            plan.write_image(top / "images" / folders[k] / f"{number}.jpg", plan.painter.rgb(k, plan.size))
        (top / "meta" / f"{split}.json").write_text(json.dumps(listing))
    (top / "meta" / "classes.txt").write_text("".join(f + "\n" for f in folders))


def oxford_pets(plan: Plan, top: Path) -> None:
    """oxford-iiit-pet/annotations/{trainval,test}.txt ("<image id> <class id> <species> <breed id>",
    1-based) and oxford-iiit-pet/images/<image id>.jpg."""
    (top / "annotations").mkdir(parents=True, exist_ok=True)
    cats = [c in PET_CATS for c in plan.classnames]
    breed = [sum(1 for j in range(k + 1) if cats[j] == cats[k]) for k in range(plan.num_classes)]
    number = 0
    for split, listing in (("train", "trainval"), ("test", "test")):
        lines = []
        for k, _ in plan.items(split):
            number += 1
            name = underscored(plan.classnames[k])
            image_id = f"{name if cats[k] else name.lower()}_{number}"
            lines.append(f"{image_id} {k + 1} {1 if cats[k] else 2} {breed[k]}\n")
            plan.write_image(top / "images" / f"{image_id}.jpg", plan.painter.rgb(k, plan.size))
        (top / "annotations" / f"{listing}.txt").write_text("".join(lines))


def oxford_flowers(plan: Plan, top: Path) -> None:
    """flowers-102/jpg/image_00001.jpg, imagelabels.mat (1-based labels), setid.mat (trnid, valid,
    tstid; valid left empty, the kit reads train and test)."""
    from scipy.io import savemat

    ids, labels = {"train": [], "test": []}, []
    for split in ("train", "test"):
        for k, _ in plan.items(split):
            labels.append(k + 1)
            ids[split].append(len(labels))
            plan.write_image(top / "jpg" / f"image_{len(labels):05d}.jpg", plan.painter.rgb(k, plan.size))
    savemat(top / "imagelabels.mat", {"labels": np.asarray([labels], dtype=np.uint8)})
    savemat(top / "setid.mat", {"trnid": np.asarray([ids["train"]], dtype=np.uint16),
                                "valid": np.zeros((1, 0), dtype=np.uint16),
                                "tstid": np.asarray([ids["test"]], dtype=np.uint16)})


def _cars_annotations(fnames: list[str], classes: list[int], size: int) -> np.ndarray:
    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    table = np.empty((1, len(fnames)), dtype=[(f, "O") for f in fields])
    for j, (fname, cls) in enumerate(zip(fnames, classes)):
        table[0, j] = (np.uint8(1), np.uint8(1), np.uint16(size), np.uint16(size), np.uint8(cls), fname)
    return table


def stanford_cars(plan: Plan, top: Path) -> None:
    """stanford_cars/: devkit/cars_meta.mat and cars_train_annos.mat, cars_test_annos_withlabels.mat,
    cars_train/*.jpg, cars_test/*.jpg (annotation structs: bbox_x1..bbox_y2, class (1-based), fname)."""
    from scipy.io import savemat

    (top / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(top / "devkit" / "cars_meta.mat", {"class_names": np.asarray([list(plan.classnames)], dtype=object)})
    for split, folder, annos in (("train", "cars_train", top / "devkit" / "cars_train_annos.mat"),
                                 ("test", "cars_test", top / "cars_test_annos_withlabels.mat")):
        fnames, classes = [], []
        for k, _ in plan.items(split):
            fnames.append(f"{len(fnames) + 1:05d}.jpg")
            classes.append(k + 1)
            plan.write_image(top / folder / fnames[-1], plan.painter.rgb(k, plan.size))
        savemat(annos, {"annotations": _cars_annotations(fnames, classes, plan.size)})


def fgvc_aircraft(plan: Plan, top: Path) -> None:
    """fgvc-aircraft-2013b/data/: variants.txt, images_variant_{trainval,test}.txt ("<id> <variant>"),
    images/<id>.jpg."""
    data = top / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("".join(c + "\n" for c in plan.classnames))
    number = 1000000
    for split, listing in (("train", "trainval"), ("test", "test")):
        lines = []
        for k, _ in plan.items(split):
            number += 1
            lines.append(f"{number} {plan.classnames[k]}\n")
            plan.write_image(data / "images" / f"{number}.jpg", plan.painter.rgb(k, plan.size))
        (data / f"images_variant_{listing}.txt").write_text("".join(lines))


def split_folders(plan: Plan, top: Path, folders: list[str], split_dirs: dict[str, str], fmt: str = "JPEG",
                  suffix: str = "jpg") -> None:
    """`top/<split dir>/<folder of class k>/<n>.<suffix>` (an ImageFolder per split)."""
    number = 0
    for split, split_dir in split_dirs.items():
        for k, _ in plan.items(split):
            number += 1
            plan.write_image(top / split_dir / folders[k] / f"{number:06d}.{suffix}", plan.painter.rgb(k, plan.size), fmt)


def country211(plan: Plan, top: Path) -> None:
    """country211/{train,test}/<two-letter code>/*.jpg (no valid split: the kit reads train and test)."""
    split_folders(plan, top, sortable_codes(plan.num_classes), {"train": "train", "test": "test"})


def rendered_sst2(plan: Plan, top: Path) -> None:
    """rendered-sst2/{train,test}/{negative,positive}/*.png."""
    split_folders(plan, top, list(plan.classnames), {"train": "train", "test": "test"}, fmt="PNG", suffix="png")


def dtd(plan: Plan, top: Path) -> None:
    """dtd/dtd/images/<class>/<class>_0001.jpg and dtd/dtd/labels/{train1,val1,test1}.txt (val1 empty)."""
    data = top / "dtd"
    (data / "labels").mkdir(parents=True, exist_ok=True)
    folders = [underscored(c) for c in plan.classnames]
    number = 0
    (data / "labels" / "val1.txt").write_text("")
    for split in ("train", "test"):
        lines = []
        for k, _ in plan.items(split):
            number += 1
            name = f"{folders[k]}_{number:04d}.jpg"
            lines.append(f"{folders[k]}/{name}\n")
            plan.write_image(data / "images" / folders[k] / name, plan.painter.rgb(k, plan.size))
        (data / "labels" / f"{split}1.txt").write_text("".join(lines))


def gtsrb(plan: Plan, top: Path) -> None:
    """gtsrb/GTSRB/Training/<00000..00042>/*.ppm, gtsrb/GTSRB/Final_Test/Images/*.ppm and
    gtsrb/GT-final_test.csv (';'-separated, ClassId per test file)."""
    for k, i in plan.items("train"):
        plan.write_image(top / "GTSRB" / "Training" / f"{k:05d}" / f"00000_{i:05d}.ppm", plan.painter.rgb(k, plan.size), "PPM")
    rows = []
    for number, (k, _) in enumerate(plan.items("test")):
        name = f"{number:05d}.ppm"
        plan.write_image(top / "GTSRB" / "Final_Test" / "Images" / name, plan.painter.rgb(k, plan.size), "PPM")
        rows.append([name, plan.size, plan.size, 0, 0, plan.size - 1, plan.size - 1, k])
    with open(top / "GT-final_test.csv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"])
        writer.writerows(rows)


def patchcamelyon(plan: Plan, top: Path) -> None:
    """pcam/camelyonpatch_level_2_split_{train,test}_{x,y}.h5: x (N, S, S, 3) uint8, y (N, 1, 1, 1)."""
    import h5py

    top.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        labels = plan.labels(split)
        with h5py.File(top / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as fh:
            fh.create_dataset("x", data=np.stack([plan.painter.rgb(k, plan.size) for k in labels]))
        with h5py.File(top / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as fh:
            fh.create_dataset("y", data=np.asarray(labels, dtype=np.uint8).reshape(-1, 1, 1, 1))
        plan.count_arrays(len(labels))
