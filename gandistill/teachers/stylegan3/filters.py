"""StyleGAN3's low-pass filters, designed in PyTorch (no scipy).

Snapshots store every filter as a buffer, so loading never designs one; these functions give a
freshly constructed network the same filters (and let the tests check the stored ones):

* ``lowpass_filter(numtaps, cutoff, width, fs)``: a windowed-sinc FIR filter (Kaiser window whose beta
  follows Kaiser's empirical attenuation formula for the transition ``width``), scaled to unit DC
  gain -- the windowed-sinc design of ``scipy.signal.firwin`` with a ``width``;
* ``radial=True``: the radially symmetric 2-D version (a jinc, ``J1(2 pi fc r) / (pi r)``, times the
  outer product of the same Kaiser window), normalised to sum 1 (the stylegan3-r downsampling filter).

``numtaps == 1`` means no filter (``None``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch


def kaiser_attenuation(numtaps: int, width: float) -> float:
    """Kaiser's estimate of the stop-band attenuation (dB) for ``numtaps`` and a normalised transition width."""
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """Kaiser's window parameter for an attenuation ``atten`` in dB."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def kaiser_window(numtaps: int, beta: float) -> torch.Tensor:
    """The symmetric Kaiser window ``I0(beta sqrt(1 - (2n/(M-1) - 1)^2)) / I0(beta)`` (float64)."""
    n = torch.arange(numtaps, dtype=torch.float64)
    half = (numtaps - 1) / 2
    arg = beta * torch.sqrt((1 - ((n - half) / half) ** 2).clamp_min(0))
    return torch.special.i0(arg) / torch.special.i0(torch.tensor(beta, dtype=torch.float64))


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
                   ) -> Optional[torch.Tensor]:
    """A float32 low-pass filter: [numtaps] (separable) or [numtaps, numtaps] (``radial``); None for 1 tap."""
    if numtaps < 1:
        raise ValueError(f"a filter needs at least one tap, got {numtaps}")
    if numtaps == 1:
        return None
    nyquist = fs / 2
    beta = kaiser_beta(kaiser_attenuation(numtaps, width / nyquist))
    window = kaiser_window(numtaps, beta)
    if not radial:
        fc = cutoff / nyquist  # as a fraction of Nyquist
        m = torch.arange(numtaps, dtype=torch.float64) - (numtaps - 1) / 2
        f = fc * torch.sinc(fc * m) * window
        return (f / f.sum()).float()
    x = (torch.arange(numtaps, dtype=torch.float64) - (numtaps - 1) / 2) / fs
    r = torch.hypot(x[None, :], x[:, None])
    f = torch.special.bessel_j1(2 * cutoff * math.pi * r) / (math.pi * r)
    f = f * torch.outer(window, window)
    return (f / f.sum()).float()
