"""The two checkpoint versions the extension tests load (v2 changes three tensors of v1)."""

from __future__ import annotations

import torch

Checkpoint = list[tuple[str, torch.Tensor]]
CHANGED = ("model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.norm.weight")
