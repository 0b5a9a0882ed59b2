"""The plan built into concrete parts: the frozen teacher, the trainables (student S_theta + head:
T_phi or SimSiam's predictor) in ONE SGD optimizer, the augmentations, the real stream and the z generator.

Only the trainables are wrapped in DDP; the teacher never is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandistill.augment import build_augment
from gandistill.teachers.bank import BankExpectation, BankTeacher
from gandistill.engine.distributed import Dist, rank_seeds
from gandistill.engine.model import DistillModel
from gandistill.engine.plan import Plan
from gandistill.engine.stream import RealStream
from gandistill.students import create_student
from gandistill.teachers import TEACHERS, create_teacher
from gandistill.teachers.generator import SG2SamplingTeacher


@dataclass
class Parts:
    """Everything a step touches."""

    teacher: Any
    student: nn.Module
    head: Optional[nn.Module]
    head_kind: Optional[str]            # "squeeze" | "predictor" | None (the checkpoint file stem)
    model: DistillModel                 # student + head, unwrapped
    train_model: nn.Module              # ``model`` or its DDP wrapper
    opt: torch.optim.Optimizer
    scaler: Optional[Any]               # GradScaler for fp16 on GPU
    aug_syn: Any
    aug_real: Any
    norm_real: Any
    stream: Optional[RealStream]
    z_gen: torch.Generator              # this rank's latent stream (seed * 7919 + rank)


def build_teacher(plan: Plan, device: torch.device):
    """The frozen teacher the method needs (``None`` for real-data-only methods); with ``plan.bank`` a
    :class:`~gandistill.teachers.bank.BankTeacher` that reads the teacher's samples from disk (refusing a bank of
    another teacher, checkpoint, teacher options or resolution)."""
    if plan.teacher_name is None:
        if plan.bank:
            raise ValueError(f"method {plan.spec.name} uses no synthetic images, so --bank does not apply")
        return None

    spec = plan.spec
    if plan.bank:
        if not spec.uses_synthetic:
            raise ValueError(f"method {spec.name} uses no synthetic images, so --bank does not apply")
        if plan.objective.bank_refusal:
            raise ValueError(plan.objective.bank_refusal)

        return BankTeacher(plan.bank, BankExpectation(teacher=plan.teacher_name, ckpt=plan.teacher_ckpt,
                                                      img_resolution=plan.img_size,
                                                      teacher_kwargs=plan.teacher_kwargs), device=device)
    tkw = dict(plan.teacher_kwargs)
    factory = TEACHERS.get(plan.teacher_name)
    if isinstance(factory, type) and issubclass(factory, SG2SamplingTeacher):
        tkw.setdefault("precision", plan.precision)      # G runs at the run's precision (fp32 on CPU)
    teacher = create_teacher(plan.teacher_name, ckpt=plan.teacher_ckpt, device=device, **tkw)
    if spec.uses_synthetic and not getattr(teacher, "can_sample", True):
        raise ValueError(f"teacher '{plan.teacher_name}' cannot sample images, which method '{spec.name}' needs")
    plan.objective.check_teacher(spec, plan.teacher_name, teacher)
    return teacher


def teacher_conditional(teacher: Any) -> bool:
    """True when the teacher's network takes class labels (SG2 ``c_dim > 0``): the distilled student
    then learnt from a label-conditioned model and is not self-supervised."""
    if teacher is None:
        return False
    c_dim = getattr(teacher, "c_dim", None)
    if c_dim is None:
        net = getattr(teacher, "G", None) or getattr(teacher, "D", None)
        c_dim = getattr(net, "c_dim", 0)
    try:
        return int(c_dim) > 0
    except (TypeError, ValueError):
        return False


def check_student_input(plan: Plan, student: nn.Module, teacher: Any, device: torch.device) -> None:
    """Refuse, before training, images the student cannot take: the teacher's channel count, and the
    input size (teacher and real images are resized to ``img_size``) through one no-grad eval forward."""
    channels = getattr(teacher, "img_channels", 3) if teacher is not None and plan.n_syn else 3
    if int(channels) != 3:
        raise ValueError(f"teacher '{plan.teacher_name}' makes {channels}-channel images; students take RGB "
                         "(3 channels), as the real images are")
    size = plan.img_size
    res = getattr(teacher, "img_resolution", None) if teacher is not None and plan.n_syn else None
    was = student.training
    try:
        with torch.no_grad():
            student.eval()(torch.zeros(2, 3, size, size, device=device))
    except Exception as e:          # timm raises AssertionError / RuntimeError / ValueError for bad sizes
        src = (f"the teacher's {res}x{res} images and the real ones are resized to it" if res
               else "the real images are resized to it")
        raise ValueError(f"student '{plan.student_name}' cannot take {size}x{size} inputs (--img-size {size}; {src}): "
                         f"{type(e).__name__}: {e}") from None
    finally:
        student.train(was)


def _build_aug(preset: str, size: int, ds: Any, input_range: str, shared: bool, device: torch.device):
    return build_augment(preset, size, tuple(ds.mean), tuple(ds.std), input_range=input_range, shared=shared).to(device)


def build_parts(plan: Plan, teacher: Any, train_ds: Any, device: torch.device, d: Dist) -> Parts:
    """Student (+ head), optimizer, (DDP), augmentations, real stream and z generator, in this order
    (the order fixes which random numbers each part draws)."""
    spec = plan.spec
    objective = plan.objective
    head, head_kind, proj_out = objective.build_head(plan, teacher)
    skw = dict(plan.student_kwargs)
    if plan.proj_final_bn:
        skw["proj_final_bn"] = True
    student = create_student(plan.student_name, img_size=plan.img_size, proj_layers=plan.proj_layers,
                             proj_hidden=plan.proj_hidden, proj_out=proj_out, cifar_stem=plan.cifar_stem, **skw)
    if student.proj_out != proj_out:
        raise ValueError(f"the student's output width {student.proj_out} does not match the target width {proj_out} "
                         "(proj_layers=0 keeps the backbone width; use a projector)")
    model = DistillModel(objective, student, head).to(device)
    check_student_input(plan, student, teacher, device)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)

    groups = [{"params": [p for p in student.parameters() if p.requires_grad], "fixed": False}]
    if head is not None and any(True for _ in head.parameters()):
        groups.append({"params": list(head.parameters()), "fixed": spec.fixed_head_lr})
    # fused: one kernel per step for the whole update (same rule, bit-identical weights on CPU)
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    opt = torch.optim.SGD(groups, lr=plan.lr, momentum=0.9, weight_decay=plan.wd, **fused)
    scaler = torch.amp.GradScaler("cuda") if (plan.precision == "fp16" and device.type == "cuda") else None

    train_model: nn.Module = model
    if d.world > 1:
        if plan.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    syn_preset = plan.aug_preset if spec.augment else "none"
    aug_syn = _build_aug(syn_preset, plan.img_size, train_ds, "gan", plan.shared_aug, device) if plan.n_syn else None
    aug_real = _build_aug(plan.aug_preset, plan.img_size, train_ds, "unit", False, device) if plan.n_real else None
    norm_real = _build_aug("none", plan.img_size, train_ds, "unit", False, device) if plan.n_real else None
    stream = RealStream(train_ds, plan.n_real, plan.seed, d, plan.workers) if plan.n_real else None
    z_gen = torch.Generator().manual_seed(rank_seeds(plan.seed, d.world)[d.rank]["z"])
    return Parts(teacher=teacher, student=student, head=head, head_kind=head_kind, model=model,
                 train_model=train_model, opt=opt, scaler=scaler, aug_syn=aug_syn, aug_real=aug_real,
                 norm_real=norm_real, stream=stream, z_gen=z_gen)
