from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from staging_double import stage, tensor_bytes
from transformers import LlamaForCausalLM
from checkpoints import CHANGED, Checkpoint
from vllm_double import TinyVllmLlama, fake_worker_class, inject_extension, make_worker, tiny_config
from worker_steps import assert_holds, digests, refused, update, workers

from hotweights_vllm import (
    CommitFailedError,
    HotweightsWorkerExtension,
    NameMismatchError,
    PayloadError,
    StagedBytesError,
    TxnError,
)

@pytest.mark.parametrize("tp", [1, 2])
def test_full_then_delta_update_is_byte_exact(tmp_path: Path, v1: Checkpoint, v2: Checkpoint, tp: int) -> None:
    ws = workers(tp)
    full = stage(tmp_path, "v1", v1)
    results = update(ws, "t1", full)
    assert_holds(ws, v1)
    assert all(r["version"] == "v1" and r["mode"] == "plain" for r in results)
    assert "model.layers.0.self_attn.qkv_proj.weight" in results[0]["loaded"]

    delta = [(n, t) for n, t in v2 if n in CHANGED]
    prepared = [w.hw_prepare("t2", json.dumps(stage(tmp_path, "v2", delta, lead=64))) for w in ws]
    assert prepared[0]["tensors"] == 3 and prepared[0]["zero_copy"] == 3
    for w in ws:
        w.hw_commit("t2", "v2")
    assert_holds(ws, v2)
    assert [w.hw_info()["live_version"] for w in ws] == ["v2"] * tp
    assert [w.hw_info()["tp_rank"] for w in ws] == list(range(tp))


