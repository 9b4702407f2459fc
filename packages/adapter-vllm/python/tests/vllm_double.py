"""A test double of the vLLM side: a worker class shaped like vLLM's GPU worker, the rule vLLM
applies when it mixes in `--worker-extension-cls`, and a tiny Llama whose parameters and
`load_weights` follow vLLM's layout and loading rules (fused q/k/v and gate/up, each
tensor-parallel rank keeping its own slice). Written for these tests; no vLLM code."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Iterable

import torch
from torch import nn
from transformers import LlamaConfig

# Attribute names of vLLM's GPU worker (the ones an extension must not reuse).
VLLM_WORKER_NAMES = [
    "init_device", "load_model", "update_config", "reload_weights", "update_weights",
    "start_weight_update", "finish_weight_update", "init_weight_transfer_engine",
    "determine_available_memory", "get_kv_cache_spec", "initialize_from_config",
    "compile_or_warm_up_model", "get_model", "execute_model", "sample_tokens", "profile",
    "execute_dummy_batch", "add_lora", "remove_lora", "list_loras", "pin_lora", "check_health",
    "save_sharded_state", "save_tensorized_model", "sleep", "wake_up", "shutdown",
    "get_supported_tasks", "reset_mm_cache", "_sleep_saved_buffers",
]


class WorkerBase:
    """Like vLLM's, the worker derives from a base class (the extension is appended after it)."""


def fake_worker_class() -> type:
    """A fresh worker class with vLLM's method names (each test injects into its own)."""
    ns: dict[str, Any] = {n: (lambda self, *a, **k: None) for n in VLLM_WORKER_NAMES}
    return type("Worker", (WorkerBase,), ns)


def inject_extension(worker_cls: type, extension_cls: type) -> list[str]:
    """vLLM's rule: no non-dunder attribute of the extension may exist on the worker; then the
    extension is appended to the worker's bases. Returns the callables it adds."""
    added: list[str] = []
    if extension_cls in worker_cls.__bases__:
        return added
    for attr in dir(extension_cls):
        if attr.startswith("__"):
            continue
        assert not hasattr(worker_cls, attr), (
            f"Worker class {worker_cls} already has an attribute {attr}, which conflicts with "
            f"the worker extension class {extension_cls}.")
        if callable(getattr(extension_cls, attr)):
            added.append(attr)
    worker_cls.__bases__ = worker_cls.__bases__ + (extension_cls,)
    return added


def make_worker(extension_cls: type, model: nn.Module, rank: int, tp_size: int) -> Any:
    cls = fake_worker_class()
    inject_extension(cls, extension_cls)
    w = cls()
    w.rank = rank
    w.device = torch.device("cpu")
    w.parallel_config = SimpleNamespace(tensor_parallel_size=tp_size)
    w.model_runner = SimpleNamespace(model=model, model_config=SimpleNamespace(quantization=None))
    return w


def tiny_config(**overrides: Any) -> LlamaConfig:
    """A tiny Llama (the benchmark passes larger sizes as overrides)."""
    sizes = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                 tie_word_embeddings=False)
    return LlamaConfig(**{**sizes, **overrides})


# --- loaders: each parameter carries the rule that narrows a full tensor to this rank ---------

Loader = Callable[..., None]


def _param(shape: tuple[int, ...], dtype: torch.dtype, loader: Loader) -> nn.Parameter:
    p = nn.Parameter(torch.zeros(shape, dtype=dtype), requires_grad=False)
    p.weight_loader = loader  # type: ignore[attr-defined]
    return p


def replicated(param: torch.Tensor, w: torch.Tensor) -> None:
    assert param.shape == w.shape, f"{tuple(w.shape)} into {tuple(param.shape)}"
    param.data.copy_(w)


def column(rank: int) -> Loader:
    def load(param: torch.Tensor, w: torch.Tensor) -> None:
        n = param.shape[0]
        param.data.copy_(w.narrow(0, rank * n, n))
    return load


def row(rank: int) -> Loader:
    def load(param: torch.Tensor, w: torch.Tensor) -> None:
        n = param.shape[1]
        param.data.copy_(w.narrow(1, rank * n, n))
    return load


def vocab(rank: int) -> Loader:
    def load(param: torch.Tensor, w: torch.Tensor) -> None:
        n = param.shape[0]
        rows = w[rank * n:(rank + 1) * n]
        param.data[:rows.shape[0]].copy_(rows)
    return load


