import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GANDISTILL_NO_PROGRESS", "1")
# spinning OpenMP workers starve each other on a shared 2-core box; must be set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threading overhead dominates


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts on one intra-op thread, whatever an earlier test set (tiny tensors run fastest so)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
