"""The parts of a commit that depend on the engine around the model: vLLM's layer-wise reload and
post-processing (found by importing vLLM's modules, stood in for here by recording modules), the
speculative-decoding drafter, and the deployments hw_prepare refuses (pipeline parallel, MoE)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from checkpoints import CHANGED, Checkpoint
from staging_double import stage, tensor_bytes
from transformers import LlamaForCausalLM
from vllm_double import TinyVllmLlama, gather, tiny_config
from worker_steps import assert_holds, refused, update, workers

from hotweights_vllm import NameMismatchError, UnsupportedModelError

DRAFTER_LAYERS = 1


def engine_modules(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, Any]], layerwise: bool) -> None:
    """Recording stand-ins for the vLLM modules the extension imports; without `layerwise` the
    engine is a vLLM that predates layer-wise reload."""
    def module(name: str, **attrs: Any) -> None:
        m = ModuleType(name)
        m.__path__ = []  # a package, so that the next level imports
        for k, v in attrs.items():
            setattr(m, k, v)
        monkeypatch.setitem(sys.modules, name, m)

    module("vllm")
    module("vllm.model_executor")
    module("vllm.model_executor.model_loader")
    module("vllm.model_executor.model_loader.utils",
           process_weights_after_loading=lambda model, model_config, device: calls.append(("post", model)))
    if layerwise:
        module("vllm.model_executor.model_loader.reload",
               initialize_layerwise_reload=lambda model: calls.append(("initialize", model)),
               finalize_layerwise_reload=lambda model, model_config: calls.append(("finalize", model)))
    else:
        monkeypatch.setitem(sys.modules, "vllm.model_executor.model_loader.reload", None)


def quantize(w: Any) -> Any:
    w.model_runner.model_config.quantization = "fp8"
    return w


def test_a_plain_load_is_post_processed_by_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      v1: Checkpoint) -> None:
    calls: list[tuple[str, Any]] = []
    engine_modules(monkeypatch, calls, layerwise=True)
    ws = workers(1)
    result = update(ws, "t", stage(tmp_path, "v1", v1))[0]
    assert (result["mode"], result["post_processing"]) == ("plain", "process_weights_after_loading")
    assert calls == [("post", ws[0].model_runner.model)]
    assert_holds(ws, v1)


def test_a_quantized_model_reloads_whole_layers_through_the_engine(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path, v1: Checkpoint,
                                                                   v2: Checkpoint) -> None:
    calls: list[tuple[str, Any]] = []
    engine_modules(monkeypatch, calls, layerwise=True)
    w = quantize(workers(1)[0])
    assert w.hw_info()["layerwise_reload"] is True
    partial = stage(tmp_path, "v2", [(n, t) for n, t in v2 if n == "model.layers.0.self_attn.k_proj.weight"])
    with pytest.raises(NameMismatchError, match=r"every tensor of each layer.*qkv_proj.weight \(q_proj\).*\(v_proj\)"):
        w.hw_prepare("t", json.dumps(partial))
    assert calls == []

    result = update([w], "t", stage(tmp_path, "v1", v1))[0]
    assert (result["mode"], result["post_processing"]) == ("layerwise", "finalize_layerwise_reload")
    model = w.model_runner.model
    assert calls == [("initialize", model), ("finalize", model)]
    assert_holds([w], v1)


def test_a_quantized_model_on_a_vllm_without_layerwise_reload_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path, v1: Checkpoint) -> None:
    calls: list[tuple[str, Any]] = []
    engine_modules(monkeypatch, calls, layerwise=False)
    w = quantize(workers(1)[0])
    assert w.hw_info()["layerwise_reload"] is False
    refused([w], stage(tmp_path, "v1", v1), NameMismatchError, "no layer-wise reload")
    assert calls == []


# --- the speculative-decoding drafter -------------------------------------------------------

def drafter_checkpoint(seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(num_hidden_layers=DRAFTER_LAYERS)).to(torch.bfloat16)
    return [(f"drafter.{n}", t.detach().clone()) for n, t in model.state_dict().items()]


def with_drafters(ws: list[Any]) -> list[Any]:
    """vLLM's runner keeps its proposer as `drafter`, whose `model` has its own load_weights."""
    tp = len(ws)
    for r, w in enumerate(ws):
        w.model_runner.drafter = SimpleNamespace(
            model=TinyVllmLlama(tiny_config(num_hidden_layers=DRAFTER_LAYERS), r, tp))
    return ws


