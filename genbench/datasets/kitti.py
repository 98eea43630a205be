"""KITTI closest-vehicle distance: the 4-class task of VTAB and the CLIP paper.

Definition (VTAB, `task_adaptation/data/kitti.py`, task `closest_vehicle_distance`): take the
objects of type Car, Van or Truck in a KITTI object-detection label file, their depth z (metres,
camera coordinates) and the smallest one, d (d = 1000 when there is no such vehicle). The label
is the largest i with THRESHOLDS_M[i] < d, THRESHOLDS_M = (-100, 8, 20, 999):

    label 0: d <= 8 m          "a photo i took of a car on my left or right side."
    label 1: 8 < d <= 20 m     "a photo i took with a car nearby."
    label 2: 20 < d <= 999 m   "a photo i took with a car in the distance."
    label 3: no vehicle        "a photo i took with no car."

The registry's class names are in this label order; the CLIP benchmark WebDataset mirror stores
these label ids in its .cls members.
"""

from __future__ import annotations

from typing import Iterable

VEHICLE_TYPES = ("Car", "Van", "Truck")
THRESHOLDS_M = (-100.0, 8.0, 20.0, 999.0)
NO_VEHICLE_DEPTH_M = 1000.0


def closest_vehicle_distance_label(objects: Iterable[tuple[str, float]]) -> int:
    """(object type, depth z in metres) pairs of one image -> its label id (0..3)."""
    depths = [float(z) for kind, z in objects if kind in VEHICLE_TYPES]
    closest = min(depths + [NO_VEHICLE_DEPTH_M])
    below = [i for i, threshold in enumerate(THRESHOLDS_M) if threshold < closest]
    if not below:
        raise ValueError(f"vehicle depth {closest} m lies below {THRESHOLDS_M[0]} m")
    return max(below)


def parse_label_file(text: str) -> list[tuple[str, float]]:
    """A KITTI object label file (label_2/*.txt: type, truncated, occluded, alpha, 4 bbox, 3
    dimensions, 3 location x y z, rotation_y per line) -> (type, z) per object."""
    objects = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 15:
            objects.append((fields[0], float(fields[13])))
    return objects
