"""What the adapter does to the extension through collective_rpc, for the tests: workers of one
server, an update on every rank, and checks of what the ranks hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from checkpoints import Checkpoint
from staging_double import tensor_bytes
from vllm_double import TinyVllmLlama, gather, make_worker, tiny_config

from hotweights_vllm import HotweightsWorkerExtension, TxnError


def workers(tp: int) -> list[Any]:
    return [make_worker(HotweightsWorkerExtension, TinyVllmLlama(tiny_config(), r, tp), r, tp) for r in range(tp)]


def update(ws: list[Any], txn: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """What the adapter does through collective_rpc: prepare on every rank, then commit on every rank."""
    wire = json.dumps(payload)  # vLLM's HTTP endpoint forwards string arguments only
    for w in ws:
        w.hw_prepare(txn, wire)
    return [w.hw_commit(txn, payload["version"]) for w in ws]


def assert_holds(ws: list[Any], checkpoint: Checkpoint) -> None:
    held = gather([w.model_runner.model for w in ws])
    assert sorted(held) == sorted(n for n, _ in checkpoint)
    for name, t in checkpoint:
        assert tensor_bytes(held[name]) == tensor_bytes(t), name


def digests(ws: list[Any]) -> list[str]:
    return [w.hw_verify()["digest"] for w in ws]


def refused(ws: list[Any], payload: dict[str, Any], error: type, match: str) -> None:
    """hw_prepare refuses on every rank, and nothing is loaded or left prepared."""
    before = digests(ws)
    for w in ws:
        with pytest.raises(error, match=match):
            w.hw_prepare("bad", json.dumps(payload))
        assert w.hw_info()["prepared"] == []
        with pytest.raises(TxnError):
            w.hw_commit("bad", payload["version"])
    assert digests(ws) == before
