"""hotweights for vLLM: the worker extension that lands staged updates in a running server."""

from .errors import (
    CommitFailedError,
    HotweightsVllmError,
    NameMismatchError,
    PayloadError,
    StagedBytesError,
    TxnError,
    UnsupportedModelError,
)
from .extension import HotweightsWorkerExtension
from .payload import PAYLOAD_VERSION, SCHEMA

__all__ = [
    "PAYLOAD_VERSION",
    "SCHEMA",
    "CommitFailedError",
    "HotweightsVllmError",
    "HotweightsWorkerExtension",
    "NameMismatchError",
    "PayloadError",
    "StagedBytesError",
    "TxnError",
    "UnsupportedModelError",
]
__version__ = "0.1.0"
