"""Stand-in copies in the layouts of data a user downloads by hand (ImageNet's unpacked devkit
and images are in torchvision_layouts; here FER-2013's csv, RESISC-45's folders, Hateful Memes'
jsonl files) and of a local copy of a CLIP benchmark WebDataset mirror. Same writer contract as
torchvision_layouts."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

from genbench.rehearsal.plan import Plan
from genbench.rehearsal.torchvision_layouts import class_folders, underscored

FER_SIZE = 48  # the csv holds 48x48 greyscale faces
FER_TEST_USAGES = ("PublicTest", "PrivateTest")


def fer2013(plan: Plan, top: Path) -> None:
    """fer2013/fer2013.csv: emotion,pixels,Usage (Training; PublicTest and PrivateTest alternate for test)."""
    top.mkdir(parents=True, exist_ok=True)
    with open(top / "fer2013.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for split in ("train", "test"):
            for n, (k, _) in enumerate(plan.items(split)):
                usage = "Training" if split == "train" else FER_TEST_USAGES[n % 2]
                writer.writerow([k, " ".join(map(str, plan.painter.grey(k, FER_SIZE).reshape(-1).tolist())), usage])
                plan.count_arrays(1)


def resisc45(plan: Plan, top: Path) -> None:
    """NWPU-RESISC45/<class>/<class>_001.jpg (train and test together: the reader splits)."""
    class_folders(plan, top, [underscored(c) for c in plan.classnames], stem="{folder}_{n:03d}.jpg")


def hateful_memes(plan: Plan, top: Path) -> None:
    """hateful_memes/{train,dev_seen}.jsonl ({"id", "img", "label", "text"}) and hateful_memes/img/*.png."""
    number = 10000
    for split, listing in (("train", "train.jsonl"), ("test", "dev_seen.jsonl")):
        lines = []
        for k, i in plan.items(split):
            number += 1
            image = f"img/{number:05d}.png"
            plan.write_image(top / image, plan.painter.rgb(k, plan.size), "PNG")
            lines.append(json.dumps({"id": number, "img": image, "label": k, "text": f"stand-in meme {number}"}) + "\n")
        (top / listing).write_text("".join(lines))


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(payload), 0
    tar.addfile(info, io.BytesIO(payload))


def webdataset_mirror(plan: Plan, top: Path) -> None:
    """A local copy of clip-benchmark/wds_<name>: {train,test}/0.tar (s<n>.webp + s<n>.cls per
    sample) with nshards.txt, classnames.txt and zeroshot_classification_templates.txt."""
    from genbench.rehearsal.painter import encode

    top.mkdir(parents=True, exist_ok=True)
    (top / "classnames.txt").write_text("".join(c + "\n" for c in plan.classnames))
    (top / "zeroshot_classification_templates.txt").write_text("".join(t + "\n" for t in plan.templates))
    for split in ("train", "test"):
        (top / split).mkdir(parents=True, exist_ok=True)
        with tarfile.open(top / split / "0.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for n, (k, _) in enumerate(plan.items(split)):
                _add(tar, f"s{n:07d}.webp", encode(plan.painter.rgb(k, plan.size), "WEBP"))
                _add(tar, f"s{n:07d}.cls", str(k).encode())
                plan.count_arrays(1)
        (top / split / "nshards.txt").write_text("1\n")
