"""A tiny training job that takes hotweights updates between steps (docs/TRAINING.md runs it).

    python tiny_job.py checkpoints DIR          # DIR/v1 (start) and DIR/v2 (two tensors changed)
    python tiny_job.py train --exchange X --checkpoint DIR/v1 [--steps N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hotweights_trainer import TrainerSwap


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))


def checkpoints(out: Path) -> None:
    v1 = {n: t.detach().clone() for n, t in make_model().state_dict().items()}
    v2 = {**v1, "0.weight": torch.randn(32, 8) * 0.1, "2.bias": torch.zeros(4)}
    for name, sd in (("v1", v1), ("v2", v2)):
        (out / name).mkdir(parents=True, exist_ok=True)
        save_file(sd, str(out / name / "model.safetensors"))
    print(f"wrote {out / 'v1'} and {out / 'v2'}")


def train(exchange: str, checkpoint: Path, steps: int) -> None:
    model = make_model()
    model.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    swap = TrainerSwap(exchange, model)  # attaches: the worker beside us can now check updates
    x = torch.randn(64, 8)
    y = x[:, :4] * 0.5
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        applied = swap.maybe_apply(model, opt)  # the step boundary: a committed version lands here
        if applied:
            print(f"step {step}: applied {applied.version} ({', '.join(applied.tensors)}; {applied.bytes} bytes; "
                  f"policy {applied.policy} x{applied.attenuation} on {applied.optimizer_params} parameters' state)",
                  flush=True)
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.5f} (live {swap.live_version or 'v1 from disk'})", flush=True)
        time.sleep(0.05)  # stands in for a real step's work


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("checkpoints")
    c.add_argument("dir", type=Path)
    t = sub.add_parser("train")
    t.add_argument("--exchange", required=True)
    t.add_argument("--checkpoint", type=Path, required=True)
    t.add_argument("--steps", type=int, default=400)
    a = ap.parse_args()
    if a.cmd == "checkpoints":
        checkpoints(a.dir)
    else:
        train(a.exchange, a.checkpoint, a.steps)


if __name__ == "__main__":
    sys.exit(main())
