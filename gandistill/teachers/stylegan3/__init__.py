"""StyleGAN3 (stylegan3-t, stylegan3-r) in plain PyTorch, and reading StyleGAN3-repository snapshots."""
from .networks import SG3Generator, SynthesisInput, SynthesisLayer, SynthesisNetwork, layer_schedule

__all__ = ["SG3Generator", "SynthesisNetwork", "SynthesisInput", "SynthesisLayer", "layer_schedule"]
