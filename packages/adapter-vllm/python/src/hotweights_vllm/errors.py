"""Named errors. Each message starts with its code so it survives vLLM's RPC and HTTP layers,
which pass an exception on as text."""

from __future__ import annotations


class HotweightsVllmError(Exception):
    code = "E_VLLM"

    def __init__(self, message: str) -> None:
        super().__init__(f"[{self.code}] {message}")
        self.message = message


class PayloadError(HotweightsVllmError):
    """The prepare payload is malformed (a field is missing or of the wrong type)."""

    code = "E_VLLM_PAYLOAD"


class StagedBytesError(HotweightsVllmError):
    """A staged segment or item cannot be mapped as declared (size, dtype, alignment, hash)."""

    code = "E_VLLM_STAGED"


class NameMismatchError(HotweightsVllmError):
    """Staged tensors that the live model does not have, or whose shape or dtype do not fit."""

    code = "E_VLLM_NAMES"


class TxnError(HotweightsVllmError):
    """A transaction id that was never prepared, or a commit for another version."""

    code = "E_VLLM_TXN"


class CommitFailedError(HotweightsVllmError):
    """load_weights or post-processing failed; the message says whether the weights were restored."""

    code = "E_VLLM_COMMIT"


class UnsupportedModelError(HotweightsVllmError):
    """A deployment this extension does not update in place yet (pipeline parallel, MoE experts)."""

    code = "E_VLLM_UNSUPPORTED"
