"""The price catalog: dated snapshot files of instance prices.

A snapshot is a YAML file (the packaged ones live in cost/snapshots/):

    name: paper-2023                  # how commands refer to it; the file is <name>.yaml
    provider: Azure
    date: 2023-07-25                  # the day the prices were read
    source: GenBench paper Tables 1 and 5
    currency: USD
    human_labelling_usd_per_image: <USD>   # optional; prices the 'original' data type
    rows:
      - {sku: Standard_E32ads_v5, region: eastus, pricing: spot, usd_per_hour: 0.21,
         vcpus: 32, gpus: 0, gpu_model: null}

`sku` is the provider's machine name (Azure's armSkuName); `pricing` is spot or on-demand;
vcpus, gpus and gpu_model may be null where the provider's listing does not say.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import yaml

from cost.atomic import atomic_write_text
from cost.errors import CostError, StaleSnapshotWarning

SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
PRICINGS = ("spot", "on-demand")
_REQUIRED_KEYS = ("name", "provider", "date", "source", "currency", "rows")
_OPTIONAL_KEYS = ("human_labelling_usd_per_image", "notes", "fetch_stats")
_ROW_KEYS = ("sku", "region", "pricing", "usd_per_hour", "vcpus", "gpus", "gpu_model")


def display_sku(sku: str) -> str:
    """'Standard_NC24ads_A100_v4' -> 'NC24ads A100 v4' (the name the provider's pages print)."""
    return re.sub(r"^Standard_", "", sku).replace("_", " ")


def normalise_sku(sku: str) -> str:
    """A key that matches 'Standard_E32ads_v5', 'E32ads v5' and 'e32ads_v5' to one another."""
    return re.sub(r"^standard_", "", str(sku).strip().lower()).replace(" ", "_")


class NamedSku:
    """What a dataclass holding a provider SKU (`sku`) shares: its printed name and its dict."""

    @property
    def name(self) -> str:
        return display_sku(self.sku)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PriceRow(NamedSku):
    sku: str
    region: str
    pricing: str
    usd_per_hour: float
    vcpus: int | None
    gpus: int | None
    gpu_model: str | None


@dataclass(frozen=True)
class Snapshot:
    name: str
    provider: str
    date: date
    source: str
    currency: str
    rows: tuple[PriceRow, ...]
    human_labelling_usd_per_image: float | None = None
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        return sorted({r.region for r in self.rows})

    def age_days(self, today: date | None = None) -> int:
        return ((today or datetime.now(timezone.utc).date()) - self.date).days

    def is_stale(self, max_age_days: int, today: date | None = None) -> bool:
        return self.age_days(today) > max_age_days

    def label(self) -> str:
        """How every priced figure names its prices, e.g. 'paper-2023 (Azure, 2023-07-25)'."""
        return f"{self.name} ({self.provider}, {self.date.isoformat()})"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "date": self.date.isoformat(),
            "source": self.source,
            "currency": self.currency,
        }
        if self.human_labelling_usd_per_image is not None:
            out["human_labelling_usd_per_image"] = self.human_labelling_usd_per_image
        out.update(self.extra)
        out["rows"] = [r.to_dict() for r in self.rows]
        return out


