"""Writes DIR/v1 (the model's starting weights), DIR/v2 (two tensors changed) and DIR/v3 (one
tensor of another shape: an update that does not fit) as safetensors checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from model import make_model
from safetensors.torch import save_file

out = Path(sys.argv[1])
v1 = {n: t.detach().clone() for n, t in make_model().state_dict().items()}
v2 = {**v1, "0.weight": torch.randn(32, 8), "2.bias": torch.randn(4)}
v3 = {**v2, "2.bias": torch.randn(5)}
for name, sd in (("v1", v1), ("v2", v2), ("v3", v3)):
    (out / name).mkdir(parents=True)
    save_file(sd, str(out / name / "model.safetensors"))
