"""The worker's half of the exchange, for tests of the Python side alone: stages tensors into
`hotweights.*` segment files and writes offer.json / commit.json as @hotweights/adapter-trainer does.
(The TypeScript tests drive the real worker against a real training process.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}


def stage(exchange: Path, staging: Path, tensors: dict[str, torch.Tensor], version: str, *,
          split: Optional[str] = None, dtype_names: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Writes one bucket per tensor (`split` goes in two halves, in two buckets) and offer.json."""
    segments = []
    for i, (name, t) in enumerate(tensors.items()):
        raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        halves = [(0, len(raw) // 2), (len(raw) // 2, len(raw))] if name == split else [(0, len(raw))]
        for j, (a, b) in enumerate(halves):
            path = staging / f"hotweights.test.{version}.b{i}.{j}.seg"
            path.write_bytes(b"\0" * 8 + raw[a:b])  # the bucket starts 8 bytes into the file
            part = None if len(halves) == 1 else {"index": j, "count": 2, "tensor_offset": a, "tensor_nbytes": len(raw)}
            item = {"key": f"{name}:0", "tensor": name, "dtype": (dtype_names or {}).get(name, _NAMES[t.dtype]),
                    "shape": list(t.shape), "offset": 0, "nbytes": b - a, "hash": None, "part": part}
            segments.append({"path": str(path), "offset": 8, "length": b - a, "items": [item]})
    offer = {"schema": "hotweights.trainer.offer", "offer_version": 1, "txn": f"{version}.t1", "version": version,
             "segments": segments}
    (exchange / "offer.json").write_text(json.dumps(offer))
    return offer


def commit(exchange: Path, version: str, policy: str = "preserve", attenuation: float = 1.0) -> None:
    (exchange / "commit.json").write_text(json.dumps({
        "schema": "hotweights.trainer.commit", "txn": f"{version}.t1", "version": version,
        "policy": policy, "attenuation": attenuation}))


def ack(exchange: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((exchange / "ack.json").read_text())
    return out
