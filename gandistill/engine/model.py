"""The trainables of a run as ONE module: the student S_theta and its objective's head (T_phi, SimSiam's
predictor or none), so DDP wraps exactly what trains and sees every student pass of a step in one call."""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

from torch import Tensor, nn

from gandistill.objectives import Objective, get_objective


class DistillModel(nn.Module):
    """The trainables (student S_theta and its head: T_phi or SimSiam's predictor) with ONE forward
    per step, so DDP sees every student pass of the step in a single call; the passes themselves are
    the objective's (:meth:`gandistill.objectives.Objective.forward`)."""

    def __init__(self, objective: Union[str, Objective], student: nn.Module, head: Optional[nn.Module]) -> None:
        super().__init__()
        self.task = get_objective(objective) if isinstance(objective, str) else objective
        if not self.task.trains:
            raise ValueError(f"objective {self.task.name!r} does not train")
        self.objective = self.task.name
        self.student = student
        self.head = head

    def forward(self, **inputs: Any) -> Dict[str, Tensor]:
        return self.task.forward(self.student, self.head, **inputs)
