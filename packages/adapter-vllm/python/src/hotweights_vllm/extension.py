"""The worker extension vLLM mixes into every GPU worker (`--worker-extension-cls
hotweights_vllm.HotweightsWorkerExtension`).

vLLM appends this class to the worker's bases after asserting that none of its attribute names
already exist on the worker, and never calls its `__init__`: every name here starts with `hw_`
or `_hw_`, and the state is created on first use. The methods are reached through
`collective_rpc`, which over HTTP forwards only string arguments and returns dicts as JSON.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import torch

from .errors import CommitFailedError, NameMismatchError, StagedBytesError, TxnError
from .hashing import check_hash
from .names import Target, layer_order, match, uncovered_layers
from .payload import parse_payload
from .segments import MappedSegments, StagedTensor, stage_tensors


@dataclass
class _Prepared:
    txn: str
    version: str
    tensors: list[StagedTensor]
    targets: list[Target]
    skipped: list[str]
    segments: MappedSegments
    mode: str
    # This rank's live values of every parameter the update overwrites (host copies).
    undo: dict[str, torch.Tensor]


@dataclass
class _Committed:
    txn: str
    version: str
    previous: Optional[str]
    undo: dict[str, torch.Tensor]


@dataclass
class _State:
    live_version: Optional[str] = None
    prepared: dict[str, _Prepared] = field(default_factory=dict)
    last: Optional[_Committed] = None


ReloadApi = tuple[Callable[..., Any], Callable[..., Any]]


class HotweightsWorkerExtension:
    """Stages, commits, verifies and rolls back hotweights updates inside one vLLM worker."""

    # Provided by vLLM's worker (declared for type checkers only; no class attributes here).
    model_runner: Any
    device: torch.device
    rank: int

    # --- the RPC surface -------------------------------------------------------------------

    def hw_info(self) -> dict[str, Any]:
        tp_rank, tp_size = self._hw_tp()
        st = self._hw_state()
        model = self.model_runner.model
        return {
            "rank": int(getattr(self, "rank", 0)),
            "tp_rank": tp_rank,
            "tp_size": tp_size,
            "device": str(getattr(self, "device", "cpu")),
            "vllm_version": _vllm_version(),
            "model_class": type(model).__name__,
            "quantization": self._hw_quantization(),
            "layerwise_reload": self._hw_reload_api() is not None,
            "live_version": st.live_version,
            # What hw_rollback would make live (None: nothing to roll back, or the startup weights).
            "can_roll_back": st.last is not None and st.live_version == st.last.version,
            "rollback_to": st.last.previous if st.last is not None and st.live_version == st.last.version
            else None,
            "prepared": sorted(st.prepared),
        }

    def hw_prepare(self, txn: str, plan: Union[str, dict[str, Any]]) -> dict[str, Any]:
        """Maps this rank's staged tensors and checks them against the model without touching it."""
        payload = parse_payload(plan)
        st = self._hw_state()
        self.hw_release(txn)
        tp_rank, tp_size = self._hw_tp()
        segments = MappedSegments()
        try:
            tensors = stage_tensors(payload, tp_rank, segments)
            if payload.verify_hashes:
                for t in tensors:
                    if t.hash is None:
                        raise StagedBytesError(f"tensor {t.name} has no hash to verify")
                    check_hash(t.name, t.hash, t.chunks)
            model = self.model_runner.model
            order = sorted(range(len(tensors)), key=lambda i: layer_order(tensors[i].name))
            tensors = [tensors[i] for i in order]
            targets, skipped = match(model, [_Meta(t) for t in tensors], tp_size, payload.allow_dtype_cast)
            mode = self._hw_mode()
            if mode == "layerwise":
                missing = uncovered_layers(model, targets)
                if missing:
                    raise NameMismatchError(
                        "layer-wise reload (quantized model) needs every tensor of each layer it "
                        f"touches; the update leaves out {', '.join(missing[:5])}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                        + "; plan this update as full layers")
            undo = _snapshot(model, {t.param for t in targets})
        except BaseException:
            segments.close()
            raise
        st.prepared[txn] = _Prepared(txn, payload.version, tensors, targets, skipped, segments, mode, undo)
        return {
            "rank": int(getattr(self, "rank", 0)),
            "tp_rank": tp_rank,
            "txn": txn,
            "version": payload.version,
            "tensors": len(tensors),
            "bytes": sum(t.tensor.numel() * t.tensor.element_size() for t in tensors),
            "zero_copy": sum(1 for t in tensors if t.zero_copy),
            "params": len({t.param for t in targets}),
            "skipped": skipped,
            "mode": mode,
            "verified_hashes": payload.verify_hashes,
        }

    def hw_commit(self, txn: str, version: str) -> dict[str, Any]:
        """Loads the prepared tensors into the model; on failure puts the previous values back."""
        st = self._hw_state()
        prep = st.prepared.get(txn)
        if prep is None:
            raise TxnError(f"transaction {txn!r} is not prepared on rank {getattr(self, 'rank', 0)}; "
                           "call hw_prepare first")
        if prep.version != version:
            raise TxnError(f"transaction {txn!r} prepares {prep.version!r}, not {version!r}")
        model = self.model_runner.model
        skipped = set(prep.skipped)
        weights = ((t.name, t.tensor) for t in prep.tensors if t.name not in skipped)
        t0 = time.perf_counter()
        post = "none"
        try:
            with torch.no_grad():
                if prep.mode == "layerwise":
                    api = self._hw_reload_api()
                    assert api is not None
                    with torch.device(self.device):
                        api[0](model)
                        loaded = model.load_weights(weights)
                        api[1](model, self.model_runner.model_config)
                    post = "finalize_layerwise_reload"
                else:
                    loaded = model.load_weights(weights)
                    post = self._hw_post_process(model)
                expected = {t.param for t in prep.targets}
                if isinstance(loaded, (set, frozenset)) and not expected <= loaded:
                    left = sorted(expected - loaded)
                    raise CommitFailedError(f"load_weights did not load {', '.join(left[:5])}")
                self._hw_sync()
        except BaseException as err:
            restored = _restore(model, prep.undo)
            self._hw_sync()
            self.hw_release(txn)
            state = "previous weights restored" if restored else "RESTORING THE PREVIOUS WEIGHTS FAILED"
            raise CommitFailedError(f"commit of {version} failed on rank {getattr(self, 'rank', 0)} "
                                    f"({state}): {err}") from err
        seconds = time.perf_counter() - t0
        st.last = _Committed(txn, version, st.live_version, prep.undo)
        st.live_version = version
        loaded_names = sorted(loaded) if isinstance(loaded, (set, frozenset)) else sorted(
            {t.param for t in prep.targets})
        nbytes = sum(t.tensor.numel() * t.tensor.element_size() for t in prep.tensors)
        prep.undo = {}
        self.hw_release(txn)
        return {
            "rank": int(getattr(self, "rank", 0)),
            "tp_rank": self._hw_tp()[0],
            "version": version,
            "loaded": loaded_names,
            "tensors": len(prep.tensors) - len(skipped),
            "bytes": nbytes,
            "mode": prep.mode,
            "post_processing": post,
            "seconds": seconds,
        }

    def hw_rollback(self, which: str = "") -> dict[str, Any]:
        """Puts back the values the last commit overwrote, if that commit is still live and `which`
        names it (its transaction id or version; empty: whatever it was)."""
        st = self._hw_state()
        last = st.last
        if last is None or st.live_version != last.version or (which and which not in (last.txn, last.version)):
            return {"rank": int(getattr(self, "rank", 0)), "rolled_back": False, "live_version": st.live_version}
        with torch.no_grad():
            if not _restore(self.model_runner.model, last.undo):
                raise CommitFailedError(f"rollback of {last.version} failed on rank {getattr(self, 'rank', 0)}")
        self._hw_sync()
        st.live_version = last.previous
        st.last = None
        return {"rank": int(getattr(self, "rank", 0)), "rolled_back": True, "live_version": st.live_version}

    def hw_verify(self) -> dict[str, Any]:
        """sha256 of every runtime parameter on this rank, to compare replicas of one TP rank."""
        tp_rank, tp_size = self._hw_tp()
        digests: dict[str, str] = {}
        for name, p in self.model_runner.model.named_parameters():
            digests[name] = hashlib.sha256(_raw_bytes(p)).hexdigest()
        whole = hashlib.sha256("".join(f"{n}={d}\n" for n, d in sorted(digests.items())).encode())
        return {
            "rank": int(getattr(self, "rank", 0)),
            "tp_rank": tp_rank,
            "tp_size": tp_size,
            "live_version": self._hw_state().live_version,
            "algo": "sha256",
            "params": digests,
            "digest": f"sha256:{whole.hexdigest()}",
        }

    def hw_release(self, txn: str) -> dict[str, Any]:
        prep = self._hw_state().prepared.pop(txn, None)
        if prep is not None:
            prep.tensors.clear()
            prep.undo.clear()
            prep.segments.close()
        return {"rank": int(getattr(self, "rank", 0)), "txn": txn, "released": prep is not None}

    # --- helpers (prefixed too: vLLM checks every attribute name) ----------------------------

    def _hw_state(self) -> _State:
        st = self.__dict__.get("_hw_state_data")
        if st is None:
            st = _State()
            self.__dict__["_hw_state_data"] = st
        return st

    def _hw_tp(self) -> tuple[int, int]:
        try:
            from vllm.distributed import (  # type: ignore[import-not-found]
                get_tensor_model_parallel_rank,
                get_tensor_model_parallel_world_size,
            )

            return int(get_tensor_model_parallel_rank()), int(get_tensor_model_parallel_world_size())
        except Exception:  # no vLLM, or its groups are not initialised (tests, tools)
            pass
        size = int(getattr(getattr(self, "parallel_config", None), "tensor_parallel_size", 1) or 1)
        return int(getattr(self, "rank", 0)) % size, size

    def _hw_quantization(self) -> Optional[str]:
        q = getattr(getattr(self.model_runner, "model_config", None), "quantization", None)
        return None if q is None else str(q)

    def _hw_reload_api(self) -> Optional[ReloadApi]:
        try:
            from vllm.model_executor.model_loader.reload import (  # type: ignore[import-not-found]
                finalize_layerwise_reload,
                initialize_layerwise_reload,
            )
        except ImportError:
            return None
        return initialize_layerwise_reload, finalize_layerwise_reload

    def _hw_mode(self) -> str:
        """Quantized weights are re-derived per layer by vLLM's layer-wise reload; others load in place."""
        if self._hw_quantization() is not None:
            if self._hw_reload_api() is None:
                raise NameMismatchError("this vLLM has no layer-wise reload, so a quantized model "
                                        f"({self._hw_quantization()}) cannot be updated in place")
            return "layerwise"
        return "plain"

    def _hw_post_process(self, model: torch.nn.Module) -> str:
        try:
            from vllm.model_executor.model_loader.utils import (  # type: ignore[import-not-found]
                process_weights_after_loading,
            )
        except ImportError:
            return "none"
        process_weights_after_loading(model, self.model_runner.model_config, self.device)
        return "process_weights_after_loading"

    def _hw_sync(self) -> None:
        device = torch.device(getattr(self, "device", "cpu"))
        if device.type == "cuda":
            torch.cuda.synchronize(device)


class _Meta:
    """What name matching needs of a staged tensor."""

    def __init__(self, t: StagedTensor) -> None:
        self.name = t.name
        self.dtype = t.tensor.dtype
        self.shape = tuple(t.tensor.shape)


def _vllm_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("vllm")
    except Exception:
        return None


def _raw_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().reshape(-1).contiguous().cpu()
    return flat.view(torch.uint8).numpy().data


def _snapshot(model: torch.nn.Module, names: set[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters(remove_duplicate=False))
    return {n: params[n].detach().to("cpu", copy=True) for n in sorted(names)}


def _restore(model: torch.nn.Module, undo: dict[str, torch.Tensor]) -> bool:
    params = dict(model.named_parameters(remove_duplicate=False))
    try:
        with torch.no_grad():
            for name, saved in undo.items():
                params[name].data.copy_(saved)
        return True
    except Exception:
        return False
