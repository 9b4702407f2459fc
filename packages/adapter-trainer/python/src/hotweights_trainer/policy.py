"""The optimizer-state policies, read from policies.json (the table `hotweights opt-check` reads too).

Only the state of the parameters an update changed is touched; every other parameter's state is
left exactly as it was. The table maps each Adam/AdamW state entry to an action, and each action to
a factor: `keep` (x1), `zero` (x0, filled with zeros so a NaN moment is cleared too) and `scale`
(x attenuation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

import torch

from .errors import PolicyError


def load_table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("policies.json").read_text(encoding="utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def policy_names() -> list[str]:
    return list(load_table()["policies"])


def factors(policy: str, attenuation: float) -> dict[str, float]:
    """The factor each optimizer-state entry of a changed parameter is multiplied by."""
    table = load_table()
    rules = table["policies"].get(policy)
    if rules is None:
        raise PolicyError(f"unknown optimizer policy {policy!r}: expected one of {', '.join(table['policies'])}")
    if not 0.0 <= attenuation <= 1.0:
        raise PolicyError(f"attenuation {attenuation} is outside 0..1")
    values = {"1": 1.0, "0": 0.0, "attenuation": float(attenuation)}
    return {key: values[table["actions"][rules[key]]] for key in table["state"]}


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            if factor == 0.0:
                value.zero_()
            elif factor != 1.0:
                value.mul_(factor)
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return type(value)(value * factor)
    return value


def apply_policy(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor], policy: str,
                 attenuation: float) -> int:
    """Applies `policy` to the optimizer state of `params`; returns how many had state to change.

    Tensors are changed in place (the optimizer keeps the same state tensors); a parameter without
    state yet (no step taken) has nothing to change.
    """
    f = factors(policy, attenuation)
    touched = 0
    for p in params:
        state = optimizer.state.get(p)
        if not state:
            continue
        touched += 1
        for key, factor in f.items():
            if key in state:
                state[key] = _scaled(state[key], factor)
    return touched
