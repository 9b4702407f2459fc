"""hotweights for training jobs: swap committed versions into live parameters in place."""

from .apply import check, copy_in
from .errors import HotweightsTrainerError, MismatchError, OfferError, PolicyError
from .policy import apply_policy, factors, load_table, policy_names
from .swap import Applied, TrainerSwap

__all__ = [
    "Applied",
    "HotweightsTrainerError",
    "MismatchError",
    "OfferError",
    "PolicyError",
    "TrainerSwap",
    "apply_policy",
    "check",
    "copy_in",
    "factors",
    "load_table",
    "policy_names",
]
__version__ = "0.1.0"