def qkv(rank: int, tp: int, heads: int, kv_heads: int, head_dim: int) -> Loader:
    q_local = heads // tp
    kv_local = max(1, kv_heads // tp)
    replicas = max(1, tp // kv_heads)

    def load(param: torch.Tensor, w: torch.Tensor, shard: str) -> None:
        if shard == "q":
            at, n, src = 0, q_local * head_dim, rank
        else:
            at = (q_local if shard == "k" else q_local + kv_local) * head_dim
            n, src = kv_local * head_dim, rank // replicas
        param.data.narrow(0, at, n).copy_(w.narrow(0, src * n, n))
    return load


def merged(rank: int) -> Loader:
    def load(param: torch.Tensor, w: torch.Tensor, shard: int) -> None:
        n = param.shape[0] // 2
        param.data.narrow(0, shard * n, n).copy_(w.narrow(0, rank * n, n))
    return load


class _Weight(nn.Module):
    def __init__(self, p: nn.Parameter) -> None:
        super().__init__()
        self.weight = p


class TinyVllmLlama(nn.Module):
    """One tensor-parallel rank's Llama in vLLM's parameter layout."""

    packed_modules_mapping = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}

    def __init__(self, config: LlamaConfig, rank: int, tp: int, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.config = config
        h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
        nh, nkv = config.num_attention_heads, config.num_key_value_heads
        hd = h // nh
        kv_local = max(1, nkv // tp)
        self.model = nn.Module()
        self.model.embed_tokens = _Weight(_param((v // tp, h), dtype, vocab(rank)))
        layers = []
        for _ in range(config.num_hidden_layers):
            layer = nn.Module()
            layer.input_layernorm = _Weight(_param((h,), dtype, replicated))
            layer.post_attention_layernorm = _Weight(_param((h,), dtype, replicated))
            layer.self_attn = nn.Module()
            layer.self_attn.qkv_proj = _Weight(
                _param(((nh // tp + 2 * kv_local) * hd, h), dtype, qkv(rank, tp, nh, nkv, hd)))
            layer.self_attn.o_proj = _Weight(_param((h, nh * hd // tp), dtype, row(rank)))
            layer.mlp = nn.Module()
            layer.mlp.gate_up_proj = _Weight(_param((2 * i // tp, h), dtype, merged(rank)))
            layer.mlp.down_proj = _Weight(_param((h, i // tp), dtype, row(rank)))
            layers.append(layer)
        self.model.layers = nn.ModuleList(layers)
        self.model.norm = _Weight(_param((h,), dtype, replicated))
        self.lm_head = _Weight(_param((v // tp, h), dtype, column(rank)))
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    _STACKED = ((".qkv_proj", ".q_proj", "q"), (".qkv_proj", ".k_proj", "k"), (".qkv_proj", ".v_proj", "v"),
                (".gate_up_proj", ".gate_proj", 0), (".gate_up_proj", ".up_proj", 1))

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        loaded: set[str] = set()
        for name, w in weights:
            if "rotary_emb.inv_freq" in name:
                continue
            if self.config.tie_word_embeddings and name.startswith("lm_head."):
                continue
            for fused, part, shard in self._STACKED:
                if part in name:
                    target = name.replace(part, fused)
                    params[target].weight_loader(params[target], w, shard)  # type: ignore[operator]
                    break
            else:
                target = name
                p = params[target]  # an unknown name raises KeyError, as vLLM's loaders do
                getattr(p, "weight_loader", replicated)(p, w)
            loaded.add(target)
        return loaded


def gather(models: list[TinyVllmLlama]) -> dict[str, torch.Tensor]:
    """The checkpoint (Hugging Face names, full tensors) that a set of TP ranks holds."""
    cfg = models[0].config
    tp = len(models)
    h, nh, nkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
    hd = h // nh
    q_local, kv_local = nh // tp * hd, max(1, nkv // tp) * hd
    ps = [dict(m.named_parameters(remove_duplicate=False)) for m in models]
    out: dict[str, torch.Tensor] = {}

    def cat(name: str, dim: int) -> torch.Tensor:
        return torch.cat([p[name] for p in ps], dim)

    out["model.embed_tokens.weight"] = cat("model.embed_tokens.weight", 0)[:cfg.vocab_size]
    out["lm_head.weight"] = cat("lm_head.weight", 0)[:cfg.vocab_size]
    out["model.norm.weight"] = ps[0]["model.norm.weight"]
    for n in range(cfg.num_hidden_layers):
        pre = f"model.layers.{n}"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            out[f"{pre}.{norm}.weight"] = ps[0][f"{pre}.{norm}.weight"]
        fused = [p[f"{pre}.self_attn.qkv_proj.weight"] for p in ps]
        out[f"{pre}.self_attn.q_proj.weight"] = torch.cat([f[:q_local] for f in fused])
        kv_ranks = fused[:: max(1, tp // nkv)]
        out[f"{pre}.self_attn.k_proj.weight"] = torch.cat([f[q_local:q_local + kv_local] for f in kv_ranks])
        out[f"{pre}.self_attn.v_proj.weight"] = torch.cat([f[q_local + kv_local:] for f in kv_ranks])
        out[f"{pre}.self_attn.o_proj.weight"] = cat(f"{pre}.self_attn.o_proj.weight", 1)
        gu = [p[f"{pre}.mlp.gate_up_proj.weight"] for p in ps]
        half = gu[0].shape[0] // 2
        out[f"{pre}.mlp.gate_proj.weight"] = torch.cat([g[:half] for g in gu])
        out[f"{pre}.mlp.up_proj.weight"] = torch.cat([g[half:] for g in gu])
        out[f"{pre}.mlp.down_proj.weight"] = cat(f"{pre}.mlp.down_proj.weight", 1)
    return out
