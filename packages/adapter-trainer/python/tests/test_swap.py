from __future__ import annotations

import copy
import json
import os
import math
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from worker_double import ack, commit, stage

from hotweights_trainer import MismatchError, PolicyError, TrainerSwap, factors

CHANGED = ("0.weight", "2.bias")


def model_and_data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    return model, torch.randn(32, 6), torch.randn(32, 3)


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int
          ) -> list[float]:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def new_values(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    live = dict(model.state_dict())
    return {n: torch.randn_like(live[n]) for n in CHANGED}


def snapshot(opt: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    return {id(p): copy.deepcopy(s) for p, s in opt.state.items()}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "x").mkdir()
    (tmp_path / "s").mkdir()
    return tmp_path / "x", tmp_path / "s"


def test_an_update_mid_run_lands_in_place_and_training_continues(dirs: tuple[Path, Path]) -> None:
    exchange, staging = dirs
    model, x, y = model_and_data()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    swap = TrainerSwap(exchange)
    assert swap.maybe_apply(model, opt) is None  # nothing committed yet: a no-op
    train(model, opt, x, y, 5)
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    groups = [list(g["params"]) for g in opt.param_groups]
    before = snapshot(opt)
    published = new_values(model)
    stage(exchange, staging, published, "v2", split="0.weight")
    assert not swap.pending()
    commit(exchange, "v2")
    assert swap.pending()
    applied = swap.maybe_apply(model, opt)

    assert applied is not None and applied.version == "v2" and set(applied.tensors) == set(CHANGED)
    live = dict(model.named_parameters())
    for n, t in published.items():
        assert live[n].detach().numpy().tobytes() == t.numpy().tobytes()
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == ptrs
    assert [list(g["params"]) for g in opt.param_groups] == groups
    assert all(a is b for g0, g1 in zip(groups, opt.param_groups) for a, b in zip(g0, g1["params"]))
    for p, s in opt.state.items():  # preserve: every state entry is as it was
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(before[id(p)][k])) for k, v in s.items())
    assert ack(exchange) == {"schema": "hotweights.trainer.ack", "txn": "v2.t1", "ok": True, "version": "v2",
                             "tensors": list(applied.tensors), "bytes": applied.bytes, "policy": "preserve",
                             "attenuation": 1.0, "optimizer_params": 2}
    assert json.loads((exchange / "live.json").read_text()) == {"version": "v2"}
    assert not (exchange / "claimed.json").exists() and swap.live_version == "v2"
    assert TrainerSwap(exchange).live_version == "v2"  # a restarted trainer knows what is live

    losses = train(model, opt, x, y, 5)
    assert all(math.isfinite(v) for v in losses)
    assert all(float(s["step"]) == 10 for s in opt.state.values())


def adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-2)


def adamw_amsgrad(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-2, amsgrad=True)


@pytest.mark.parametrize("make", [adam, adamw_amsgrad, lambda p: torch.optim.AdamW(p, lr=1e-2)])
@pytest.mark.parametrize("policy,attenuation", [("preserve", 1.0), ("reset", 1.0), ("attenuate", 0.5),
                                                ("attenuate", 0.0)])
def test_each_policy_changes_only_the_changed_parameters_state(
        dirs: tuple[Path, Path], make: Callable[[Any], torch.optim.Optimizer], policy: str,
        attenuation: float) -> None:
    exchange, staging = dirs
    model, x, y = model_and_data()
    opt = make(model.parameters())
    train(model, opt, x, y, 3)
    before = snapshot(opt)
    state_ptrs = {id(p): {k: v.data_ptr() for k, v in s.items()} for p, s in opt.state.items()}
    swap = TrainerSwap(exchange)
    stage(exchange, staging, new_values(model), "v2")
    commit(exchange, "v2", policy, attenuation)
    assert swap.maybe_apply(model, opt) is not None

    f = factors(policy, attenuation)
    names = {id(p): n for n, p in model.named_parameters()}
    for p, s in opt.state.items():
        old = before[id(p)]
        assert set(s) == set(old)
        assert {k: v.data_ptr() for k, v in s.items()} == state_ptrs[id(p)]  # state changed in place
        for key, value in s.items():
            if names[id(p)] not in CHANGED:
                assert torch.equal(value, old[key]), f"{names[id(p)]}.{key} of an unchanged parameter changed"
            elif policy == "preserve":
                assert torch.equal(value, old[key])
            elif policy == "reset":
                assert torch.count_nonzero(value) == 0
            elif key == "step":
                assert torch.equal(value, old[key])
            else:
                assert torch.equal(value, old[key] * attenuation)
            if names[id(p)] in CHANGED:
                assert torch.allclose(value, old[key] * f[key])  # the table says what happened
    assert all(math.isfinite(v) for v in train(model, opt, x, y, 2))


