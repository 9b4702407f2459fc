"""What the worker hands the training process: the offer (staged tensors) and the commit order.

    offer.json   {"schema": "hotweights.trainer.offer", "offer_version": 1, "txn": "...", "version": "v2",
                  "segments": [{"path": "/dev/shm/hotweights.p1.ab.v2.r0.b0.seg", "offset": 0, "length": 4096,
                                "items": [{"key": "fc.weight:0", "tensor": "fc.weight", "dtype": "F32",
                                           "shape": [8, 4], "offset": 0, "nbytes": 128, "part": null}]}]}
    commit.json  {"schema": "hotweights.trainer.commit", "txn": "...", "version": "v2",
                  "policy": "attenuate", "attenuation": 0.5}

Items are the plan's tensor items (`offset` inside the bucket; `part` for a tensor split across
buckets: {"index", "count", "tensor_offset", "tensor_nbytes"}).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .errors import OfferError

OFFER_SCHEMA = "hotweights.trainer.offer"
COMMIT_SCHEMA = "hotweights.trainer.commit"
OFFER_VERSION = 1
SEGMENT_PREFIX = "hotweights."

_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


def torch_dtype(name: str) -> Optional[torch.dtype]:
    dtype = getattr(torch, _DTYPES.get(name, ""), None)
    return dtype if isinstance(dtype, torch.dtype) else None


def dtype_name(dtype: torch.dtype) -> str:
    """The safetensors name of a torch dtype (as plans write it), or torch's own name."""
    torch_name = str(dtype).removeprefix("torch.")
    return next((n for n, t in _DTYPES.items() if t == torch_name), torch_name)


@dataclass(frozen=True)
class Item:
    key: str
    tensor: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    #: Where these bytes go inside the tensor, and the tensor's total bytes.
    tensor_offset: int
    tensor_nbytes: int


@dataclass(frozen=True)
class Segment:
    path: str
    offset: int
    length: int
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Offer:
    txn: str
    version: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class CommitOrder:
    txn: str
    version: str
    policy: str
    attenuation: float


def _get(o: Any, name: str, where: str, kind: type, what: str) -> Any:
    if not isinstance(o, dict) or name not in o:
        raise OfferError(f"{where}: missing field {name!r}")
    v = o[name]
    ok = isinstance(v, kind) and not isinstance(v, bool) if kind is not bool else isinstance(v, bool)
    if not ok or (kind is int and v < 0) or (kind is str and not v):
        raise OfferError(f"{where}.{name}: expected {what}, got {json.dumps(v)[:80]}")
    return v


def _item(o: Any, where: str) -> Item:
    dtype = _get(o, "dtype", where, str, "a dtype name")
    dt = torch_dtype(dtype)
    if dt is None:
        raise OfferError(f"{where}.dtype: {dtype!r} is not a dtype this module knows ({', '.join(_DTYPES)})")
    shape = _get(o, "shape", where, list, "a list of integers")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise OfferError(f"{where}.shape: expected a list of integers >= 0, got {shape}")
    nbytes = _get(o, "nbytes", where, int, "an integer >= 0")
    part = o.get("part")
    if part is None:
        tensor_offset, tensor_nbytes = 0, nbytes
    else:
        tensor_offset = _get(part, "tensor_offset", f"{where}.part", int, "an integer >= 0")
        tensor_nbytes = _get(part, "tensor_nbytes", f"{where}.part", int, "an integer >= 0")
    tensor = _get(o, "tensor", where, str, "a tensor name")
    expected = math.prod(shape) * torch.empty((), dtype=dt).element_size()
    if tensor_nbytes != expected or tensor_offset + nbytes > tensor_nbytes:
        raise OfferError(f"{where}: tensor {tensor} is {dtype}{list(shape)} ({expected} bytes) but the item "
                         f"says bytes {tensor_offset}..{tensor_offset + nbytes} of {tensor_nbytes}")
    return Item(_get(o, "key", where, str, "a key"), tensor, dtype, tuple(shape),
                _get(o, "offset", where, int, "an integer >= 0"), nbytes, tensor_offset, tensor_nbytes)


def _segment(o: Any, where: str) -> Segment:
    path = _get(o, "path", where, str, "a path")
    if not os.path.isabs(path) or not os.path.basename(path).startswith(SEGMENT_PREFIX):
        raise OfferError(f"{where}.path: expected an absolute path to a staged segment named "
                         f"{SEGMENT_PREFIX}*, got {path!r}")
    items = _get(o, "items", where, list, "a list")
    seg = Segment(path, _get(o, "offset", where, int, "an integer >= 0"),
                  _get(o, "length", where, int, "an integer >= 0"),
                  tuple(_item(it, f"{where}.items[{i}]") for i, it in enumerate(items)))
    for it in seg.items:
        if it.offset + it.nbytes > seg.length:
            raise OfferError(f"{where}: item {it.key} ends at {it.offset + it.nbytes}, past the bucket's "
                             f"{seg.length} bytes")
    return seg


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise OfferError(f"{what} is not JSON: {err}") from err


def parse_offer(text: str) -> Offer:
    o = _json(text, "offer.json")
    if not isinstance(o, dict) or o.get("schema") != OFFER_SCHEMA or o.get("offer_version") != OFFER_VERSION:
        raise OfferError(f"offer.json: expected schema {OFFER_SCHEMA!r} offer_version {OFFER_VERSION}; update "
                         "hotweights-trainer or @hotweights/adapter-trainer so both speak the same version")
    segments = _get(o, "segments", "offer", list, "a list")
    return Offer(_get(o, "txn", "offer", str, "a txn id"), _get(o, "version", "offer", str, "a version"),
                 tuple(_segment(s, f"offer.segments[{i}]") for i, s in enumerate(segments)))


def parse_commit(text: str) -> CommitOrder:
    o = _json(text, "commit.json")
    if not isinstance(o, dict) or o.get("schema") != COMMIT_SCHEMA:
        raise OfferError(f"commit.json: expected schema {COMMIT_SCHEMA!r}")
    att = o.get("attenuation")
    if not isinstance(att, (int, float)) or isinstance(att, bool):
        raise OfferError(f"commit.attenuation: expected a number, got {json.dumps(att)}")
    return CommitOrder(_get(o, "txn", "commit", str, "a txn id"), _get(o, "version", "commit", str, "a version"),
                       _get(o, "policy", "commit", str, "a policy name"), float(att))
