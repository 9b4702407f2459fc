"""Re-hashing staged tensors with the plan's algorithms (`<algo>:<hex>`)."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from .errors import StagedBytesError

# blake3 and xxh3 come from optional packages (`pip install hotweights-vllm[verify]`).
_MODULES = {"blake3": "blake3", "xxh3-64": "xxhash", "xxh3-128": "xxhash"}


def _hasher(algo: str) -> Callable[[], Any]:
    if algo == "sha256":
        return hashlib.sha256
    module = _MODULES.get(algo)
    if module is None:
        raise StagedBytesError(f"cannot verify hash algorithm {algo!r}: expected one of sha256, "
                               f"{', '.join(_MODULES)}")
    try:
        lib = __import__(module)
    except ImportError as err:
        raise StagedBytesError(f"verifying {algo} hashes needs the Python package {module!r}: "
                               "pip install 'hotweights-vllm[verify]'") from err
    name = "blake3" if algo == "blake3" else "xxh3_64" if algo == "xxh3-64" else "xxh3_128"
    factory: Callable[[], Any] = getattr(lib, name)
    return factory


def check_hash(tensor: str, expected: str, chunks: list[memoryview]) -> None:
    algo, _, hexdigest = expected.partition(":")
    h = _hasher(algo)()
    for c in chunks:
        h.update(c)
    got = h.hexdigest()
    if got.lower() != hexdigest.lower():
        raise StagedBytesError(f"tensor {tensor}: staged bytes hash to {algo}:{got}, the plan says "
                               f"{expected}; the staged copy is damaged, stage the update again")