@pytest.mark.parametrize("tamper,message", [
    (lambda t: {**t, "0.wieght": t.pop("0.weight")}, r"0\.wieght: not in the model"),
    (lambda t: {**t, "2.bias": torch.zeros(4)}, r"2\.bias: staged shape \[4\], live \[3\]"),
    (lambda t: {**t, "2.bias": torch.zeros(3, dtype=torch.bfloat16)}, r"2\.bias: staged BF16, live float32"),
])
def test_a_mismatch_is_refused_with_nothing_applied(dirs: tuple[Path, Path], tamper: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                                                    message: str) -> None:
    exchange, staging = dirs
    model, x, y = model_and_data()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    train(model, opt, x, y, 2)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    before = snapshot(opt)
    swap = TrainerSwap(exchange, strict=True)
    stage(exchange, staging, tamper(new_values(model)), "v2")
    commit(exchange, "v2", "reset")
    with pytest.raises(MismatchError, match=f"nothing applied: .*{message}"):
        swap.maybe_apply(model, opt)
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())
    assert all(torch.equal(v, before[id(p)][k]) for p, s in opt.state.items() for k, v in s.items())
    a = ack(exchange)
    assert a["ok"] is False and a["code"] == "E_TRAINER_MISMATCH" and "nothing applied" in a["error"]
    assert swap.live_version is None and not (exchange / "live.json").exists()


def test_a_refusal_without_strict_keeps_training(dirs: tuple[Path, Path]) -> None:
    exchange, staging = dirs
    model, x, y = model_and_data()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    swap = TrainerSwap(exchange)
    stage(exchange, staging, new_values(model), "v2")
    commit(exchange, "v2", "shrink")
    assert swap.maybe_apply(model, opt) is None
    assert isinstance(swap.last_refusal, PolicyError) and "unknown optimizer policy 'shrink'" in str(swap.last_refusal)
    assert ack(exchange)["code"] == "E_TRAINER_POLICY"


def test_a_cancelled_commit_is_never_applied(dirs: tuple[Path, Path]) -> None:
    exchange, staging = dirs
    model, _, _ = model_and_data()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    swap = TrainerSwap(exchange)
    stage(exchange, staging, new_values(model), "v2")
    commit(exchange, "v2")
    (exchange / "commit.json").rename(exchange / "cancelled.json")  # the worker's deadline passed
    assert swap.maybe_apply(model) is None
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())
    assert not (exchange / "ack.json").exists()


def test_the_layout_is_published_for_the_worker_to_check(dirs: tuple[Path, Path]) -> None:
    exchange, _ = dirs
    model, _, _ = model_and_data()
    model[2].to(torch.bfloat16)
    TrainerSwap(exchange, model)
    layout = json.loads((exchange / "layout.json").read_text())
    assert layout == {"schema": "hotweights.trainer.layout", "tensors": {
        "0.weight": {"dtype": "F32", "shape": [16, 6]}, "0.bias": {"dtype": "F32", "shape": [16]},
        "2.weight": {"dtype": "BF16", "shape": [3, 16]}, "2.bias": {"dtype": "BF16", "shape": [3]}}}


def test_trainer_json_names_the_process_and_its_pid_namespace(dirs: tuple[Path, Path]) -> None:
    exchange, _ = dirs
    TrainerSwap(exchange)
    info = json.loads((exchange / "trainer.json").read_text())
    assert info["pid"] == os.getpid()
    assert info["pid_ns"] == os.readlink("/proc/self/ns/pid")
