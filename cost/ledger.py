"""The ledger: meter readings priced in USD, and USD per image per data type.

Definitions (DESIGN.md):
- billed_hours = wall_s / 3600: an instance is billed for wall-clock time, not GPU utilisation;
- usd_total = billed_hours x usd_per_hour, where usd_per_hour is the chosen SKU's price, scaled
  to the cores used for CPU-only runs (`cost.hardware.choose_sku`; usd_per_hour_basis says how);
- usd_per_image = usd_total / items (None when a run produced no items); items are the images a
  stage delivers: for a generation that discards candidates (CF), the kept ones, so the time of
  the discarded candidates is charged to them (`delivered_items`);
- per data type: usd_per_image = (cost of the stages that produce its images + cost of the
  stages amortised onto it) / images produced by the producing stages. Generated: generation plus
  textual inversion and filtering; retrieved: queries plus the index build; original: the
  human-labelling reference price (the price snapshot's human_labelling_usd_per_image), not a
  measured cost; unpriced when the snapshot has none.
GPU-seconds, energy and utilisation are reported beside the billed cost, never instead of it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterable, Mapping

from cost.atomic import atomic_write_text
from cost.errors import CostError
from cost.hardware import choose_sku, hardware_of_reading
from cost.prices import Snapshot, display_sku

# stage name -> the data type whose acquisition cost the stage is; stages not listed (prepare,
# embed, cler, probe, report) evaluate data rather than acquire it and get data_type None.
STAGE_DATA_TYPES: dict[str, str] = {
    "generate": "generated",
    "invert": "generated",
    "textual_inversion": "generated",
    "filter": "generated",
    "retrieve": "retrieved",
    "index": "retrieved",
}
# stages whose cost is spread over the images of their data type (their own items are not those images)
AMORTISED_STAGES: frozenset[str] = frozenset({"invert", "textual_inversion", "filter", "index"})
HUMAN_LABELLED = "original"


@dataclass(frozen=True)
class LedgerRow:
    """One priced stage run."""

    stage: str
    data_type: str | None
    items: int
    wall_s: float
    cpu_s: float
    gpu_s: float
    gpu_energy_j: float | None
    gpu_util_mean: float | None
    vcpus: int
    gpu_count: int
    gpu_model: str | None
    billed_hours: float
    sku: str
    provider: str
    pricing: str
    region: str
    usd_per_hour: float
    usd_per_hour_basis: str
    usd_total: float
    usd_per_image: float | None
    snapshot: str
    snapshot_date: str
    started_at: str = ""
    hostname: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "LedgerRow":
        kinds = {f.name: f.type for f in fields(cls)}
        optional = {"started_at", "hostname"}
        missing = [name for name in kinds if name not in data and name not in optional]
        if missing:
            raise CostError(f"ledger row lacks '{missing[0]}'; write rows with cost.ledger.LedgerRow.to_dict")
        return cls(**{name: _coerce(data[name], kinds[name], name) for name in kinds if name in data})


def _coerce(value, kind: str, name: str):
    """Values of a ledger row read back from CSV text or JSON, by the field's annotation."""
    if value is None or value == "":
        if "None" in kind:
            return None
        if kind == "str":
            return ""
        raise CostError(f"ledger field '{name}' is empty; it must hold a value")
    try:
        if kind.startswith("int"):
            return int(float(value))
        if kind.startswith("float"):
            return float(value)
    except (TypeError, ValueError):
        raise CostError(f"ledger field '{name}' = {value!r} must be a number") from None
    return str(value)


def delivered_items(made: int, kept: int, candidates: int) -> int:
    """Images delivered by a run that made `made` of `candidates` candidates of which `kept` are
    kept: round(made * kept / candidates), i.e. `kept` for a run that made every candidate and
    `made` when none is discarded. Pricing with these items charges the discarded candidates' time
    to the kept images."""
    if min(made, kept, candidates) < 0 or kept > candidates:
        raise CostError(f"delivered items need 0 <= kept <= candidates and made >= 0; got made={made}, kept={kept}, "
                        f"candidates={candidates}")
    return round(made * kept / candidates) if candidates else 0


