"""A tiny PASCAL VOC 2007 in the layout torchvision's VOCDetection reads (what the kit's
torchvision source opens with year='2007', image_set='trainval' or 'test'):

    VOCdevkit/VOC2007/Annotations/<id>.xml        objects: name, pose, truncated, difficult, bndbox
    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/ImageSets/Main/{trainval,test}.txt

Image i of class c shows class c's colour on its left half; every second image also holds an
object of class c+1 (colour on the right half), and every third one a `difficult` object of
class c+2 that does not count. So labels are multi-hot and every class has positives in both
splits.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from genbench.datasets import get_dataset


def colour(k: int) -> tuple[int, int, int]:
    return ((37 * k + 20) % 256, (91 * k + 150) % 256, (53 * k + 80) % 256)


def voc_xml(stem: str, objects: list[tuple[str, int]]) -> str:
    parts = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
        for name, d in objects
    )
    return (f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename><size><width>48</width>"
            f"<height>40</height><depth>3</depth></size><segmented>0</segmented>{parts}</annotation>")


def jpeg(left, right) -> bytes:
    pixels = np.zeros((40, 48, 3), dtype=np.uint8)
    pixels[:, :24], pixels[:, 24:] = left, right
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_voc2007(root: Path, *, train_per_class: int = 3, test_per_class: int = 2) -> dict[str, np.ndarray]:
    """Write the layout under `root` (the kit's data root); returns the multi-hot labels (N, 20)
    of each split in the order of its ImageSets file, by the rule of the module docstring."""
    names = get_dataset("voc-2007").classnames
    voc = Path(root) / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    expected = {}
    number = 0
    for split, per_class in (("trainval", train_per_class), ("test", test_per_class)):
        stems, rows = [], []
        for c in range(len(names)):
            for i in range(per_class):
                number += 1
                stem = f"{number:06d}"
                row = np.zeros(len(names), dtype=np.int64)
                objects, row[c] = [(names[c], 0)], 1
                second = (c + 1) % len(names)
                if i % 2 == 1:
                    objects.append((names[second], 0))
                    row[second] = 1
                if i % 3 == 2:
                    objects.append((names[(c + 2) % len(names)], 1))
                (voc / "Annotations" / f"{stem}.xml").write_text(voc_xml(stem, objects))
                right = colour(second) if i % 2 == 1 else colour(c)
                (voc / "JPEGImages" / f"{stem}.jpg").write_bytes(jpeg(colour(c), right))
                stems.append(stem)
                rows.append(row)
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")
        expected["train" if split == "trainval" else "test"] = np.stack(rows)
    return expected
