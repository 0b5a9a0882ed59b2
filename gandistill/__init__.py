"""gandistill: distil representations from pretrained GANs into ordinary backbones (Squeeze and Span)."""
__version__ = "0.1.0"