def _number(value: Any, where: str, *, integer: bool = False, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or value < 0:
        kind = "a whole number" if integer else "a number"
        raise CostError(f"{where} = {value!r} must be {kind} of 0 or more{' or null' if nullable else ''}")
    return value if integer else float(value)


def _parse_date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CostError(f"{where} = {value!r} must be a date like 2023-07-25") from None


def parse_snapshot(data: Any, origin: str, path: Path | None = None) -> Snapshot:
    """Validate a snapshot mapping; `origin` names it in error messages."""
    if not isinstance(data, dict):
        raise CostError(f"price snapshot {origin} must be a YAML mapping with keys {', '.join(_REQUIRED_KEYS)}")
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise CostError(f"price snapshot {origin} lacks key '{missing[0]}'; required: {', '.join(_REQUIRED_KEYS)}")
    unknown = sorted(set(data) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise CostError(f"price snapshot {origin} has unknown key '{unknown[0]}'; "
                        f"known: {', '.join(_REQUIRED_KEYS + _OPTIONAL_KEYS)}")
    if data["currency"] != "USD":
        raise CostError(f"price snapshot {origin} is in {data['currency']!r}; the ledger prices in USD")
    if not isinstance(data["rows"], list) or not data["rows"]:
        raise CostError(f"price snapshot {origin} has no rows; it must list at least one priced SKU")
    rows = []
    for i, raw in enumerate(data["rows"]):
        where = f"{origin} rows[{i}]"
        if not isinstance(raw, dict):
            raise CostError(f"{where} must be a mapping with keys {', '.join(_ROW_KEYS)}")
        absent = [k for k in _ROW_KEYS if k not in raw]
        if absent:
            raise CostError(f"{where} lacks key '{absent[0]}'; each row needs {', '.join(_ROW_KEYS)}")
        if raw["pricing"] not in PRICINGS:
            raise CostError(f"{where}.pricing = {raw['pricing']!r} must be one of {', '.join(PRICINGS)}")
        rows.append(PriceRow(
            sku=str(raw["sku"]),
            region=str(raw["region"]),
            pricing=raw["pricing"],
            usd_per_hour=_number(raw["usd_per_hour"], f"{where}.usd_per_hour"),
            vcpus=_number(raw["vcpus"], f"{where}.vcpus", integer=True, nullable=True),
            gpus=_number(raw["gpus"], f"{where}.gpus", integer=True, nullable=True),
            gpu_model=None if raw["gpu_model"] is None else str(raw["gpu_model"]),
        ))
    human = data.get("human_labelling_usd_per_image")
    return Snapshot(
        name=str(data["name"]),
        provider=str(data["provider"]),
        date=_parse_date(data["date"], f"{origin} date"),
        source=str(data["source"]),
        currency="USD",
        rows=tuple(rows),
        human_labelling_usd_per_image=None if human is None else _number(human, f"{origin} human_labelling_usd_per_image"),
        path=path,
        extra={k: data[k] for k in ("notes", "fetch_stats") if k in data},
    )


def read_snapshot_file(path: str | Path) -> Snapshot:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CostError(f"price snapshot file {str(path)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CostError(f"price snapshot file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_snapshot(data, repr(str(path)), path)


def _snapshot_files(search_dirs: Iterable[str | Path]) -> list[Path]:
    files = []
    for directory in (SNAPSHOT_DIR, *map(Path, search_dirs)):
        if directory.is_dir():
            files += sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    return files


def list_snapshots(search_dirs: Iterable[str | Path] = ()) -> list[Snapshot]:
    """The packaged snapshots and those in `search_dirs`, oldest first."""
    snaps = [read_snapshot_file(p) for p in _snapshot_files(search_dirs)]
    return sorted(snaps, key=lambda s: (s.date, s.name))


def load_snapshot(name_or_path: str | Path, *, max_age_days: int | None = None,
                  today: date | None = None, search_dirs: Iterable[str | Path] = ()) -> Snapshot:
    """A snapshot by name (packaged or in `search_dirs`) or by file path.

    With `max_age_days`, a snapshot dated more than that many days before `today` (default: the
    current UTC date) raises a `StaleSnapshotWarning` that says how old it is and how to refresh.
    """
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or os.sep in text or path.is_file():
        snap = read_snapshot_file(path)
    else:
        search_dirs = list(search_dirs)
        by_name = {}
        for file in _snapshot_files(search_dirs):
            by_name.setdefault(file.stem, file)
        if text not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise CostError(f"unknown price snapshot {text!r}; known snapshots: {known} "
                            "(or pass the path of a snapshot YAML file)")
        snap = read_snapshot_file(by_name[text])
    if max_age_days is not None and snap.is_stale(max_age_days, today):
        warnings.warn(
            f"price snapshot {snap.label()} is {snap.age_days(today)} days old, more than "
            f"max_age_days={max_age_days}; run `genbench prices refresh --region REGION` for current prices",
            StaleSnapshotWarning,
            stacklevel=2,
        )
    return snap


def write_snapshot(snapshot_dict: dict, path: str | Path) -> Path:
    """Validate and write a snapshot mapping atomically (temporary file, fsync, rename)."""
    path = Path(path)
    parse_snapshot(snapshot_dict, repr(str(path)))
    text = yaml.safe_dump(snapshot_dict, sort_keys=False, default_flow_style=None, width=200)
    return atomic_write_text(path, text)
