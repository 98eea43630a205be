"""The paper's cost figures recomputed from their own inputs (Tables 1 and 5, Section 3.1).

Table 5 prints, per data type, an instance's USD per hour, the hours it took per 1,000 images and
a USD per image. Recomputed: usd_per_image = usd_per_hour x hours_per_1k_images / 1000. A row is
flagged when the printed value differs from the recomputed one by more than `tolerance` (relative
to the recomputed value). The Section 3.1 comparison multiplies an image count (1,638 Common
concept classes x 500 shots = 819,000) by the printed per-image prices.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from cost.errors import CostError
from cost.prices import load_snapshot

TABLE5_COLUMNS = ("data_type", "instance_type", "usd_per_hour", "hours_per_1k_images", "usd_per_image")
COMMON_CONCEPT_IMAGES = 1638 * 500
PAPER_SNAPSHOT = "paper-2023"  # the price snapshot holding the paper's Tables 1 and 5 prices


def usd_per_image_from_hours_per_1k(usd_per_hour: float, hours_per_1k_images: float) -> float:
    return usd_per_hour * hours_per_1k_images / 1000.0


def usd_per_image_from_seconds(usd_per_hour: float, seconds_per_image: float) -> float:
    return usd_per_hour * seconds_per_image / 3600.0


def hours_per_1k_implied(usd_per_hour: float, usd_per_image: float) -> float:
    """The hours per 1,000 images a printed USD per image implies at `usd_per_hour`."""
    return usd_per_image * 1000.0 / usd_per_hour


@dataclass(frozen=True)
class AuditRow:
    data_type: str
    instance_type: str
    usd_per_hour: float | None
    hours_per_1k_images: float | None
    printed_usd_per_image: float
    recomputed_usd_per_image: float | None
    printed_over_recomputed: float | None
    implied_hours_per_1k_images: float | None
    flagged: bool
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def _cell(record: dict, column: str, line: int, path: Path) -> float | None:
    text = (record.get(column) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise CostError(f"{str(path)!r} line {line}: {column} = {text!r} is not a number") from None


def audit_row(data_type: str, instance_type: str, usd_per_hour: float | None,
              hours_per_1k_images: float | None, printed_usd_per_image: float,
              tolerance: float = 0.05) -> AuditRow:
    if usd_per_hour is None or hours_per_1k_images is None:
        return AuditRow(data_type, instance_type, usd_per_hour, hours_per_1k_images, printed_usd_per_image,
                        None, None, None, False, "reference price: no hours or hourly price to recompute it from")
    recomputed = usd_per_image_from_hours_per_1k(usd_per_hour, hours_per_1k_images)
    ratio = printed_usd_per_image / recomputed if recomputed else None
    implied = hours_per_1k_implied(usd_per_hour, printed_usd_per_image) if usd_per_hour else None
    flagged = recomputed == 0 or abs(printed_usd_per_image - recomputed) / recomputed > tolerance
    note = (f"{usd_per_hour:g} USD/h x {hours_per_1k_images:g} h / 1000 = {recomputed:.2e} USD/image, "
            f"printed {printed_usd_per_image:.2e}")
    if flagged:
        note += (f": differs by more than {tolerance:.0%} (printed/recomputed = {ratio:.3g}); "
                 f"the printed value implies {implied:.3g} h per 1K images")
    return AuditRow(data_type, instance_type, usd_per_hour, hours_per_1k_images, printed_usd_per_image,
                    recomputed, ratio, implied, flagged, note)


def audit_cost_table(csv_path: str | Path, *, tolerance: float = 0.05) -> list[AuditRow]:
    """Audit every row of a published cost table CSV with columns TABLE5_COLUMNS."""
    path = Path(csv_path)
    if not tolerance > 0:
        raise CostError(f"audit tolerance = {tolerance!r} must be greater than 0")
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in TABLE5_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CostError(f"cost table {str(path)!r} lacks column '{missing[0]}'; "
                                f"expected {', '.join(TABLE5_COLUMNS)}")
            rows = []
            for line, record in enumerate(reader, start=2):
                printed = _cell(record, "usd_per_image", line, path)
                if printed is None:
                    raise CostError(f"{str(path)!r} line {line}: usd_per_image is empty")
                rows.append(audit_row(
                    record["data_type"], record["instance_type"],
                    _cell(record, "usd_per_hour", line, path),
                    _cell(record, "hours_per_1k_images", line, path),
                    printed, tolerance,
                ))
    except OSError as exc:
        raise CostError(f"cost table {str(path)!r} cannot be read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CostError(f"cost table {str(path)!r} is not a text CSV ({type(exc).__name__}); give a CSV with "
                        f"columns {', '.join(TABLE5_COLUMNS)}") from None
    return rows


def section31_comparison(images: int = COMMON_CONCEPT_IMAGES, *, generated_usd_per_image: float = 2.54e-4,
                         human_usd_per_image: float | None = None) -> dict:
    """Section 3.1: the cost of `images` generated against human-labelled (the paper: 208 vs ~10k USD).

    `human_usd_per_image` None: the human-labelling price of the paper's snapshot (PAPER_SNAPSHOT).
    """
    if human_usd_per_image is None:
        human_usd_per_image = load_snapshot(PAPER_SNAPSHOT).human_labelling_usd_per_image
    generated = images * generated_usd_per_image
    human = images * human_usd_per_image
    return {"images": images, "generated_usd_per_image": generated_usd_per_image,
            "human_usd_per_image": human_usd_per_image, "generated_usd": generated,
            "human_usd": human, "difference_usd": human - generated}
