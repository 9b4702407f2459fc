"""Named errors of the trainer swap; each message starts with its code."""

from __future__ import annotations


class HotweightsTrainerError(Exception):
    code = "E_TRAINER"

    def __init__(self, message: str) -> None:
        super().__init__(f"[{self.code}] {message}")
        self.message = message


class OfferError(HotweightsTrainerError):
    """The worker's offer or commit file is malformed, or a staged segment is not as declared."""

    code = "E_TRAINER_OFFER"


class MismatchError(HotweightsTrainerError):
    """Staged tensors the live model does not have, or whose shape or dtype differ. Nothing was applied."""

    code = "E_TRAINER_MISMATCH"


class PolicyError(HotweightsTrainerError):
    """An unknown optimizer-state policy or an attenuation outside 0..1."""

    code = "E_TRAINER_POLICY"
