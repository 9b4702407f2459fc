"""Staged segments mapped into this worker, and a tensor view per staged tensor.

A segment is mapped private (copy-on-write) from a read-only descriptor: the staged bytes are
never written, and a loader that modifies its input in place gets private pages instead of
crashing on a read-only mapping. Tensors whose bytes sit in one bucket are zero-copy views of
the mapping; a tensor split across buckets is assembled into one host buffer.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import Optional

import torch

from .dtypes import element_size, torch_dtype
from .errors import StagedBytesError
from .payload import Item, Payload, Segment


@dataclass
class StagedTensor:
    """One checkpoint tensor ready for load_weights."""

    name: str
    key: str
    tensor: torch.Tensor
    dtype: str
    hash: Optional[str]
    zero_copy: bool
    chunks: list[memoryview] = field(default_factory=list)


class MappedSegments:
    """The mappings of one transaction; `close` unmaps them once no view is used any more."""

    def __init__(self) -> None:
        self._maps: list[mmap.mmap] = []

    def map(self, seg: Segment) -> memoryview:
        try:
            fd = os.open(seg.path, os.O_RDONLY)
        except OSError as err:
            raise StagedBytesError(f"cannot open staged segment {seg.path}: {err.strerror}; "
                                   "was it released before commit?") from err
        try:
            size = os.fstat(fd).st_size
            end = seg.offset + seg.length
            if size < end:
                raise StagedBytesError(f"staged segment {seg.path} has {size} bytes, the plan needs "
                                       f"{end} (offset {seg.offset} + length {seg.length})")
            if size == 0:
                return memoryview(b"")
            m = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
        finally:
            os.close(fd)
        self._maps.append(m)
        return memoryview(m)[seg.offset:end]

    def close(self) -> None:
        for m in self._maps:
            try:
                m.close()
            except BufferError:
                pass  # a view is still referenced; the mapping goes when it is collected
        self._maps.clear()


def _check_item(seg: Segment, item: Item, where: str) -> None:
    dtype = torch_dtype(item.dtype)
    assert dtype is not None  # the payload parser checked it
    if item.offset + item.nbytes > seg.length:
        raise StagedBytesError(f"{where} ({item.tensor}) ends at {item.offset + item.nbytes}, past the "
                               f"segment's {seg.length} bytes")
    size = element_size(dtype)
    if item.part is None and (seg.offset + item.offset) % size != 0:
        raise StagedBytesError(f"{where} ({item.tensor}, {item.dtype}) starts at byte "
                               f"{seg.offset + item.offset}, not a multiple of {size}: plan with an "
                               "alignment of at least the largest element size")


def stage_tensors(payload: Payload, tp_rank: int, segments: MappedSegments) -> list[StagedTensor]:
    """Maps this rank's segments and returns one tensor per staged checkpoint tensor."""
    whole: dict[str, StagedTensor] = {}
    parts: dict[str, list[tuple[Item, memoryview]]] = {}
    for si, seg in enumerate(payload.segments):
        if seg.ranks is not None and tp_rank not in seg.ranks:
            continue
        for ii, item in enumerate(seg.items):
            _check_item(seg, item, f"segments[{si}].items[{ii}]")
        view = segments.map(seg)
        for item in seg.items:
            chunk = view[item.offset:item.offset + item.nbytes]
            if item.part is not None:
                parts.setdefault(item.key, []).append((item, chunk))
                continue
            if item.key in whole:
                raise StagedBytesError(f"tensor {item.tensor} ({item.key}) is staged twice")
            whole[item.key] = StagedTensor(item.tensor, item.key, _view(chunk, item), item.dtype, item.hash,
                                           True, [chunk])
    for key, chunks in parts.items():
        whole[key] = _assemble(key, chunks)
    return list(whole.values())


def _view(chunk: memoryview, item: Item) -> torch.Tensor:
    dtype = torch_dtype(item.dtype)
    assert dtype is not None
    if item.nbytes == 0:
        return torch.empty(item.shape, dtype=dtype)
    return torch.frombuffer(chunk, dtype=dtype).reshape(item.shape)


def _assemble(key: str, chunks: list[tuple[Item, memoryview]]) -> StagedTensor:
    chunks.sort(key=lambda c: c[0].part.index if c[0].part else 0)
    first = chunks[0][0]
    assert first.part is not None
    count, total = first.part.count, first.part.tensor_nbytes
    indexes = [c[0].part.index for c in chunks if c[0].part]
    if indexes != list(range(count)):
        raise StagedBytesError(f"tensor {first.tensor} ({key}) is split in {count} parts but parts "
                               f"{indexes} are staged on this rank")
    buf = bytearray(total)
    at = 0
    for item, chunk in chunks:
        assert item.part is not None
        if item.part.tensor_offset != at or at + item.nbytes > total:
            raise StagedBytesError(f"tensor {first.tensor} ({key}): part {item.part.index} is at "
                                   f"{item.part.tensor_offset}, expected {at}")
        buf[at:at + item.nbytes] = chunk
        at += item.nbytes
    if at != total:
        raise StagedBytesError(f"tensor {first.tensor} ({key}): parts hold {at} of {total} bytes")
    whole = Item(first.key, first.tensor, first.dtype, first.shape, 0, total, first.hash, None)
    mv = memoryview(buf)
    return StagedTensor(first.tensor, key, _view(mv, whole), first.dtype, first.hash, False, [mv])
