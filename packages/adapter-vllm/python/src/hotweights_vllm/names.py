"""Which live parameter each staged checkpoint tensor lands in, checked before anything loads.

The rules follow vLLM's model loaders: a checkpoint name is a parameter of the model, or part of
a fused parameter listed in the model's `packed_modules_mapping` (q/k/v into `qkv_proj`,
gate/up into `gate_up_proj`), after the model's `hf_to_vllm_mapper` renames, if it has one.
Rotary caches are skipped, and `lm_head.weight` is skipped when the embeddings are tied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .errors import NameMismatchError

_SKIPPED = ("rotary_emb.inv_freq", "rotary_emb.cos_cached", "rotary_emb.sin_cached")
_LAYER = re.compile(r"\.layers\.(\d+)\.")
# vLLM pads a vocabulary-parallel dimension to a multiple of 64 before splitting it.
_VOCAB_PADDING = 64


@dataclass(frozen=True)
class Target:
    """Where one checkpoint tensor goes: a live parameter, and the shard of it when fused."""

    checkpoint_name: str
    param: str
    shard: Optional[str]


def _mapped(model: torch.nn.Module, name: str) -> Optional[str]:
    mapper = getattr(model, "hf_to_vllm_mapper", None)
    rename = getattr(mapper, "_map_name", None)
    return rename(name) if callable(rename) else name


def _tied(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    return bool(getattr(config, "tie_word_embeddings", False))


def resolve(model: torch.nn.Module, name: str, params: dict[str, torch.nn.Parameter]) -> Optional[Target]:
    """The target of `name`, None when the loader skips it; raises KeyError when unknown."""
    mapped = _mapped(model, name)
    if mapped is None or any(s in mapped for s in _SKIPPED):
        return None
    # A tied lm_head shares the embedding's parameter; vLLM's loaders skip its checkpoint copy.
    if mapped.startswith("lm_head.") and _tied(model):
        return None
    if mapped in params:
        return Target(name, mapped, None)
    packed: dict[str, list[str]] = getattr(model, "packed_modules_mapping", None) or {}
    for fused, shards in packed.items():
        for shard in shards:
            needle = f".{shard}."
            if needle in mapped:
                candidate = mapped.replace(needle, f".{fused}.", 1)
                if candidate in params:
                    return Target(name, candidate, shard)
    raise KeyError(name)


def _is_vocab(param: str) -> bool:
    return "embed_tokens" in param or param.startswith("lm_head.")


def _fits(staged: tuple[int, ...], live: torch.Size, tp_size: int, fused: bool, vocab: bool) -> bool:
    """Whether a full checkpoint shape can load into this rank's (possibly sharded) parameter."""
    if len(staged) != len(live):
        return False
    for d, (s, p) in enumerate(zip(staged, live)):
        if fused and d == 0:
            # A fused parameter holds several checkpoint tensors along dim 0.
            ok = s <= p * tp_size
        elif vocab and d == 0:
            ok = s <= p * tp_size < s + _VOCAB_PADDING
        else:
            ok = s in (p, p * tp_size)
        if not ok:
            return False
    return True


def match(model: torch.nn.Module, staged: list[Any], tp_size: int,
          allow_dtype_cast: bool) -> tuple[list[Target], list[str]]:
    """Targets for every staged tensor (same order) and the names the loader skips.

    `staged` holds objects with `name`, `dtype` (torch) and `shape`. Raises NameMismatchError
    naming every tensor that has no parameter or whose shape or dtype cannot load.
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    targets: list[Target] = []
    skipped: list[str] = []
    unknown: list[str] = []
    unfit: list[str] = []
    for t in staged:
        try:
            target = resolve(model, t.name, params)
        except KeyError:
            unknown.append(t.name)
            continue
        if target is None:
            skipped.append(t.name)
            continue
        live = params[target.param]
        if live.is_floating_point() and tuple(t.shape) != () and not _fits(
                tuple(t.shape), live.shape, tp_size, target.shard is not None,
                _is_vocab(target.param)):
            unfit.append(f"{t.name} is {list(t.shape)} but {target.param} is {list(live.shape)} "
                         f"at tensor-parallel size {tp_size}")
        elif live.is_floating_point() and t.dtype != live.dtype and not (
                allow_dtype_cast and t.dtype.is_floating_point):
            unfit.append(f"{t.name} is {t.dtype} but {target.param} is {live.dtype} (set "
                         "allow_dtype_cast to load it converted)")
        targets.append(target)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise NameMismatchError(f"{len(unknown)} staged tensor(s) match no parameter of "
                                f"{type(model).__name__}: {shown}; publish a checkpoint of the model this "
                                "server runs")
    if unfit:
        raise NameMismatchError("staged tensors do not fit the live parameters: " + "; ".join(unfit[:5]))
    return targets, skipped


def uncovered_layers(model: torch.nn.Module, targets: list[Target]) -> list[str]:
    """Parameters of touched modules that the update leaves out (layer-wise reload needs them all)."""
    packed: dict[str, list[str]] = getattr(model, "packed_modules_mapping", None) or {}
    touched: dict[str, set[Optional[str]]] = {}
    for t in targets:
        touched.setdefault(t.param, set()).add(t.shard)
    missing: list[str] = []
    for module_name in sorted({p.rpartition(".")[0] for p in touched}):
        module = model.get_submodule(module_name) if module_name else model
        for pname, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{pname}" if module_name else pname
            shards = touched.get(full)
            if shards is None:
                missing.append(full)
                continue
            fused = module_name.rpartition(".")[2]
            need = set(packed.get(fused, [])) if None not in shards else set()
            missing.extend(f"{full} ({s})" for s in sorted(need - {s for s in shards if s}))
    return missing


def layer_order(name: str) -> tuple[int, int, str]:
    """Sort key: embeddings, then layer by layer, then the rest (final norm, lm_head)."""
    m = _LAYER.search(f".{name}")
    if m:
        return (1, int(m.group(1)), name)
    return (0 if "embed" in name else 2, 0, name)
