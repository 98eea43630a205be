"""Refreshing a price snapshot from the Azure Retail Prices API (public, no account needed).

`fetch_prices` follows the API's `NextPageLink` paging and keeps hourly pay-as-you-go Linux VM
prices of one region: serviceName "Virtual Machines", type "Consumption", unitOfMeasure "1 Hour",
a positive USD retailPrice, the primary meter region. It drops Windows rows (productName contains
"Windows"), Low Priority rows (skuName or meterName contains "Low Priority") and marks a row spot
when skuName or meterName contains "Spot". The API may list one SKU under several products; the
snapshot keeps the highest hourly price of each (SKU, pricing) so a bill is never understated.
vCPU and GPU counts come from `SKU_SPECS` and, for D and E series, from the SKU name; others stay
null and the row is kept.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

from cost.errors import CostError
from cost.prices import write_snapshot

RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
API_VERSION = "2023-01-01-preview"
MAX_PAGES = 2000
REFRESH_DEADLINE_S = 30.0  # all requests of one `genbench prices refresh` together

# armSkuName -> (vCPUs, GPUs, GPU model) for the GPU instances the kit may run on (Azure's VM size pages).
SKU_SPECS: dict[str, tuple[int, int, str]] = {
    "Standard_NC24ads_A100_v4": (24, 1, "A100 80GB"),
    "Standard_NC48ads_A100_v4": (48, 2, "A100 80GB"),
    "Standard_NC96ads_A100_v4": (96, 4, "A100 80GB"),
    "Standard_ND96asr_v4": (96, 8, "A100 40GB"),
    "Standard_ND96amsr_A100_v4": (96, 8, "A100 80GB"),
    "Standard_NC40ads_H100_v5": (40, 1, "H100 NVL 94GB"),
    "Standard_NC80adis_H100_v5": (80, 2, "H100 NVL 94GB"),
    "Standard_ND96isr_H100_v5": (96, 8, "H100 80GB"),
    "Standard_ND96isr_H200_v5": (96, 8, "H200 141GB"),
    "Standard_NC4as_T4_v3": (4, 1, "T4 16GB"),
    "Standard_NC8as_T4_v3": (8, 1, "T4 16GB"),
    "Standard_NC16as_T4_v3": (16, 1, "T4 16GB"),
    "Standard_NC64as_T4_v3": (64, 4, "T4 16GB"),
    "Standard_NC6s_v3": (6, 1, "V100 16GB"),
    "Standard_NC12s_v3": (12, 2, "V100 16GB"),
    "Standard_NC24s_v3": (24, 4, "V100 16GB"),
    "Standard_NC24rs_v3": (24, 4, "V100 16GB"),
    "Standard_ND40rs_v2": (40, 8, "V100 32GB"),
    "Standard_NV36ads_A10_v5": (36, 1, "A10 24GB"),
    "Standard_NV72ads_A10_v5": (72, 2, "A10 24GB"),
}
# D and E series v3 and later: the number is the vCPU count; 'E32-16ads_v5' is constrained to 16.
_CPU_SERIES_RE = re.compile(r"^Standard_[DE](\d+)(?:-(\d+))?[a-z]*_v[3-9]$")
_REGION_RE = re.compile(r"^[a-z][a-z0-9]*$")


def sku_spec(arm_sku: str) -> tuple[int | None, int | None, str | None]:
    """(vCPUs, GPUs, GPU model) of an Azure armSkuName; (None, None, None) when unknown."""
    if arm_sku in SKU_SPECS:
        return SKU_SPECS[arm_sku]
    match = _CPU_SERIES_RE.match(arm_sku)
    if match:
        return int(match.group(2) or match.group(1)), 0, None
    return None, None, None


def prices_url(region: str) -> str:
    """The first page's URL: VM pay-as-you-go prices of one ARM region, primary meters only."""
    check_region(region)
    query = urllib.parse.urlencode(
        {
            "api-version": API_VERSION,
            "meterRegion": "'primary'",
            "$filter": f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
                       "and priceType eq 'Consumption'",
        },
        safe="$'",
        quote_via=urllib.parse.quote,
    )
    return f"{RETAIL_PRICES_URL}?{query}"


def check_region(region: str) -> None:
    if not isinstance(region, str) or not _REGION_RE.match(region):
        raise CostError(f"region {region!r} is not an Azure ARM region name; use one like 'eastus' or 'westeurope'")


def _via_proxy(url: str) -> str:
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)
    return f" through proxy {proxy}" if proxy else ""