def apportion_items(readings: list[dict], total: int) -> list[dict]:
    """Worker readings with their `items` replaced so they sum to `total`, in proportion to the
    items each made (largest remainders first, ties to the earlier worker)."""
    made = [int(r.get("items", 0)) for r in readings]
    if not readings or sum(made) == 0:
        return [dict(r) for r in readings]
    shares = [total * m / sum(made) for m in made]
    counts = [int(s) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return [{**r, "items": c} for r, c in zip(readings, counts)]


# LedgerRow fields copied as they are from the meter reading, and from the chosen SKU price
READING_FIELDS = ("items", "wall_s", "cpu_s", "gpu_s", "gpu_energy_j", "gpu_util_mean", "vcpus", "gpu_count",
                  "started_at", "hostname")
PRICE_FIELDS = ("sku", "provider", "pricing", "region", "usd_per_hour")


def price_reading(reading, snapshot: Snapshot, *, override_sku: str | None = None,
                  data_type: str | None = None, pricing: str = "spot") -> LedgerRow:
    """Price one `cost.meter.Reading` with `snapshot`; data_type defaults to STAGE_DATA_TYPES[stage]."""
    price = choose_sku(hardware_of_reading(reading), snapshot, override=override_sku, pricing=pricing)
    billed_hours = reading.wall_s / 3600.0
    usd_total = billed_hours * price.usd_per_hour
    return LedgerRow(
        stage=reading.stage,
        data_type=data_type if data_type is not None else STAGE_DATA_TYPES.get(reading.stage),
        **{name: getattr(reading, name) for name in READING_FIELDS},
        gpu_model=reading.gpus[0]["name"] if reading.gpus else None,
        billed_hours=billed_hours,
        **{name: getattr(price, name) for name in PRICE_FIELDS},
        usd_per_hour_basis=price.basis,
        usd_total=usd_total,
        usd_per_image=usd_total / reading.items if reading.items else None,
        snapshot=snapshot.name,
        snapshot_date=snapshot.date.isoformat(),
    )


def bill_by_data_type(rows: Iterable[LedgerRow], *, human_usd_per_image: float | None = None,
                      amortise: Iterable[str] = AMORTISED_STAGES) -> dict[str, dict]:
    """Per data type: images, usd_total, usd_per_image, the stages counted, GPU-s, energy, wall.

    Rows with data_type None (evaluation stages) are left out. The 'original' entry is priced at
    `human_usd_per_image` (images None: acquiring labels is not measured here); the compute cost of
    stages that only materialise original data (e.g. prepare) is kept beside it as compute_usd_total.
    """
    amortised = set(amortise)
    out: dict[str, dict] = {}
    for row in rows:
        if row.data_type is None:
            continue
        entry = out.setdefault(row.data_type, {
            "images": 0, "usd_total": 0.0, "usd_produce": 0.0, "usd_amortised": 0.0, "wall_s": 0.0,
            "gpu_s": 0.0, "gpu_energy_j": 0.0, "stages": [], "snapshots": [], "basis": "measured",
        })
        entry["usd_total"] += row.usd_total
        entry["wall_s"] += row.wall_s
        entry["gpu_s"] += row.gpu_s
        entry["gpu_energy_j"] += row.gpu_energy_j or 0.0
        if row.stage in amortised:
            entry["usd_amortised"] += row.usd_total
        else:
            entry["usd_produce"] += row.usd_total
            entry["images"] += row.items
        if row.stage not in entry["stages"]:
            entry["stages"].append(row.stage)
        label = f"{row.snapshot} ({row.snapshot_date})"
        if label not in entry["snapshots"]:
            entry["snapshots"].append(label)
    for entry in out.values():
        entry["usd_per_image"] = entry["usd_total"] / entry["images"] if entry["images"] else None
    measured_original = out.pop(HUMAN_LABELLED, None)
    if human_usd_per_image is not None or measured_original is not None:
        out[HUMAN_LABELLED] = {
            "images": None, "usd_total": None, "usd_per_image": human_usd_per_image,
            "stages": measured_original["stages"] if measured_original else [],
            "snapshots": measured_original["snapshots"] if measured_original else [],
            "compute_usd_total": measured_original["usd_total"] if measured_original else None,
            "basis": "human-labelling reference" if human_usd_per_image is not None
            else "no human-labelling reference given",
        }
    return out


def usd_per_image_by_data_type(rows: Iterable[LedgerRow], *, human_usd_per_image: float,
                               amortise: Iterable[str] = AMORTISED_STAGES) -> dict[str, float | None]:
    """{'generated': ..., 'retrieved': ..., 'original': human_usd_per_image} (see the module docstring)."""
    bill = bill_by_data_type(rows, human_usd_per_image=human_usd_per_image, amortise=amortise)
    return {data_type: entry["usd_per_image"] for data_type, entry in bill.items()}


def estimate(rows: Iterable[LedgerRow], target_images_by_type: Mapping[str, int], *,
             human_usd_per_image: float | None = None,
             amortise: Iterable[str] = AMORTISED_STAGES) -> dict[str, dict]:
    """Extrapolate measured USD per image to target image counts, linearly, per data type.

    Returns {data_type: {images, usd_per_image, usd_total, basis}}. Amortised stages are scaled
    with the images too (a stated simplification: textual inversion grows with classes, not shots).
    A data type with no measured images (and, for 'original', no reference price) is a CostError.
    """
    bill = bill_by_data_type(rows, human_usd_per_image=human_usd_per_image, amortise=amortise)
    out = {}
    for data_type, images in target_images_by_type.items():
        if isinstance(images, bool) or not isinstance(images, int) or images < 0:
            raise CostError(f"target images for {data_type!r} = {images!r} must be a whole number of 0 or more")
        entry = bill.get(data_type)
        if entry is None or entry["usd_per_image"] is None:
            measured = ", ".join(k for k, v in bill.items() if v["usd_per_image"] is not None) or "none"
            raise CostError(f"no measured USD per image for data type {data_type!r}; the ledger prices: {measured}")
        basis = (entry["basis"] if entry["images"] is None else
                 f"measured: {entry['images']} images, {entry['usd_total']:.6g} USD "
                 f"({', '.join(entry['stages'])}; {', '.join(entry['snapshots'])})")
        out[data_type] = {"images": images, "usd_per_image": entry["usd_per_image"],
                          "usd_total": images * entry["usd_per_image"], "basis": basis}
    return out


# The fields of a row that grow with the work a stage does (time, energy, money); the counts do not.
SCALED_FIELDS = ("wall_s", "cpu_s", "gpu_s", "billed_hours", "usd_total", "usd_per_image", "gpu_energy_j")


def scale_stages(rows: Iterable[LedgerRow], factors: Mapping[str, float]) -> list[LedgerRow]:
    """The rows with each named stage's time, energy and USD multiplied by its factor, the rest as
    they are: what the same run would cost if each such stage's work per image were `factor` times
    larger (cost taken as linear in that work). A factor must be above 0."""
    for stage, factor in factors.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise CostError(f"scale factor for stage {stage!r} = {factor!r} must be a number above 0")
    return [replace(row, **{k: getattr(row, k) * factors[row.stage] for k in SCALED_FIELDS
                            if getattr(row, k) is not None}) if row.stage in factors else row for row in rows]


LEDGER_FIELDS = tuple(f.name for f in fields(LedgerRow))


def read_ledger(path: str | Path) -> list[LedgerRow]:
    """Ledger rows from a .jsonl (one row a line), .json (a list) or .csv file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CostError(f"ledger file {str(path)!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CostError(f"ledger file {str(path)!r} is not text (not UTF-8); give the .csv/.jsonl ledger the "
                        "cost stage writes (reports/ledger.csv)") from None
    if "\0" in text:
        raise CostError(f"ledger file {str(path)!r} is binary (holds NUL bytes); give the .csv/.jsonl ledger the "
                        "cost stage writes (reports/ledger.csv)")
    try:
        if path.suffix == ".csv":
            records = list(csv.DictReader(io.StringIO(text)))
        elif path.suffix == ".json":
            records = json.loads(text)
        elif path.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            raise CostError(f"ledger file {str(path)!r} must end in .jsonl, .json or .csv")
    except json.JSONDecodeError as exc:
        raise CostError(f"ledger file {str(path)!r} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except csv.Error as exc:
        raise CostError(f"ledger file {str(path)!r} is not a valid CSV: {exc}") from None
    if not isinstance(records, list):
        raise CostError(f"ledger file {str(path)!r} must hold a list of rows")
    bad = next((r for r in records if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise CostError(f"ledger file {str(path)!r} holds a row that is not a mapping: {str(bad)[:60]!r}")
    return [LedgerRow.from_dict(r) for r in records]


def write_ledger(rows: Iterable[LedgerRow], path: str | Path) -> Path:
    """Write rows as .jsonl or .csv (by suffix) atomically."""
    path = Path(path)
    rows = list(rows)
    if path.suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LEDGER_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.to_dict() for r in rows)
        text = buf.getvalue()
    elif path.suffix == ".jsonl":
        text = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rows)
    else:
        raise CostError(f"ledger file {str(path)!r} must end in .jsonl or .csv")
    return atomic_write_text(path, text)


def cost_table(rows: Iterable[LedgerRow], *, human_usd_per_image: float | None = None,
               amortise: Iterable[str] = AMORTISED_STAGES) -> list[dict]:
    """This run's counterpart of the paper's Table 5: one row per data type.

    usd_per_hour is the billed total over billed hours of the data type's stages (their scaled
    prices averaged by time); hours_per_1k_images = billed hours x 1000 / images.
    """
    rows = list(rows)
    bill = bill_by_data_type(rows, human_usd_per_image=human_usd_per_image, amortise=amortise)
    table = []
    for data_type, entry in bill.items():
        if entry["images"] is None:
            table.append({"data_type": data_type, "instance_type": "", "usd_per_hour": None,
                          "hours_per_1k_images": None, "usd_per_image": entry["usd_per_image"],
                          "basis": entry["basis"]})
            continue
        typed = [r for r in rows if r.data_type == data_type]
        hours = sum(r.billed_hours for r in typed)
        instances = sorted({f"{r.provider} {display_sku(r.sku)} ({r.pricing})" for r in typed})
        table.append({
            "data_type": data_type,
            "instance_type": "; ".join(instances),
            "usd_per_hour": entry["usd_total"] / hours if hours else None,
            "hours_per_1k_images": hours * 1000 / entry["images"] if entry["images"] else None,
            "usd_per_image": entry["usd_per_image"],
            "basis": "; ".join(dict.fromkeys(r.usd_per_hour_basis for r in typed)),
        })
    return table
