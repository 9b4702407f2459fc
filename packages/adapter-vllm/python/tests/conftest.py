from __future__ import annotations

import pytest
import torch
from checkpoints import CHANGED, Checkpoint
from transformers import LlamaForCausalLM
from vllm_double import tiny_config


@pytest.fixture(scope="session")
def v1() -> Checkpoint:
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config()).to(torch.bfloat16)
    return [(n, t.detach().clone()) for n, t in model.state_dict().items()]


@pytest.fixture(scope="session")
def v2(v1: Checkpoint) -> Checkpoint:
    g = torch.Generator().manual_seed(1)
    return [(n, (t + torch.randn(t.shape, generator=g).to(t.dtype)) if n in CHANGED else t) for n, t in v1]