def urllib_get_json(url: str, *, timeout_s: float = 60.0, attempts: int = 4, deadline: float | None = None) -> dict:
    """GET `url` and decode its JSON, retrying throttling (HTTP 429) and server errors with backoff;
    `deadline` (time.monotonic() value) bounds all attempts and pauses together."""
    request = urllib.request.Request(url, headers={"User-Agent": "genbench-kit", "Accept": "application/json"})

    def left() -> float:
        return float("inf") if deadline is None else deadline - time.monotonic()

    for attempt in range(attempts):
        if left() <= 0:
            break
        try:
            with urllib.request.urlopen(request, timeout=min(timeout_s, left())) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 500, 502, 503, 504) or attempt == attempts - 1:
                raise CostError(f"Azure Retail Prices API answered HTTP {exc.code} for {url}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if attempt == attempts - 1:
                reason = getattr(exc, "reason", exc)
                raise CostError(f"cannot reach the Azure Retail Prices API{_via_proxy(url)} ({reason}); check the network, "
                                "or price with an existing snapshot (`genbench prices list`)") from None
        except json.JSONDecodeError:
            raise CostError(f"Azure Retail Prices API returned a page that is not JSON: {url}") from None
        time.sleep(max(0.0, min(2 ** attempt, left())))
    raise CostError(f"the Azure Retail Prices API did not answer{_via_proxy(url)} before the deadline; check the "
                    "network or the proxy, or price with an existing snapshot (`genbench prices list`)")


def _drop_reason(item: dict, region: str) -> str | None:
    """Why an API item is not an hourly pay-as-you-go Linux VM price of `region`, or None to keep it."""
    sku_name, meter, product = item.get("skuName", ""), item.get("meterName", ""), item.get("productName", "")
    if item.get("serviceName") != "Virtual Machines":
        return "not_virtual_machines"
    if item.get("type") != "Consumption":
        return "not_consumption"
    if item.get("unitOfMeasure") != "1 Hour":
        return "not_hourly"
    if "Windows" in product:
        return "windows"
    if "Low Priority" in sku_name or "Low Priority" in meter:
        return "low_priority"
    if item.get("isPrimaryMeterRegion") is False:
        return "not_primary_meter_region"
    if item.get("armRegionName") != region:
        return "other_region"
    if item.get("currencyCode", "USD") != "USD":
        return "not_usd"
    if not item.get("armSkuName"):
        return "no_arm_sku"
    price = item.get("retailPrice")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or price <= 0:
        return "no_positive_price"
    return None


def to_row(item: dict) -> dict:
    """A snapshot row from an API item that `_drop_reason` keeps."""
    spot = "Spot" in item.get("skuName", "") or "Spot" in item.get("meterName", "")
    vcpus, gpus, gpu_model = sku_spec(item["armSkuName"])
    return {"sku": item["armSkuName"], "region": item["armRegionName"],
            "pricing": "spot" if spot else "on-demand", "usd_per_hour": float(item["retailPrice"]),
            "vcpus": vcpus, "gpus": gpus, "gpu_model": gpu_model}


def fetch_prices(region: str, *, get_json: Callable[[str], dict] | None = None,
                 stats: dict | None = None) -> list[dict]:
    """Snapshot rows of `region`, sorted by SKU then pricing; `stats` (if given) gets the counts."""
    get_json = get_json or urllib_get_json
    url: str | None = prices_url(region)
    seen: set[str] = set()
    kept: dict[tuple[str, str], dict] = {}
    counts = {"pages": 0, "items": 0, "kept": 0, "duplicates": 0}
    while url:
        if url in seen or len(seen) >= MAX_PAGES:
            raise CostError(f"Azure Retail Prices API paging does not end (page {len(seen) + 1}: {url})")
        seen.add(url)
        page = get_json(url)
        if not isinstance(page, dict) or not isinstance(page.get("Items"), list):
            raise CostError(f"Azure Retail Prices API page has no 'Items' list: {url}")
        counts["pages"] += 1
        for item in page["Items"]:
            counts["items"] += 1
            reason = _drop_reason(item, region)
            if reason:
                counts[f"dropped_{reason}"] = counts.get(f"dropped_{reason}", 0) + 1
                continue
            row = to_row(item)
            key = (row["sku"], row["pricing"])
            if key in kept:
                counts["duplicates"] += 1
                if row["usd_per_hour"] <= kept[key]["usd_per_hour"]:
                    continue
            kept[key] = row
        url = page.get("NextPageLink") or None
    rows = [kept[k] for k in sorted(kept)]
    counts["kept"] = len(rows)
    if stats is not None:
        stats.update(counts)
    return rows


def refresh_snapshot(region: str, out_dir: str | Path, *, get_json: Callable[[str], dict] | None = None,
                     today: date | None = None, deadline_s: float = REFRESH_DEADLINE_S) -> Path:
    """Fetch `region`'s prices and write `<out_dir>/azure-<region>-<date>.yaml` atomically; all
    requests together end within `deadline_s` seconds (or a CostError says so)."""
    if get_json is None:
        end = time.monotonic() + deadline_s
        get_json = lambda url: urllib_get_json(url, deadline=end)  # noqa: E731
    stats: dict = {}
    rows = fetch_prices(region, get_json=get_json, stats=stats)
    if not rows:
        raise CostError(f"the Azure Retail Prices API lists no hourly Linux VM prices for region {region!r}; "
                        "check the region name (e.g. 'eastus', 'westeurope')")
    day = today or datetime.now(timezone.utc).date()
    name = f"azure-{region}-{day.isoformat()}"
    snapshot = {
        "name": name,
        "provider": "Azure",
        "date": day.isoformat(),
        "source": prices_url(region),
        "currency": "USD",
        "notes": "Azure Retail Prices API, Linux pay-as-you-go and spot hourly prices; "
                 "highest price kept where a SKU is listed twice",
        "fetch_stats": stats,
        "rows": rows,
    }
    return write_snapshot(snapshot, Path(out_dir) / f"{name}.yaml")
