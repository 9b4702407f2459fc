"""A training job that takes hotweights updates between steps: AdamW on the small model, with
`TrainerSwap.maybe_apply` after every optimizer step. Prints `attached` once it trains, one JSON
line per applied update (what the test checks), and exits after `--updates` updates and five more
steps, or when stdin closes."""

from __future__ import annotations

import argparse
import copy
import json
import math
import select
import sys
import time
from pathlib import Path

import torch
from model import batch, make_model
from safetensors.torch import load_file

from hotweights_trainer import TrainerSwap

ap = argparse.ArgumentParser()
ap.add_argument("--exchange", required=True)
ap.add_argument("--checkpoints", required=True)
ap.add_argument("--updates", type=int, default=1)
args = ap.parse_args()

model = make_model()
model.load_state_dict(load_file(str(Path(args.checkpoints) / "v1" / "model.safetensors")))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
swap = TrainerSwap(args.exchange, model)
print("attached", flush=True)


def ratio(new: torch.Tensor, old: torch.Tensor) -> float:
    new, old = new.double(), old.double()
    return round(float(new.norm() / old.norm()), 6) if float(old.norm()) > 0 else float("nan")


step, applied_count = 0, 0


def train_step() -> float:
    global step
    x, y = batch(step)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    step += 1
    return float(loss.item())


while applied_count < args.updates:
    if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.readline():
        sys.exit("stdin closed before the updates arrived")
    train_step()
    if not swap.pending():
        time.sleep(0.02)  # a real step takes longer; keep the shared test machine free
        continue
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    before = {n: copy.deepcopy(opt.state[p]) for n, p in model.named_parameters()}
    applied = swap.maybe_apply(model, opt)
    if applied is None:
        print(json.dumps({"refused": str(swap.last_refusal)}), flush=True)
        continue
    applied_count += 1
    published = load_file(str(Path(args.checkpoints) / applied.version / "model.safetensors"))
    live = dict(model.named_parameters())
    report = {
        "version": applied.version, "tensors": sorted(applied.tensors), "step": step,
        "same_storage": {n: p.data_ptr() == ptrs[n] for n, p in live.items()},
        "same_optimizer_params": all(a is live[n] for a, n in zip(opt.param_groups[0]["params"], live)),
        "equal_published": {n: live[n].detach().numpy().tobytes() == published[n].numpy().tobytes()
                            for n in applied.tensors},
        "state_ratio": {n: {k: ratio(torch.as_tensor(v), torch.as_tensor(before[n][k]))
                            for k, v in opt.state[p].items()} for n, p in live.items() if n in applied.tensors},
        "unchanged_state_identical": {n: all(torch.equal(torch.as_tensor(v), torch.as_tensor(before[n][k]))
                                             for k, v in opt.state[p].items())
                                      for n, p in live.items() if n not in applied.tensors},
    }
    print(json.dumps(report), flush=True)

losses = [train_step() for _ in range(5)]
print(json.dumps({"done": True, "steps": step, "losses_finite": all(math.isfinite(v) for v in losses),
                  "live_version": swap.live_version}), flush=True)
