"""The prepare payload the TypeScript adapter sends through `POST /collective_rpc`.

vLLM's HTTP endpoint forwards only string arguments, so the payload travels as one JSON string:

    {
      "schema": "hotweights.vllm.prepare",
      "payload_version": 1,
      "version": "v2",                  # the version this transaction makes live
      "verify_hashes": false,           # re-hash every tensor here before accepting it
      "allow_dtype_cast": false,        # accept a float dtype other than the live parameter's
      "drafter_prefix": "drafter.",     # optional: tensors named so go to the speculative drafter
      "segments": [{
        "path": "/dev/shm/hotweights.p123.ab12cd34.v2.r0.b0.seg",
        "offset": 0,                    # where the bucket starts in the file
        "length": 4096,                 # the bucket's bytes
        "ranks": null,                  # tensor-parallel ranks that load it (null: every rank)
        "items": [{
          "key": "model.norm.weight:0", "tensor": "model.norm.weight",
          "dtype": "BF16", "shape": [4096],
          "offset": 0,                  # inside the bucket
          "nbytes": 8192,
          "hash": "sha256:…",           # of the whole tensor (optional unless verify_hashes)
          "part": null                  # or {"index", "count", "tensor_offset", "tensor_nbytes"}
        }]
      }]
    }

Items are the plan's tensor items (`plan.buckets[].items[]`), unchanged; segments are the
buckets as staged on this host.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

from .dtypes import element_size, known_dtypes, torch_dtype
from .errors import PayloadError

SCHEMA = "hotweights.vllm.prepare"
PAYLOAD_VERSION = 1
SEGMENT_PREFIX = "hotweights."
DRAFTER_PREFIX = "drafter."


@dataclass(frozen=True)
class Part:
    index: int
    count: int
    tensor_offset: int
    tensor_nbytes: int


@dataclass(frozen=True)
class Item:
    key: str
    tensor: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    hash: Optional[str]
    part: Optional[Part]


@dataclass(frozen=True)
class Segment:
    path: str
    offset: int
    length: int
    ranks: Optional[tuple[int, ...]]
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Payload:
    version: str
    verify_hashes: bool
    allow_dtype_cast: bool
    segments: tuple[Segment, ...]
    # Checkpoint names under this prefix belong to the speculative-decoding drafter ("": none do).
    drafter_prefix: str = DRAFTER_PREFIX


def _fail(where: str, expected: str, got: Any) -> PayloadError:
    return PayloadError(f"prepare payload {where}: expected {expected}, got {json.dumps(got)[:80]}")


def _field(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise PayloadError(f"prepare payload {where}: missing field {name!r}")
    return obj[name]


def _int(obj: dict[str, Any], name: str, where: str) -> int:
    v = _field(obj, name, where)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise _fail(f"{where}.{name}", "an integer >= 0", v)
    return v


def _str(obj: dict[str, Any], name: str, where: str) -> str:
    v = _field(obj, name, where)
    if not isinstance(v, str) or not v:
        raise _fail(f"{where}.{name}", "a non-empty string", v)
    return v


def _bool(obj: dict[str, Any], name: str, where: str) -> bool:
    v = obj.get(name, False)
    if not isinstance(v, bool):
        raise _fail(f"{where}.{name}", "true or false", v)
    return v


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(where, "an object", v)
    return v


def _part(v: Any, where: str) -> Optional[Part]:
    if v is None:
        return None
    o = _obj(v, where)
    p = Part(_int(o, "index", where), _int(o, "count", where), _int(o, "tensor_offset", where),
             _int(o, "tensor_nbytes", where))
    if p.count < 1 or p.index >= p.count:
        raise _fail(where, "index < count", o)
    return p


def _item(v: Any, where: str) -> Item:
    o = _obj(v, where)
    dtype = _field(o, "dtype", where)
    if not isinstance(dtype, str) or torch_dtype(dtype) is None:
        raise _fail(f"{where}.dtype", f"a tensor dtype ({', '.join(known_dtypes())})", dtype)
    shape = _field(o, "shape", where)
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise _fail(f"{where}.shape", "a list of integers >= 0", shape)
    h = o.get("hash")
    if h is not None and (not isinstance(h, str) or ":" not in h):
        raise _fail(f"{where}.hash", "\"<algo>:<hex>\" or null", h)
    item = Item(_str(o, "key", where), _str(o, "tensor", where), dtype, tuple(shape),
                _int(o, "offset", where), _int(o, "nbytes", where), h, _part(o.get("part"), f"{where}.part"))
    whole = item.part.tensor_nbytes if item.part else item.nbytes
    dt = torch_dtype(dtype)
    assert dt is not None
    if whole != math.prod(shape) * element_size(dt):
        raise PayloadError(
            f"prepare payload {where}: tensor {item.tensor} is {dtype}{list(shape)}, which is "
            f"{math.prod(shape) * element_size(dt)} bytes, but the item says {whole}; "
            "the plan does not describe this tensor's bytes")
    return item


def _segment(v: Any, where: str) -> Segment:
    o = _obj(v, where)
    path = _str(o, "path", where)
    if not os.path.isabs(path) or not os.path.basename(path).startswith(SEGMENT_PREFIX):
        raise _fail(f"{where}.path", f"an absolute path to a staged segment named {SEGMENT_PREFIX}*", path)
    ranks = o.get("ranks")
    if ranks is not None and (not isinstance(ranks, list)
                              or not all(isinstance(r, int) and not isinstance(r, bool) for r in ranks)):
        raise _fail(f"{where}.ranks", "a list of tensor-parallel ranks or null", ranks)
    items = _field(o, "items", where)
    if not isinstance(items, list):
        raise _fail(f"{where}.items", "a list", items)
    return Segment(path, _int(o, "offset", where), _int(o, "length", where),
                   tuple(ranks) if ranks is not None else None,
                   tuple(_item(it, f"{where}.items[{i}]") for i, it in enumerate(items)))


def parse_payload(raw: Union[str, bytes, dict[str, Any]]) -> Payload:
    """Validates the payload; every error names the field and what was expected."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            raise PayloadError(f"prepare payload is not JSON: {err}") from err
    o = _obj(raw, "(top level)")
    if o.get("schema") != SCHEMA or o.get("payload_version") != PAYLOAD_VERSION:
        raise PayloadError(
            f"prepare payload: expected schema {SCHEMA!r} payload_version {PAYLOAD_VERSION}, got "
            f"{o.get('schema')!r} {o.get('payload_version')!r}; update hotweights-vllm or the adapter "
            "so both speak the same version")
    segments = _field(o, "segments", "(top level)")
    if not isinstance(segments, list):
        raise _fail("segments", "a list", segments)
    prefix = o.get("drafter_prefix", DRAFTER_PREFIX)
    if not isinstance(prefix, str):
        raise _fail("drafter_prefix", "a string (\"\": no drafter tensors)", prefix)
    return Payload(_str(o, "version", "(top level)"), _bool(o, "verify_hashes", "(top level)"),
                   _bool(o, "allow_dtype_cast", "(top level)"),
                   tuple(_segment(s, f"segments[{i}]") for i, s in enumerate(segments)), prefix)
