import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GANDISTILL_NO_PROGRESS", "1")
# spinning OpenMP workers starve each other on a shared 2-core box; must be set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from gandistill.teachers.stylegan2 import Discriminator, Generator  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threading overhead dominates


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts on one intra-op thread, whatever an earlier test set (tiny tensors run fastest so)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- tiny networks shared by the tests (``from conftest import tiny_G, tiny_D``) ---------------------------

def tiny_G(c_dim: int = 0, seed: int = 0, channels: int = 3, res: int = 16) -> Generator:
    """A seeded StyleGAN2 generator small enough for CPU tests (z, w: 16-d; 16 channels at most)."""
    torch.manual_seed(seed)
    return Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=channels,
                     mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 128, "channel_max": 16})


def tiny_D(res: int = 16, c_dim: int = 0, seed: int = 1) -> Discriminator:
    """A seeded StyleGAN2 discriminator to match :func:`tiny_G`."""
    torch.manual_seed(seed)
    return Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, architecture="orig", channel_base=128,
                         channel_max=16, epilogue_kwargs={"mbstd_group_size": 2})


FIXTURE_DIR = Path(__file__).parent / "fixtures"


def tiny_teacher_kwargs(teacher):
    """Keyword arguments that build the built-in teacher ``teacher`` from tiny networks (CPU, seconds);
    a teacher added to gandistill needs an entry here, and the registry-wide smoke tests say so."""
    if teacher is None:
        return {}
    table = {
        "sg2-generator": lambda: {"G": tiny_G()},
        "sg2-latent": lambda: {"G": tiny_G()},
        "sg2-encoder": lambda: {"G": tiny_G(), "perceptual": "random-conv"},
        "sg2-discriminator": lambda: {"D": tiny_D(), "mode": "multi"},
        "sg2-d-on-g": lambda: {"G": tiny_G(), "D": tiny_D(), "mode": "multi"},
        "sg3-generator": lambda: {"ckpt": str(FIXTURE_DIR / "sg3" / "sg3t-tiny-uncond.pkl")},
        "sg3-latent": lambda: {"ckpt": str(FIXTURE_DIR / "sg3" / "sg3t-tiny-uncond.pkl")},
        "sg3-discriminator": lambda: {"ckpt": str(FIXTURE_DIR / "sg3" / "sg3r-tiny-uncond.pkl")},
    }
    if teacher not in table:
        pytest.fail(f"no tiny settings for teacher {teacher!r}: add them to tiny_teacher_kwargs in tests/conftest.py")
    return table[teacher]()


def builtin(registry):
    """The names of ``registry`` that gandistill itself registers (not a test's or a plug-in's)."""
    return [n for n in registry.names() if getattr(registry.get(n), "__module__", "").startswith("gandistill.")]
