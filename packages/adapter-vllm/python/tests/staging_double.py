"""Writes staged segments the way hotweights host staging lays them out (one file per bucket,
items at aligned offsets, a tensor larger than a bucket split into parts) and returns the
prepare payload the TypeScript adapter would send for them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import torch

SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def stage(directory: Path, version: str, tensors: list[tuple[str, torch.Tensor]], bucket_bytes: int = 4096,
          alignment: int = 64, lead: int = 0, ranks: Optional[list[int]] = None) -> dict[str, Any]:
    """`lead` bytes of padding before each bucket exercise a segment offset other than 0."""
    buckets: list[dict[str, Any]] = []
    current: Optional[dict[str, Any]] = None

    def new_bucket() -> dict[str, Any]:
        b = {"data": bytearray(), "items": []}
        buckets.append(b)
        return b

    for name, t in tensors:
        data = tensor_bytes(t)
        base = {"key": f"{name}:0", "tensor": name, "dtype": SAFETENSORS_DTYPES[t.dtype],
                "shape": list(t.shape), "hash": "sha256:" + hashlib.sha256(data).hexdigest()}
        if len(data) > bucket_bytes:
            count = -(-len(data) // bucket_bytes)
            for i in range(count):
                chunk = data[i * bucket_bytes:(i + 1) * bucket_bytes]
                b = new_bucket()
                b["data"] += chunk
                b["items"].append({**base, "offset": 0, "nbytes": len(chunk),
                                   "part": {"index": i, "count": count, "tensor_offset": i * bucket_bytes,
                                            "tensor_nbytes": len(data)}})
            current = None
            continue
        if current is None or -(-len(current["data"]) // alignment) * alignment + len(data) > bucket_bytes:
            current = new_bucket()
        at = -(-len(current["data"]) // alignment) * alignment
        current["data"] += bytes(at - len(current["data"])) + data
        current["items"].append({**base, "offset": at, "nbytes": len(data), "part": None})
    segments = []
    for i, b in enumerate(buckets):
        path = directory / f"hotweights.p{os.getpid()}.test.{version}.r0.b{i}.seg"
        path.write_bytes(bytes(lead) + bytes(b["data"]))
        segments.append({"path": str(path), "offset": lead, "length": len(b["data"]), "ranks": ranks,
                         "items": b["items"]})
    return {"schema": "hotweights.vllm.prepare", "payload_version": 1, "version": version,
            "verify_hashes": False, "allow_dtype_cast": False, "segments": segments}
