"""safetensors dtype names (as written in manifests and plans) to torch dtypes."""

from __future__ import annotations

from typing import Optional

import torch

# The torch attribute for each safetensors dtype; getattr keeps older torch builds importable.
_TORCH_NAMES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}


def torch_dtype(name: str) -> Optional[torch.dtype]:
    attr = _TORCH_NAMES.get(name)
    dtype = getattr(torch, attr, None) if attr else None
    return dtype if isinstance(dtype, torch.dtype) else None


def known_dtypes() -> list[str]:
    return [n for n in _TORCH_NAMES if torch_dtype(n) is not None]


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
