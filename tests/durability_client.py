"""The client of tests/test_durability.py, run as its own process.

``python durability_client.py URL BATCHES ACK_FILE``: sends BATCHES prediction batches (50
events each, seeded) and their labels, retrying every request until the collector answers
200 (the collector is being killed and restarted meanwhile). Every acknowledged request is
appended to ACK_FILE as one line, flushed at once.

Labels: event ``i`` of a batch has its label inline when ``i % 5 == 0``, sent after the
batch when ``i % 5 in (1, 2)``, sent *before* the batch (so it waits for its prediction)
when ``i % 5 == 3``; ``i % 5 == 4`` is never labeled.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from service_support import events

BATCH = 50
MODEL = "durable"


def batch_events(k: int) -> list[dict[str, Any]]:
    return events(k * BATCH, BATCH, seed=1000 + k)


def labels_after(k: int) -> list[dict[str, Any]]:
    return [{"id": e["id"], "label": e["_label"]} for i, e in enumerate(batch_events(k))
            if i % 5 in (1, 2)]  # fmt: skip


def labels_before(k: int) -> list[dict[str, Any]]:
    return [{"id": e["id"], "label": e["_label"]} for i, e in enumerate(batch_events(k))
            if i % 5 == 3]  # fmt: skip


def predictions(k: int) -> list[dict[str, Any]]:
    out = []
    for i, e in enumerate(batch_events(k)):
        event = {key: v for key, v in e.items() if key != "_label"}
        if i % 5 == 0:
            event["label"] = e["_label"]
        out.append(event)
    return out


def send(client: httpx.Client, path: str, doc: dict[str, Any], deadline: float) -> Any:
    body = orjson.dumps(doc)
    while True:
        try:
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            if response.status_code == 200:
                return response.json()
            if response.status_code < 500:
                raise SystemExit(f"{path}: {response.status_code} {response.text}")
        except httpx.TransportError:
            pass  # the collector is down: retry the same request (ids make it idempotent)
        if time.monotonic() > deadline:
            raise SystemExit(f"{path}: no answer before the deadline")
        time.sleep(0.02)


def main() -> int:
    url, batches, ack_path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    deadline = time.monotonic() + 120
    base = f"/v1/models/{MODEL}"
    with httpx.Client(base_url=url, timeout=5.0) as client, ack_path.open("a") as acks:
        send(client, f"{base}/labels", {"labels": labels_before(0)}, deadline)
        acks.write("labels-before 0\n")
        acks.flush()
        for k in range(batches):
            result = send(client, f"{base}/predictions", {"predictions": predictions(k)}, deadline)
            assert not result["rejected"], result
            acks.write(f"predictions {k}\n")
            acks.flush()
            labels = labels_after(k) + (labels_before(k + 1) if k + 1 < batches else [])
            send(client, f"{base}/labels", {"labels": labels}, deadline)
            acks.write(f"labels {k}\n")
            acks.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
