"""The worker extension vLLM mixes into every GPU worker (`--worker-extension-cls
hotweights_vllm.HotweightsWorkerExtension`).

vLLM appends this class to the worker's bases after asserting that none of its attribute names
already exist on the worker, and never calls its `__init__`: every name here starts with `hw_`
or `_hw_`, and the state is created on first use. The methods are reached through
`collective_rpc`, which over HTTP forwards only string arguments and returns dicts as JSON.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import torch

from .errors import CommitFailedError, NameMismatchError, StagedBytesError, TxnError, UnsupportedModelError
from .hashing import check_hash
from .names import Target, layer_order, match, uncovered_layers
from .payload import parse_payload
from .segments import MappedSegments, StagedTensor, stage_tensors


@dataclass
class _Load:
    """One model's share of a transaction: the served model, or the speculative-decoding drafter
    (its own module with its own `load_weights`, fed the tensors under the drafter prefix)."""

    role: str
    model: torch.nn.Module
    prefix: str
    # The names `load_weights` takes (the drafter's without the prefix), one per staged tensor.
    names: list[str]
    tensors: list[StagedTensor]
    targets: list[Target]
    skipped: list[str]
    # This rank's live values of every parameter the update overwrites (host copies): what a
    # failed commit puts back, and what rollback re-commits until the next commit replaces them.
    undo: dict[str, torch.Tensor]


@dataclass
class _Prepared:
    txn: str
    version: str
    tensors: list[StagedTensor]
    loads: list[_Load]
    segments: MappedSegments
    mode: str


@dataclass
class _Committed:
    txn: str
    version: str
    previous: Optional[str]
    loads: list[_Load]


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
        # A server takes one transaction at a time: a new prepare drops any other (e.g. the one a
        # sidecar left when it died between prepare and commit), with its mappings and host copies.
        for other in list(st.prepared):
            self.hw_release(other)
        tp_rank, tp_size = self._hw_tp()
        self._hw_check_supported()
        segments = MappedSegments()
        try:
            tensors = stage_tensors(payload, tp_rank, segments)
            _refuse_experts([t.name for t in tensors])
            if payload.verify_hashes:
                for t in tensors:
                    if t.hash is None:
                        raise StagedBytesError(f"tensor {t.name} has no hash to verify")
                    check_hash(t.name, t.hash, t.chunks)
            tensors.sort(key=lambda t: layer_order(t.name))
            mode = self._hw_mode()
            prefix = payload.drafter_prefix
            drafted = [t for t in tensors if prefix and t.name.startswith(prefix)]
            served = [t for t in tensors if not (prefix and t.name.startswith(prefix))]
            loads = [_plan_load("model", self.model_runner.model, served, "", tp_size, payload.allow_dtype_cast,
                                mode)]
            if drafted:
                drafter = self._hw_drafter()
                if drafter is None:
                    raise NameMismatchError(
                        f"{len(drafted)} staged tensor(s) are named for a speculative-decoding drafter "
                        f"({drafted[0].name}, prefix {prefix!r}) but this server runs none; start vLLM with "
                        "its --speculative-config, or publish without the drafter's tensors")
                loads.append(_plan_load("drafter", drafter, drafted, prefix, tp_size, payload.allow_dtype_cast,
                                        mode))
        except BaseException:
            segments.close()
            raise
        st.prepared[txn] = _Prepared(txn, payload.version, tensors, loads, segments, mode)
        return {
            "rank": int(getattr(self, "rank", 0)),
            "tp_rank": tp_rank,
            "txn": txn,
            "version": payload.version,
            "tensors": len(tensors),
            "bytes": sum(t.tensor.numel() * t.tensor.element_size() for t in tensors),
            "zero_copy": sum(1 for t in tensors if t.zero_copy),
            "params": sum(len({t.param for t in ld.targets}) for ld in loads),
            "drafter_tensors": len(drafted),
            "skipped": [ld.prefix + n for ld in loads for n in ld.skipped],
            "mode": mode,
            "verified_hashes": payload.verify_hashes,
            "undo_bytes": sum(_nbytes(u) for ld in loads for u in ld.undo.values()),
        }

    def hw_commit(self, txn: str, version: str) -> dict[str, Any]:
        """Loads the prepared tensors into the model (then the drafter); on failure puts the
        previous values back."""
        st = self._hw_state()
        prep = st.prepared.get(txn)
        if prep is None:
            raise TxnError(f"transaction {txn!r} is not prepared on rank {getattr(self, 'rank', 0)}; "
                           "call hw_prepare first")
        if prep.version != version:
            raise TxnError(f"transaction {txn!r} prepares {prep.version!r}, not {version!r}")
        t0 = time.perf_counter()
        post: dict[str, str] = {}
        loaded: list[str] = []
        try:
            with torch.no_grad():
                for load in prep.loads:
                    names, post[load.role] = self._hw_load(load, prep.mode)
                    loaded += [f"{load.prefix and _DRAFTER_LABEL}{n}" for n in names]
                self._hw_sync()
        except BaseException as err:
            restored = all([_restore(load.model, load.undo) for load in prep.loads])
            self._hw_sync()
            self.hw_release(txn)
            state = "previous weights restored" if restored else "RESTORING THE PREVIOUS WEIGHTS FAILED"
            raise CommitFailedError(f"commit of {version} failed on rank {getattr(self, 'rank', 0)} "
                                    f"({state}): {err}") from err
        seconds = time.perf_counter() - t0
        nbytes = sum(t.tensor.numel() * t.tensor.element_size() for t in prep.tensors)
        count = sum(len(ld.tensors) - len(ld.skipped) for ld in prep.loads)
        # The previous commit's host copies are dropped here: one version back is kept. The staged
        # views go (the segments are unmapped below); the host copies stay for rollback.
        for load in prep.loads:
            load.tensors = []
        st.last = _Committed(txn, version, st.live_version, prep.loads)
        st.live_version = version
        prep.loads = []
        self.hw_release(txn)
        return {
            "rank": int(getattr(self, "rank", 0)),
            "tp_rank": self._hw_tp()[0],
            "version": version,
            "loaded": loaded,
            "tensors": count,
            "bytes": nbytes,
            "mode": prep.mode,
            "post_processing": post.get("model", "none"),
            "drafter_post_processing": post.get("drafter"),
            "seconds": seconds,
        }

    def hw_rollback(self, which: str = "") -> dict[str, Any]:
        """Re-commits the previous version: puts back the values the last commit overwrote, if that
        commit is still live and `which` names it (its transaction id or version; empty: any)."""
        st = self._hw_state()
        last = st.last
        if last is None or st.live_version != last.version or (which and which not in (last.txn, last.version)):
            return {"rank": int(getattr(self, "rank", 0)), "rolled_back": False, "live_version": st.live_version}
        with torch.no_grad():
            if not all([_restore(load.model, load.undo) for load in last.loads]):
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
        drafter = self._hw_drafter()
        if drafter is not None:
            for name, p in drafter.named_parameters():
                digests[f"{_DRAFTER_LABEL}{name}"] = hashlib.sha256(_raw_bytes(p)).hexdigest()
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
            for load in prep.loads:
                load.tensors.clear()
                load.undo.clear()
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

    def _hw_drafter(self) -> Optional[torch.nn.Module]:
        """The speculative-decoding drafter's model (vLLM's runner keeps its proposer as `drafter`;
        n-gram proposers have no model)."""
        model = getattr(getattr(self.model_runner, "drafter", None), "model", None)
        return model if isinstance(model, torch.nn.Module) else None

    def _hw_pp_size(self) -> int:
        try:
            # (one import of vllm.distributed is enough for mypy to report it missing)
            from vllm.distributed import get_pp_group  # type: ignore[import-not-found,unused-ignore]

            return int(get_pp_group().world_size)
        except Exception:  # no vLLM, or its groups are not initialised (tests, tools)
            pass
        return int(getattr(getattr(self, "parallel_config", None), "pipeline_parallel_size", 1) or 1)

    def _hw_check_supported(self) -> None:
        pp = self._hw_pp_size()
        if pp > 1:
            raise UnsupportedModelError(
                f"pipeline parallelism (pipeline_parallel_size={pp}) is not supported: each stage holds "
                "only its own layers and hotweights does not yet split an update by stage; run this "
                "server with --pipeline-parallel-size 1 to update it in place")

    def _hw_load(self, load: _Load, mode: str) -> tuple[list[str], str]:
        """Feeds one model its tensors through its own load_weights; returns what it loaded and
        which post-processing ran."""
        skipped = set(load.skipped)
        weights = ((n, t.tensor) for n, t in zip(load.names, load.tensors) if n not in skipped)
        model: Any = load.model  # a vLLM model: load_weights is its own, not nn.Module's
        if mode == "layerwise":
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
        expected = {t.param for t in load.targets}
        if isinstance(loaded, (set, frozenset)) and not expected <= loaded:
            left = sorted(expected - loaded)
            raise CommitFailedError(f"{load.role} load_weights did not load {', '.join(left[:5])}")
        return (sorted(loaded) if isinstance(loaded, (set, frozenset)) else sorted(expected)), post

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


_DRAFTER_LABEL = "drafter."
# Expert tensors of mixture-of-experts checkpoints (Mixtral, Qwen-MoE, DeepSeek, ...).
_EXPERT = re.compile(r"\.experts\.")


class _Meta:
    """What name matching needs of a staged tensor."""

    def __init__(self, name: str, t: StagedTensor) -> None:
        self.name = name
        self.dtype = t.tensor.dtype
        self.shape = tuple(t.tensor.shape)


def _refuse_experts(names: list[str]) -> None:
    experts = [n for n in names if _EXPERT.search(n)]
    if experts:
        raise UnsupportedModelError(
            f"{len(experts)} staged tensor(s) are mixture-of-experts weights ({experts[0]}): not supported "
            "yet, because vLLM loads experts through the model's expert_params_mapping, which hotweights "
            "does not check before the model is touched; restart the server to change expert weights")


def _plan_load(role: str, model: torch.nn.Module, tensors: list[StagedTensor], prefix: str, tp_size: int,
               allow_dtype_cast: bool, mode: str) -> _Load:
    """Dry-runs name matching for one model and snapshots what its load would overwrite."""
    names = [t.name[len(prefix):] for t in tensors]
    targets, skipped = match(model, [_Meta(n, t) for n, t in zip(names, tensors)], tp_size, allow_dtype_cast)
    if mode == "layerwise":
        missing = uncovered_layers(model, targets)
        if missing:
            raise NameMismatchError(
                f"layer-wise reload (quantized model) needs every tensor of each layer it touches; the "
                f"update leaves out {', '.join(prefix + m for m in missing[:5])}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + "; plan this update as full layers")
    undo = _snapshot(model, {t.param for t in targets})
    return _Load(role, model, prefix, names, tensors, targets, skipped, undo)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


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
