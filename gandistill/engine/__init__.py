"""The training loop: one step for every method, a frozen teacher, student + head in one optimizer.

Data flows one way, one module per stage::

    config.py       FitConfig (what is asked), FitResult, TrainingStopped
    plan.py         FitConfig -> Plan: method defaults, batch split per rank, schedule, run folder
    model.py        DistillModel: student + the objective's head, one forward per step (what DDP wraps)
    parts.py        Plan -> Parts: teacher, student + head, SGD, (DDP), augmentations, streams
    stream.py       the real images of this rank, endless and resumable
    step.py         one forward (losses + finiteness) and one update
    loop.py         the steps with guards, metrics.jsonl and periodic checkpoints
    checkpoint.py   writing, checking and resuming the last checkpoint
    distributed.py  process group under torchrun, device of this rank, per-rank seeds, collectives
    probe.py        after training: the closing probe table (distilled / random init / raw pixels), d-direct
    record.py       what config.json says about the run (plan, teacher, versions, seeds)
    run.py          fit(): config -> plan -> parts -> loop -> results -> probes

SGD with momentum 0.9, ``lr = base_lr * batch / 256``, cosine decay per step without warm-up,
weight decay on all trainables; the squeeze module T_phi is trained with the student in the same
optimizer. Under ``torchrun`` (``WORLD_SIZE>1``) only the trainables are wrapped in DDP, the global
batch is split across ranks and only rank 0 logs and writes checkpoints.
"""
from gandistill.engine.checkpoint import (CKPT_FORMAT, CKPT_JSON, CheckpointWriteError, all_finite, atomic_write,
                                          check_run_dir, checkpoint_meta, find_latest_run, fingerprint,
                                          fingerprint_diff, load_weights, read_checkpoint, recover, resolve_resume,
                                          resume, save_checkpoint, train_state, write_json)
from gandistill.engine.config import (DEFAULT_STEPS, DEFAULT_STUDENT, ENCODER_INPUTS, EVAL_PROTOCOLS, PRECISIONS,
                                      FitConfig, FitResult, TrainingStopped, config_dict, default_run_dir,
                                      student_choice)
from gandistill.engine.distributed import (Dist, agree, barrier, broadcast_object, mean_over_ranks, rank_seeds,
                                           resolve_device, setup_distributed, teardown_distributed)
from gandistill.engine.probe import closing_table, probe_names, probe_only
from gandistill.engine.loop import LoopResult, log_line, train
from gandistill.engine.parts import Parts, build_parts, build_teacher, check_student_input, teacher_conditional
from gandistill.engine.plan import (EvalPlan, Plan, check_labelled, default_augment, make_plan, plan_dict,
                                    resolved_config)
from gandistill.engine.record import git_rev, run_record, versions
from gandistill.engine.run import fit
from gandistill.engine.model import DistillModel
from gandistill.engine.step import (StepOut, autocast, cosine_lr, embedding_of, embedding_spread, forward,
                                    make_inputs, update)
from gandistill.engine.stream import RealStream

__all__ = [
    "FitConfig", "FitResult", "TrainingStopped", "fit", "resolved_config", "student_choice", "default_run_dir",
    "embedding_spread", "cosine_lr", "RealStream", "DistillModel", "save_checkpoint", "CKPT_JSON",
    "DEFAULT_STUDENT", "DEFAULT_STEPS", "PRECISIONS", "EVAL_PROTOCOLS", "ENCODER_INPUTS", "CKPT_FORMAT",
    "Plan", "EvalPlan", "make_plan", "check_labelled", "plan_dict", "Parts", "build_parts", "build_teacher",
    "StepOut", "forward", "update", "make_inputs", "autocast", "embedding_of", "train", "LoopResult", "log_line",
    "Dist", "setup_distributed", "teardown_distributed", "resolve_device", "agree",
    "atomic_write", "write_json", "load_weights", "all_finite", "check_run_dir", "checkpoint_meta", "resume",
    "train_state", "config_dict", "run_record", "versions", "git_rev", "CheckpointWriteError", "recover",
    "read_checkpoint", "fingerprint", "fingerprint_diff", "find_latest_run", "resolve_resume", "teacher_conditional",
    "default_augment", "broadcast_object", "barrier", "mean_over_ranks", "rank_seeds", "check_student_input",
    "closing_table", "probe_names", "probe_only",
]
