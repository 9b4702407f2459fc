"""Checks an offer against the live model, then copies the staged bytes into the live tensors.

Everything is checked before the first byte is copied (names, dtypes, shapes, that the staged
parts cover each tensor exactly, that every segment holds its bucket), so a refused offer leaves
the model untouched. Copies go into the existing storage of each parameter or buffer: no tensor
is re-allocated, and the optimizer keeps pointing at the same tensors.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import torch

from .errors import MismatchError, OfferError
from .offer import Item, Offer, Segment, torch_dtype


@dataclass(frozen=True)
class Copy:
    segment: Segment
    item: Item


def _coverage(name: str, items: list[Item]) -> list[str]:
    items.sort(key=lambda it: it.tensor_offset)
    at = 0
    for it in items:
        if it.tensor_offset != at:
            return [f"{name}: staged bytes {it.tensor_offset}.. follow {at} (a part is missing or overlaps)"]
        at += it.nbytes
    total = items[0].tensor_nbytes
    return [] if at == total else [f"{name}: {at} of {total} bytes staged (a part is missing)"]


def check(live: dict[str, torch.Tensor], offer: Offer) -> list[Copy]:
    """The copies that would apply `offer`; raises MismatchError/OfferError naming every problem."""
    problems: list[str] = []
    by_tensor: dict[str, list[Item]] = {}
    copies: list[Copy] = []
    for seg in offer.segments:
        try:
            size = os.stat(seg.path).st_size
        except OSError as err:
            raise OfferError(f"cannot open staged segment {seg.path}: {err.strerror}; was it released "
                             "before the commit?") from err
        if size < seg.offset + seg.length:
            raise OfferError(f"staged segment {seg.path} has {size} bytes, the bucket needs "
                             f"{seg.offset + seg.length}")
        for it in seg.items:
            by_tensor.setdefault(it.tensor, []).append(it)
            copies.append(Copy(seg, it))
    for name, items in by_tensor.items():
        t = live.get(name)
        first = items[0]
        if t is None:
            problems.append(f"{name}: not in the model")
            continue
        want = torch_dtype(first.dtype)
        if t.dtype != want:
            problems.append(f"{name}: staged {first.dtype}, live {str(t.dtype).removeprefix('torch.')}")
        if tuple(t.shape) != first.shape:
            problems.append(f"{name}: staged shape {list(first.shape)}, live {list(t.shape)}")
        if not t.is_contiguous():
            problems.append(f"{name}: the live tensor is not contiguous")
        problems += _coverage(name, items)
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise MismatchError(f"version {offer.version} does not fit the live model, nothing applied: "
                            f"{'; '.join(problems[:8])}{more}")
    return copies


def _copy_all(live: dict[str, torch.Tensor], copies: list[Copy], views: dict[str, memoryview]) -> int:
    # Every source and destination view is made before the first copy, so a bad view fails
    # with the model untouched; the views die when this returns, so the mappings can close.
    pairs = []
    for c in copies:
        if c.item.nbytes == 0:
            continue
        start = c.segment.offset + c.item.offset
        src = torch.frombuffer(views[c.segment.path][start:start + c.item.nbytes], dtype=torch.uint8)
        dst = live[c.item.tensor].detach().reshape(-1).view(torch.uint8)
        pairs.append((dst[c.item.tensor_offset:c.item.tensor_offset + c.item.nbytes], src))
    with torch.no_grad():
        for d, s in pairs:
            d.copy_(s)
    return sum(s.numel() for _, s in pairs)


def copy_in(live: dict[str, torch.Tensor], copies: list[Copy]) -> int:
    """Copies every staged item into its live tensor in place; returns the bytes copied."""
    maps: list[mmap.mmap] = []
    views: dict[str, memoryview] = {}
    try:
        for c in copies:
            if c.segment.path in views or c.segment.length == 0:
                continue
            fd = os.open(c.segment.path, os.O_RDONLY)
            try:
                # Private copy-on-write mapping: the staged bytes are never written.
                maps.append(mmap.mmap(fd, 0, access=mmap.ACCESS_COPY))
            finally:
                os.close(fd)
            views[c.segment.path] = memoryview(maps[-1])
        return _copy_all(live, copies, views)
    finally:
        for v in views.values():
            v.release()
        for m in maps:
            m.close()
