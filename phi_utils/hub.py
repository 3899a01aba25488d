"""Whether the Hugging Face hub can be reached (imports nothing else from phi_utils: every layer may use it)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

HUB = "huggingface.co"


@dataclass(frozen=True)
class HubCheck:
    """The answer of `hub_reachable`: true when the hub answered."""

    ok: bool
    """One TCP connection to the hub succeeded, and no setting forbids the hub."""
    why: str = ""
    """Why not, when not (`HF_HUB_OFFLINE=1`, `PHI_NO_HUB=1`, or the connection's error)."""

    def __bool__(self) -> bool:
        return self.ok


def hub_reachable(host: str = HUB, timeout: float = 3.0) -> HubCheck:
    """Whether the hub is usable: false without a connection attempt when `HF_HUB_OFFLINE=1` or
    `PHI_NO_HUB=1`, else whether one TCP connection to `host`:443 opens within `timeout` seconds."""
    for var in ("HF_HUB_OFFLINE", "PHI_NO_HUB"):
        if os.environ.get(var) == "1":
            return HubCheck(False, f"{var}=1")
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return HubCheck(True)
    except OSError as e:
        return HubCheck(False, f"{type(e).__name__}: {e}")
