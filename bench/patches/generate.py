"""RL-like checkpoint steps for the patch benchmark and tests.

A small Llama-shaped model (transformers' LlamaForCausalLM, random init) is trained a few steps
with AdamW on random tokens, with fp32 master weights as trainers keep them; each step is saved as
the bf16 checkpoint an inference fleet would load (safetensors). One run per learning rate, all
from the same initial weights, so step-0 is identical across rates.

  .venv/bin/python bench/patches/generate.py --out /tmp/hw-patches --steps 3

Writes OUT/lr-<lr>/step-<n>/model.safetensors and OUT/changed.json: per rate and step, the
fraction of bf16 elements that differ from the step before.
"""

import argparse
import json
import os
import time

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM


def bf16_state(model):
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}


def changed_fraction(a, b):
    changed = 0
    total = 0
    for k, x in b.items():
        y = a[k]
        # Compare the bit patterns: a lossless patch cares about bytes, not values.
        changed += int((x.view(torch.int16) != y.view(torch.int16)).sum())
        total += x.numel()
    return changed / total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lrs", default="1e-6,1e-5,1e-4")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3 // 64 * 64,
        num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64),
        num_key_value_heads=max(1, args.hidden // 128),
        max_position_embeddings=args.seq,
        tie_word_embeddings=False,
    )
    init = LlamaForCausalLM(config).state_dict()
    init = {k: v.clone() for k, v in init.items()}
    report = {"model": {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab}, "rates": {}}
    for lr_text in args.lrs.split(","):
        lr = float(lr_text)
        torch.manual_seed(1)
        model = LlamaForCausalLM(config)
        model.load_state_dict(init)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        base = os.path.join(args.out, f"lr-{lr_text}")
        prev = bf16_state(model)
        os.makedirs(os.path.join(base, "step-0"), exist_ok=True)
        save_file(prev, os.path.join(base, "step-0", "model.safetensors"))
        fractions = []
        for step in range(1, args.steps + 1):
            t0 = time.time()
            tokens = torch.randint(0, args.vocab, (args.batch, args.seq))
            loss = model(input_ids=tokens, labels=tokens).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            now = bf16_state(model)
            d = os.path.join(base, f"step-{step}")
            os.makedirs(d, exist_ok=True)
            save_file(now, os.path.join(d, "model.safetensors"))
            f = changed_fraction(prev, now)
            fractions.append(f)
            prev = now
            print(f"lr {lr_text} step {step}: loss {loss.item():.3f}, {100 * f:.2f}% of bf16 elements changed ({time.time() - t0:.1f} s)")
        report["rates"][lr_text] = {"changed_fraction": fractions}
    with open(os.path.join(args.out, "changed.json"), "w") as fh:
        json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
