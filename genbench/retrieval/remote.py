"""A remote search backend: a clip-retrieval KNN service (`clip-retrieval back`) the user runs.

The service answers `POST <url>` (its `/knn-service` endpoint) with a JSON list of results
`{"id", "caption", "url", "similarity"}` and, when its index stores image paths, `"image"`
(base64 bytes). `modality: "text"` searches the caption embeddings, which makes the search
text-to-text as in the paper. The service embeds the query with its own CLIP model, so only
the `per_template` query mode is possible (a mean embedding would have to come from the same
model); similarities are the service's.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from genbench.errors import GenBenchError
from genbench.retrieval.search import Hit, check_mode, merge_hits


def _post_json(url: str, payload: dict, timeout: float):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise GenBenchError(f"KNN service {url} answered HTTP {exc.code}; check retrieve.url and retrieve.indice_name") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GenBenchError(f"cannot reach the KNN service at {url} ({reason}); start it (clip-retrieval back) or fix retrieve.url") from None
    except json.JSONDecodeError:
        raise GenBenchError(f"KNN service {url} did not answer JSON; is retrieve.url the /knn-service endpoint?") from None


def fetch_url(url: str, timeout: float = 30.0) -> bytes | None:
    """The bytes at `url`, or None when it cannot be fetched (dead links are common in LAION)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None


class RemoteSearcher:
    """Text-to-text search through a clip-retrieval KNN service."""

    def __init__(self, url: str, indice_name: str, *, timeout: float = 60.0, deduplicate: bool = True):
        if not url.startswith(("http://", "https://")):
            raise GenBenchError(f"retrieve.url = {url!r} must be an http(s) URL of a clip-retrieval /knn-service endpoint")
        self.url, self.indice_name, self.timeout, self.deduplicate = url, indice_name, timeout, deduplicate

    def query(self, text: str, k: int) -> list[Hit]:
        payload = {
            "text": text, "image": None, "image_url": None, "embedding_input": None, "modality": "text",
            "indice_name": self.indice_name, "num_images": k, "num_result_ids": k, "deduplicate": self.deduplicate,
            "use_mclip": False, "use_safety_model": False, "use_violence_detector": False,
        }
        results = _post_json(self.url, payload, self.timeout)
        if isinstance(results, dict) and "error" in results:
            raise GenBenchError(f"KNN service {self.url}: {results['error']}")
        if not isinstance(results, list):
            raise GenBenchError(f"KNN service {self.url} answered {type(results).__name__}, expected a list of results")
        hits = []
        for r in results:
            if "id" not in r or "similarity" not in r:
                raise GenBenchError(f"KNN service {self.url}: a result lacks 'id' or 'similarity' ({sorted(r)})")
            image = base64.b64decode(r["image"]) if r.get("image") else None
            hits.append(Hit(str(r["id"]), str(r.get("caption") or ""), float(r["similarity"]), text, image, r.get("url")))
        return hits

    def search(self, texts: list[str], k: int, mode: str = "per_template") -> list[Hit]:
        if check_mode(mode) == "mean":
            raise GenBenchError("retrieve.query = 'mean' needs the local index (a remote service embeds text with its own "
                                "model); use query: per_template with backend: remote")
        return merge_hits([self.query(t, k) for t in texts], k)

    def images(self, hits: list[Hit]) -> dict[str, bytes | None]:
        """Image bytes per pool id: sent by the service, or fetched from the result URL."""
        return {h.pool_id: h.image if h.image is not None else (fetch_url(h.url, self.timeout) if h.url else None) for h in hits}
