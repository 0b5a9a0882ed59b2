import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GANDISTILL_NO_PROGRESS", "1")
# spinning OpenMP workers starve each other on a shared 2-core box; must be set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threading overhead dominates
