from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch
from transformers import LlamaForCausalLM
from vllm_double import tiny_config

from hotweights_vllm.trainer import PublishError, discard, publish_state_dict

REPO = Path(__file__).resolve().parents[4]
BIN = REPO / "packages/cli/dist/bin.js"
CHANGED = ("model.layers.0.self_attn.k_proj.weight", "model.norm.weight")


@pytest.fixture(scope="module")
def cli() -> list[str]:
    assert BIN.exists(), f"{BIN} is missing: run `npm run build` first (scripts/test-all.sh does)"
    return ["node", str(BIN)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # The CLI keeps committed-version records in its state dir: keep the test's apart.
    return {"HOTWEIGHTS_STATE_DIR": str(tmp_path / "state")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def coordinator(cli: list[str], env: dict[str, str]) -> Iterator[str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*cli, "coord-serve", "--endpoint", endpoint, "--metrics-port", "off", "--quiet"],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*cli, "coord-status", "--endpoint", endpoint, "--timeout", "2"],
                             capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "the coordinator did not start"
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def state_dicts() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    v1 = dict(LlamaForCausalLM(tiny_config()).to(torch.bfloat16).state_dict())
    v2 = {n: t + 1 if n in CHANGED else t for n, t in v1.items()}
    return v1, v2


def test_a_state_dict_is_published_and_planned_as_a_delta(tmp_path: Path, cli: list[str], env: dict[str, str]) -> None:
    v1, v2 = state_dicts()
    p1 = publish_state_dict(v1, "step-1", model_id="tiny/llama", staging_dir=str(tmp_path), cli=cli, env=env)
    assert (p1.checkpoint / "model.safetensors").exists()
    p2 = publish_state_dict(v2, "step-2", model_id="tiny/llama", staging_dir=str(tmp_path), cli=cli, env=env,
                            prev_manifest=str(p1.manifest))
    plan = json.loads(p2.plan.read_text())
    assert plan["prev_version"] == "step-1"
    assert {it["tensor"] for b in plan["buckets"] for it in b["items"]} == set(CHANGED)
    with pytest.raises(PublishError, match="published already"):
        publish_state_dict(v2, "step-2", model_id="tiny/llama", staging_dir=str(tmp_path), cli=cli, env=env)
    for p in (p1, p2):
        discard(p)
    assert list(tmp_path.glob("hotweights-trainer.*")) == []


def test_a_published_version_is_submitted_and_begun(tmp_path: Path, cli: list[str], env: dict[str, str],
                                                     coordinator: str) -> None:
    v1, _ = state_dicts()
    p = publish_state_dict(v1, "step-1", model_id="tiny/llama", staging_dir=str(tmp_path), cli=cli, env=env,
                           coordinator=coordinator)
    status = json.loads(subprocess.run([*cli, "coord-status", "--endpoint", coordinator, "--json"], check=True,
                                       capture_output=True, text=True).stdout)
    assert status["active"]["version"] == "step-1" and status["active"]["state"] == "begun"
    assert status["active"]["has_manifest"] is True
    discard(p)


def test_a_failing_step_names_the_command(tmp_path: Path, cli: list[str], env: dict[str, str]) -> None:
    v1, _ = state_dicts()
    with pytest.raises(PublishError, match="hotweights plan failed"):
        publish_state_dict(v1, "step-1", model_id="tiny/llama", staging_dir=str(tmp_path), cli=cli, env=env,
                           prev_manifest=str(tmp_path / "missing.manifest"))
