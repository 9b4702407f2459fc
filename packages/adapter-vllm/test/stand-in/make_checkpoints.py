"""Writes versions of the tiny Llama the stand-in serves (v2 changes three tensors, v3 nudges two) as
safetensors checkpoints, and the sha256 of every tensor's bytes per version (digests.json).

    python make_checkpoints.py OUT [SIZES_JSON]   # SIZES_JSON: LlamaConfig overrides (benchmark)
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python" / "tests"))
from transformers import LlamaForCausalLM  # noqa: E402
from vllm_double import tiny_config  # noqa: E402

CHANGED = ("model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.norm.weight")

out = Path(sys.argv[1])
sizes = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
torch.manual_seed(0)
if sizes:
    # Benchmark sizes: random tensors with the model's names and shapes, without initialising it.
    with torch.device("meta"):
        shapes = {n: t.shape for n, t in LlamaForCausalLM(tiny_config(**sizes)).state_dict().items()}
    v1 = {n: torch.randn(shape, dtype=torch.bfloat16) for n, shape in shapes.items()}
else:
    v1 = {n: t.detach().clone().contiguous() for n, t in LlamaForCausalLM(tiny_config()).to(torch.bfloat16)
          .state_dict().items()}
v2 = {n: (t + torch.randn(t.shape).to(t.dtype)).contiguous() if n in CHANGED else t for n, t in v1.items()}


def nudged(t: torch.Tensor) -> torch.Tensor:
    """The lowest bit of every 50th element flipped: an RL-sized step, for patch plans."""
    bits = t.reshape(-1).view(torch.int16).clone()
    bits[::50] ^= 1
    return bits.view(t.dtype).reshape(t.shape).contiguous()


# v3: a small step from v2 in two tensors (what `plan --patches` encodes as patches).
STEPPED = ("model.layers.0.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight")
v3 = {n: nudged(t) if n in STEPPED else t for n, t in v2.items()}
digests = {}
for version, tensors in (("v1", v1), ("v2", v2), ("v3", v3)):
    (out / version).mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / version / "model.safetensors"))
    digests[version] = {n: hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
                        for n, t in tensors.items()}
(out / "digests.json").write_text(json.dumps(digests))
