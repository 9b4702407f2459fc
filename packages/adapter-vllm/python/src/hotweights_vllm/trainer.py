"""Publishing a training job's live weights without writing a checkpoint to disk first.

    from hotweights_vllm.trainer import publish_state_dict
    publish_state_dict(model.state_dict(), f"step-{step}", model_id="my/model",
                       coordinator="tcp://10.0.0.1:5555")

The state dict becomes a safetensors file in host shared memory (default /dev/shm), then the
`hotweights` command publishes it, plans the delta against the coordinator's current version,
submits the plan and begins the update. The workers replicate from that file, so it must stay
until the update is over: `discard` removes a published version's files once it is committed
(or superseded). This process must run on the host of the plan's source rank (rank 0 by default).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from .errors import HotweightsVllmError


class PublishError(HotweightsVllmError):
    """A `hotweights` step of publish_state_dict failed; the message carries its error line."""

    code = "E_VLLM_PUBLISH"


@dataclass(frozen=True)
class Published:
    version: str
    checkpoint: Path
    manifest: Path
    plan: Path
    #: The `hotweights plan --json` summary (bytes that move, buckets, …).
    summary: dict[str, Any]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _host_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous host copies; tensors sharing storage (tied weights) each get their own bytes."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, t in state_dict.items():
        host = t.detach().to("cpu").contiguous()
        where = (host.untyped_storage().data_ptr(), int(host.storage_offset()))
        if where in seen:
            host = host.clone()
        seen.add(where)
        out[name] = host
    return out


def _run(cli: Sequence[str], args: list[str], env: Optional[Mapping[str, str]]) -> str:
    cmd = [*cli, *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env=None if env is None else {**os.environ, **env})
    except OSError as err:
        raise PublishError(f"cannot run {cmd[0]}: {err.strerror}; install @hotweights/cli or pass cli=") from err
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise PublishError(f"hotweights {args[0]} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done.stdout


def publish_state_dict(state_dict: Mapping[str, torch.Tensor], version: str, *, model_id: str,
                       coordinator: Optional[str] = None, prev_manifest: Optional[str] = None,
                       staging_dir: str = "/dev/shm", world_size: int = 1, bucket_mb: Optional[int] = None,
                       hash_algo: str = "xxh3-64", begin: bool = True, wait: bool = False,
                       cli: Sequence[str] = ("hotweights",),
                       env: Optional[Mapping[str, str]] = None) -> Published:
    """Publishes `state_dict` as `version`, plans it and, with a coordinator, submits and begins it.

    The previous version is `prev_manifest` when given, else the coordinator's current version,
    else the last one committed on this host. `wait` blocks until the update commits or aborts.
    """
    base = Path(staging_dir) / f"hotweights-trainer.{_safe(model_id)}.{_safe(version)}"
    checkpoint, manifest, plan = base, base.with_name(base.name + ".manifest"), base.with_name(base.name + ".plan.json")
    if checkpoint.exists():
        raise PublishError(f"{checkpoint} exists: version {version} was published already; pick a new version "
                           "or discard() the old one")
    from safetensors.torch import save_file

    checkpoint.mkdir(parents=True)
    partial = checkpoint / "model.safetensors.partial"
    save_file(_host_tensors(state_dict), str(partial), metadata={"format": "pt"})
    partial.rename(checkpoint / "model.safetensors")

    _run(cli, ["publish", "--checkpoint", str(checkpoint), "--version", version, "--model-id", model_id,
               "--output", str(manifest), "--hash", hash_algo, "--json"], env)
    plan_args = ["plan", "--next", str(manifest), "--output", str(plan), "--world-size", str(world_size), "--json"]
    if prev_manifest is not None:
        plan_args += ["--prev", prev_manifest]
    elif coordinator is not None:
        plan_args += ["--coord-endpoint", coordinator]
    if bucket_mb is not None:
        plan_args += ["--bucket-mb", str(bucket_mb)]
    summary = json.loads(_run(cli, plan_args, env))
    if coordinator is not None:
        _run(cli, ["coord-submit-plan", "--plan", str(plan), "--manifest", str(manifest),
                   "--endpoint", coordinator], env)
        if begin:
            _run(cli, ["begin", "--version", version, "--endpoint", coordinator, *(["--wait"] if wait else [])], env)
    return Published(version, checkpoint, manifest, plan, summary)


def discard(published: Published) -> None:
    """Removes a published version's shared-memory files (after its update is over)."""
    for f in published.checkpoint.glob("*"):
        f.unlink()
    if published.checkpoint.exists():
        published.checkpoint.rmdir()
    published.manifest.unlink(missing_ok=True)
    published.plan.unlink(missing_ok=True)
