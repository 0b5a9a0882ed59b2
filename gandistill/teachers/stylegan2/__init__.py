"""StyleGAN2-ADA in plain PyTorch: networks, named configs and a safe loader for NVlabs snapshots.

>>> from gandistill.teachers.stylegan2 import Generator, sg2_kwargs
>>> G_kwargs, D_kwargs = sg2_kwargs("tiny")
>>> G = Generator(**G_kwargs)
"""
from .configs import SG2Config, SG2_CONFIGS, get_sg2_config, list_sg2_configs, sg2_kwargs
from .networks import Discriminator, Generator

__all__ = [
    "Generator", "Discriminator", "SG2_CONFIGS", "SG2Config", "sg2_kwargs", "get_sg2_config", "list_sg2_configs",
    "load_sg2", "save_sg2", "convert", "SG2Checkpoint", "SG2LoadError", "UnsafePickleError",
]


def __getattr__(name):  # checkpoint I/O is imported lazily (it pulls in safetensors)
    if name in ("load_sg2", "save_sg2", "convert", "SG2Checkpoint", "SG2LoadError", "UnsafePickleError"):
        from . import checkpoint  # lazy: keeps the package face cheap (checkpoint pulls in safetensors)

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
