"""The training process's side of the swap: `TrainerSwap(exchange_dir).maybe_apply(model, optimizer)`.

The worker (`hotweights worker --adapter trainer --adapter-option dir=EXCHANGE_DIR`) and this
module talk through files in the exchange directory, each written whole (temp file + rename):

    trainer.json  this process attached (pid, pid namespace), written by TrainerSwap()
    layout.json   the live model's tensors {name: {dtype, shape}}, so the worker refuses an update
                  that does not fit before it votes (written once a model is known)
    offer.json    the worker staged and verified a version (worker's prepare)
    commit.json   the coordinator committed it: apply it (worker's commit, with the policy)
    claimed.json  commit.json renamed by this process when it starts applying
    ack.json      the outcome, written by this process ({"ok": true, ...} or the error)
    live.json     the version live in this process

The rename of commit.json is the one decision point: whoever renames it first wins. This process
claims it (claimed.json) at a step boundary; a worker whose commit deadline passes renames it to
cancelled.json instead, and then nothing is applied. An aborted update never writes commit.json.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from .apply import check, copy_in
from .errors import HotweightsTrainerError, OfferError
from .offer import dtype_name, parse_commit, parse_offer
from .policy import apply_policy, factors

log = logging.getLogger("hotweights_trainer")


@dataclass(frozen=True)
class Applied:
    """What one swap did."""

    version: str
    #: Names of the tensors whose values were replaced.
    tensors: tuple[str, ...]
    bytes: int
    policy: str
    attenuation: float
    #: Changed parameters whose optimizer state the policy was applied to.
    optimizer_params: int


def _pid_namespace() -> Optional[str]:
    # The worker checks that this pid is alive only from the same pid namespace (a sidecar
    # container without a shared process namespace sees other pids).
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _write(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    os.replace(tmp, path)


class TrainerSwap:
    """Applies committed hotweights versions to a live model at the step boundaries you choose.

    `strict=True` re-raises a refused update (after telling the worker); by default the refusal is
    logged, kept in `last_refusal`, and training continues on the weights it had.
    """

    def __init__(self, exchange_dir: str | os.PathLike[str], model: Optional[torch.nn.Module] = None, *,
                 strict: bool = False) -> None:
        self.dir = Path(exchange_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.strict = strict
        self.last_refusal: Optional[HotweightsTrainerError] = None
        live = self.dir / "live.json"
        self.live_version: Optional[str] = json.loads(live.read_text())["version"] if live.exists() else None
        self._layout_of: Optional[int] = None
        if model is not None:
            self.publish_layout(model)
        _write(self.dir / "trainer.json", {"pid": os.getpid(), "pid_ns": _pid_namespace(), "attached_at": time.time()})

    def publish_layout(self, model: torch.nn.Module) -> None:
        """Writes layout.json: the names, dtypes and shapes an update must match."""
        layout = {n: {"dtype": dtype_name(t.dtype), "shape": list(t.shape)}
                  for n, t in model.state_dict(keep_vars=True).items()}
        _write(self.dir / "layout.json", {"schema": "hotweights.trainer.layout", "tensors": layout})
        self._layout_of = id(model)

    def pending(self) -> bool:
        """Whether a committed version waits to be applied (one stat; cheap enough for every step)."""
        return (self.dir / "commit.json").exists()

    def maybe_apply(self, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None
                    ) -> Optional[Applied]:
        """Applies a committed version if one waits, else returns None at once.

        Call it between `optimizer.step()` and the next forward pass.
        """
        if self._layout_of != id(model):
            self.publish_layout(model)
        claimed = self.dir / "claimed.json"
        try:
            os.rename(self.dir / "commit.json", claimed)
        except FileNotFoundError:
            return None
        txn: Optional[str] = None
        try:
            order = parse_commit(claimed.read_text(encoding="utf-8"))
            txn = order.txn
            offer = parse_offer((self.dir / "offer.json").read_text(encoding="utf-8"))
            if offer.txn != order.txn:
                raise OfferError(f"commit.json names txn {order.txn} but offer.json holds {offer.txn}")
            factors(order.policy, order.attenuation)  # refuse a bad policy before touching anything
            applied = self._apply(model, optimizer, offer, order.policy, order.attenuation)
        except HotweightsTrainerError as err:
            self.last_refusal = err
            self._ack({"txn": txn, "ok": False, "code": err.code, "error": err.message})
            claimed.unlink(missing_ok=True)
            log.error("hotweights update refused: %s", err)
            if self.strict:
                raise
            return None
        self.live_version = applied.version
        _write(self.dir / "live.json", {"version": applied.version})
        self._ack({"txn": txn, "ok": True, "version": applied.version, "tensors": list(applied.tensors),
                   "bytes": applied.bytes, "policy": applied.policy, "attenuation": applied.attenuation,
                   "optimizer_params": applied.optimizer_params})
        claimed.unlink(missing_ok=True)
        return applied

    def _ack(self, body: dict[str, Any]) -> None:
        _write(self.dir / "ack.json", {"schema": "hotweights.trainer.ack", **body})

    @staticmethod
    def _apply(model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer], offer: Any, policy: str,
               attenuation: float) -> Applied:
        live = dict(model.state_dict(keep_vars=True))
        copies = check(live, offer)
        copied = copy_in(live, copies)
        names = tuple(dict.fromkeys(c.item.tensor for c in copies))
        params = {id(p): p for n, p in model.named_parameters() if n in set(names)}
        touched = apply_policy(optimizer, params.values(), policy, attenuation) if optimizer else 0
        return Applied(offer.version, names, copied, policy, attenuation, touched)