def drafters_hold(ws: list[Any], checkpoint: Checkpoint) -> None:
    held = gather([w.model_runner.drafter.model for w in ws])
    assert sorted(f"drafter.{n}" for n in held) == sorted(n for n, _ in checkpoint)
    for name, t in checkpoint:
        assert tensor_bytes(held[name.removeprefix("drafter.")]) == tensor_bytes(t), name


@pytest.mark.parametrize("tp", [1, 2])
def test_the_drafter_loads_its_tensors_through_its_own_load_weights(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path, v1: Checkpoint,
                                                                    v2: Checkpoint, tp: int) -> None:
    calls: list[tuple[str, Any]] = []
    engine_modules(monkeypatch, calls, layerwise=True)
    ws = with_drafters(workers(tp))
    d1, d2 = drafter_checkpoint(5), drafter_checkpoint(6)
    prepared = ws[0].hw_prepare("t1", json.dumps(stage(tmp_path, "v1", v1 + d1)))
    assert prepared["drafter_tensors"] == len(d1)
    for w in ws[1:]:
        w.hw_prepare("t1", json.dumps(stage(tmp_path, "v1", v1 + d1)))
    results = [w.hw_commit("t1", "v1") for w in ws]
    assert_holds(ws, v1)
    drafters_hold(ws, d1)
    assert results[0]["drafter_post_processing"] == "process_weights_after_loading"
    assert "drafter.model.layers.0.self_attn.qkv_proj.weight" in results[0]["loaded"]
    # Post-processing ran on each model once per rank: the served model, then the drafter.
    assert calls == [c for w in ws for c in (("post", w.model_runner.model), ("post", w.model_runner.drafter.model))]
    assert any(k.startswith("drafter.") for k in ws[0].hw_verify()["params"])

    # A delta that changes both, then a rollback: the drafter goes back with the model.
    changed = [(n, t) for n, t in v2 if n in CHANGED] + [d2[0], d2[-1]]
    update(ws, "t2", stage(tmp_path, "v2", changed))
    drafters_hold(ws, [d2[0]] + d1[1:-1] + [d2[-1]])
    assert [w.hw_rollback("v2")["rolled_back"] for w in ws] == [True] * tp
    assert_holds(ws, v1)
    drafters_hold(ws, d1)


def test_drafter_tensors_for_a_server_without_a_drafter_are_refused(tmp_path: Path, v1: Checkpoint) -> None:
    refused(workers(1), stage(tmp_path, "v1", v1 + drafter_checkpoint(5)), NameMismatchError,
            "speculative-decoding drafter .*runs none")


# --- deployments not supported yet -----------------------------------------------------------

def test_pipeline_parallel_servers_are_refused(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(1)
    update(ws, "t1", stage(tmp_path, "v1", v1))
    ws[0].parallel_config.pipeline_parallel_size = 2
    refused(ws, stage(tmp_path, "v1b", v1), UnsupportedModelError,
            r"pipeline parallelism \(pipeline_parallel_size=2\) is not supported")


def test_mixture_of_experts_tensors_are_refused(tmp_path: Path, v1: Checkpoint) -> None:
    expert = ("model.layers.0.mlp.experts.3.gate_proj.weight", torch.ones(64, 32, dtype=torch.bfloat16))
    refused(workers(1), stage(tmp_path, "v1", v1 + [expert]), UnsupportedModelError,
            r"mixture-of-experts weights \(model\.layers\.0\.mlp\.experts\.3\.gate_proj\.weight\)")