def test_a_tensor_split_across_buckets_is_assembled(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(2)
    payload = stage(tmp_path, "v1", v1, bucket_bytes=4096)
    split = {it["tensor"] for s in payload["segments"] for it in s["items"] if it["part"]}
    assert "model.embed_tokens.weight" in split
    prepared = ws[0].hw_prepare("t", json.dumps(payload))
    assert prepared["zero_copy"] == prepared["tensors"] - len(split)
    ws[1].hw_prepare("t", json.dumps(payload))
    for w in ws:
        w.hw_commit("t", "v1")
    assert_holds(ws, v1)


def test_rollback_restores_the_previous_version(tmp_path: Path, v1: Checkpoint, v2: Checkpoint) -> None:
    ws = workers(2)
    update(ws, "t1", stage(tmp_path, "v1", v1))
    update(ws, "t2", stage(tmp_path, "v2", [(n, t) for n, t in v2 if n in CHANGED]))
    assert [(w.hw_info()["can_roll_back"], w.hw_info()["rollback_to"]) for w in ws] == [(True, "v1")] * 2
    assert [w.hw_rollback("v2")["rolled_back"] for w in ws] == [True, True]
    assert ws[0].hw_info()["can_roll_back"] is False
    assert_holds(ws, v1)
    assert [w.hw_info()["live_version"] for w in ws] == ["v1", "v1"]
    assert ws[0].hw_rollback("v2")["rolled_back"] is False


def test_replicas_of_one_tp_rank_report_the_same_digest(tmp_path: Path, v1: Checkpoint) -> None:
    a, b = workers(2), workers(2)
    payload = stage(tmp_path, "v1", v1)
    update(a, "t", payload)
    update(b, "t", payload)
    assert digests(a) == digests(b)
    assert digests(a)[0] != digests(a)[1]
    assert a[0].hw_verify()["params"].keys() == dict(a[0].model_runner.model.named_parameters()).keys()


@pytest.mark.parametrize("tp", [1, 2])
def test_unknown_tensor_names_are_refused(tmp_path: Path, v1: Checkpoint, tp: int) -> None:
    extra = v1 + [("model.layers.0.self_attn.q_norm.weight", torch.ones(8, dtype=torch.bfloat16))]
    refused(workers(tp), stage(tmp_path, "v9", extra), NameMismatchError, "q_norm")


@pytest.mark.parametrize("tp", [1, 2])
def test_wrong_dtypes_and_sizes_are_refused(tmp_path: Path, v1: Checkpoint, tp: int) -> None:
    ws = workers(tp)
    as_f32 = [(n, t.float() if n.endswith("q_proj.weight") else t) for n, t in v1]
    refused(ws, stage(tmp_path, "f32", as_f32), NameMismatchError, "float32")
    wider = [(n, torch.zeros(t.shape[0], t.shape[1] + 1, dtype=t.dtype) if n.endswith("o_proj.weight") else t)
             for n, t in v1]
    refused(ws, stage(tmp_path, "wide", wider), NameMismatchError, "o_proj")

    cast = stage(tmp_path, "f32", as_f32)
    cast["allow_dtype_cast"] = True
    update(ws, "cast", cast)
    assert_holds(ws, [(n, t.bfloat16()) for n, t in as_f32])


def test_staged_bytes_that_do_not_match_the_plan_are_refused(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(1)
    payload = stage(tmp_path, "v1", [(n, t) for n, t in v1 if n.startswith("model.layers.0.")])
    item = payload["segments"][0]["items"][1]

    bad_size = json.loads(json.dumps(payload))
    bad_size["segments"][0]["items"][1]["nbytes"] = item["nbytes"] - 2
    refused(ws, bad_size, PayloadError, "bytes")

    misaligned = json.loads(json.dumps(payload))
    misaligned["segments"][0]["items"][1]["offset"] = item["offset"] + 1
    refused(ws, misaligned, StagedBytesError, "multiple of 2")

    short = json.loads(json.dumps(payload))
    short["segments"][0]["length"] += 1024
    refused(ws, short, StagedBytesError, "has .* bytes")

    elsewhere = json.loads(json.dumps(payload))
    elsewhere["segments"][0]["path"] = "/etc/passwd"
    refused(ws, elsewhere, PayloadError, "staged segment")


def test_hashes_are_verified_when_asked(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(1)
    payload = stage(tmp_path, "v1", v1)
    payload["verify_hashes"] = True
    assert ws[0].hw_prepare("ok", json.dumps(payload))["verified_hashes"] is True
    ws[0].hw_release("ok")
    seg = Path(payload["segments"][0]["path"])
    data = bytearray(seg.read_bytes())
    data[payload["segments"][0]["items"][0]["offset"]] ^= 0xFF
    seg.write_bytes(bytes(data))
    refused(ws, payload, StagedBytesError, "hash")


def test_a_failing_load_puts_the_previous_weights_back(tmp_path: Path, v1: Checkpoint, v2: Checkpoint) -> None:
    ws = workers(2)
    update(ws, "t1", stage(tmp_path, "v1", v1))
    model = ws[1].model_runner.model
    real = model.load_weights

    def fails_half_way(weights: Any) -> set[str]:
        items = list(weights)
        real(items[: len(items) // 2])
        raise RuntimeError("device lost")

    model.load_weights = fails_half_way
    payload = stage(tmp_path, "v2", v2)
    for w in ws:
        w.hw_prepare("t2", json.dumps(payload))
    ws[0].hw_commit("t2", "v2")
    with pytest.raises(CommitFailedError, match="previous weights restored.*device lost"):
        ws[1].hw_commit("t2", "v2")
    assert ws[1].hw_info()["live_version"] == "v1"
    # The adapter then rolls back the ranks that committed this transaction: every rank is on v1 again.
    assert ws[1].hw_rollback("t2")["rolled_back"] is False
    assert ws[0].hw_rollback("t2")["rolled_back"] is True
    assert_holds(ws, v1)


def test_commit_needs_the_prepared_version(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(1)
    ws[0].hw_prepare("t", json.dumps(stage(tmp_path, "v1", v1)))
    with pytest.raises(TxnError, match="prepares 'v1', not 'v2'"):
        ws[0].hw_commit("t", "v2")
    assert ws[0].hw_release("t")["released"] is True
    assert ws[0].hw_release("t")["released"] is False


def test_rotary_caches_are_skipped(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(1)
    with_rotary = v1 + [("model.layers.0.self_attn.rotary_emb.inv_freq", torch.ones(4))]
    prepared = ws[0].hw_prepare("t", json.dumps(stage(tmp_path, "v1", with_rotary)))
    assert prepared["skipped"] == ["model.layers.0.self_attn.rotary_emb.inv_freq"]
    ws[0].hw_commit("t", "v1")
    assert_holds(ws, v1)


def test_the_extension_passes_vllms_name_clash_check() -> None:
    added = inject_extension(fake_worker_class(), HotweightsWorkerExtension)
    assert {"hw_info", "hw_prepare", "hw_commit", "hw_verify", "hw_release", "hw_rollback"} <= set(added)
    assert all(a.startswith(("hw_", "_hw_")) for a in added)

    class Clashing(HotweightsWorkerExtension):
        def reload_weights(self) -> None: ...

    with pytest.raises(AssertionError, match="already has an attribute reload_weights"):
        inject_extension(fake_worker_class(), Clashing)


def test_a_tied_lm_head_is_skipped_like_vllm_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = tiny_config(tie_word_embeddings=True)
    tied = [(n, t.detach().clone()) for n, t in LlamaForCausalLM(config).to(torch.bfloat16).state_dict().items()]
    assert "lm_head.weight" in dict(tied)
    ws = [make_worker(HotweightsWorkerExtension, TinyVllmLlama(config, r, 2), r, 2) for r in range(2)]
    prepared = [w.hw_prepare("t", json.dumps(stage(tmp_path, "v1", tied))) for w in ws]
    assert prepared[0]["skipped"] == ["lm_head.weight"]
    for w in ws:
        w.hw_commit("t", "v1")
    assert_holds(ws, tied)


def test_a_new_prepare_drops_a_transaction_left_unfinished(tmp_path: Path, v1: Checkpoint) -> None:
    ws = workers(1)
    ws[0].hw_prepare("left-by-a-dead-sidecar", json.dumps(stage(tmp_path, "v1", v1)))
    ws[0].hw_prepare("t", json.dumps(stage(tmp_path, "v1b", v1)))
    assert ws[0].hw_info()["prepared"] == ["t"]
    with pytest.raises(TxnError):
        ws[0].hw_commit("left-by-a-dead-sidecar", "v1")
    ws[0].hw_commit("t", "v1b")
    assert_holds(ws, v1)
