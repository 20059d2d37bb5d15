"""The device a tool runs on, from its ``device=`` setting."""

from __future__ import annotations

import torch

from synth.distributions import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: a CUDA GPU where there is one, else the CPU; a named device that is not
    here is refused in one line (not torch's 'Found no NVIDIA driver' traceback)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:  # torch's message lists its twenty-odd device types
        raise ConfigError(f"device={name}: expected auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA GPU here; use device=auto or device=cpu")
    return device
