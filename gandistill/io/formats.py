"""The schemas of every JSON file gandistill reads (see :mod:`gandistill.io.schema` for the language).

* :data:`RUN_CONFIG` -- a run folder's ``config.json`` (written by ``fit``);
* :data:`CHECKPOINT` -- a run folder's ``checkpoint.json`` (``engine.checkpoint.save_checkpoint``);
* :data:`STUDENT_KWARGS` -- ``create_student`` keyword arguments kept in a checkpoint or run config:
  the :class:`~gandistill.students.student.StudentConfig` fields plus the few timm options we pass on;
  anything else is refused (a file must not smuggle arbitrary keyword arguments into timm);
* :data:`BANK_HEADER` -- a feature bank's JSON header;
* :data:`BACKBONE` -- an export's ``backbone.json``;
* :data:`TEACHER_FOLDER` -- a teacher folder's ``gandistill_sg2.json``;
* :data:`JUDGE` -- the digits judge's ``judge.json``.
"""
from __future__ import annotations

from gandistill.io.schema import ANY, Bool, Int, List, Map, Num, Obj, OneOf, Opt, Str

NAME = Str(max_len=256)
FILE = Str(max_len=255)
WIDTH = Int(1, 65_536)
STEP = Int(0, 2 ** 53)
IMG_SIZE = Int(1, 1024)

#: timm options a student may carry (passed to ``timm.create_model``)
TIMM_KWARGS = {
    "drop_rate": Num(0.0, 1.0), "drop_path_rate": Num(0.0, 1.0), "drop_block_rate": Num(0.0, 1.0),
    "global_pool": Str(max_len=16, choices=("avg", "max", "avgmax", "catavgmax", "token", "")),
}
#: the StudentConfig fields (``name`` included: some writers keep it)
STUDENT_FIELDS = {
    "name": NAME, "img_size": IMG_SIZE, "proj_layers": Int(0, 16), "proj_hidden": Opt(WIDTH), "proj_out": WIDTH,
    "pretrained": Bool(), "cifar_stem": Opt(Bool()), "proj_final_bn": Bool(),
}
STUDENT_KWARGS = Obj(optional={**STUDENT_FIELDS, **TIMM_KWARGS}, extra="refuse")

NORMALISE = Obj(required={"mean": List(Num(-10.0, 10.0), max_len=4, min_len=1),
                          "std": List(Num(1e-6, 10.0), max_len=4, min_len=1)})

RUN_CONFIG = Obj(
    required={"config": Obj(optional={"student_kwargs": Opt(STUDENT_KWARGS), "dataset": Opt(Str(256)),
                                      "student": Opt(NAME), "method": Opt(NAME)})},
    optional={"resolved": Obj(optional={"normalise": Opt(NORMALISE), "img_size": Opt(IMG_SIZE),
                                        "student": Opt(NAME)}),
              "method": Opt(Obj()), "teacher_conditional": Opt(Bool())},
)

CHECKPOINT = Obj(
    required={"format": Str(64, choices=("gandistill-student",)), "student": NAME, "weights": FILE},
    optional={"version": Int(1, 1), "student_kwargs": STUDENT_KWARGS, "head": Opt(FILE), "head_kind": Opt(Str(64)),
              "train_state": Opt(FILE), "step": STEP, "saved": Str(64), "method": Opt(NAME), "teacher": Opt(NAME),
              "teacher_ckpt": Opt(Str(4096)), "dataset": Opt(Str(256)), "img_size": Opt(IMG_SIZE),
              "total_steps": Opt(STEP)},
)

#: a checkpoint JSON as ``gandistill eval`` accepts it (older/hand-written layouts too)
EVAL_CHECKPOINT = Obj(
    required={"student": OneOf((NAME, Obj(required={"name": NAME}, optional=STUDENT_FIELDS,
                                          extra="refuse")))},
    optional={"format": Str(64), "student_kwargs": STUDENT_KWARGS, "kwargs": STUDENT_KWARGS,
              "create_student": STUDENT_KWARGS, "weights": FILE, "file": FILE, "safetensors": FILE,
              "step": Opt(STEP)},
)

_DIMS = List(Int(0, 2 ** 40), max_len=8)
BANK_HEADER = Obj(
    required={
        "format": Str(64), "version": Int(0, 1000), "n": Int(2, 2 ** 40),
        "teacher": NAME, "teacher_ckpt": Str(4096), "teacher_fingerprint": Str(128),
        "img_resolution": Int(1, 4096), "img_channels": Int(1, 4),
        "target_names": List(Str(256), max_len=64, min_len=1), "target_dims": List(Int(1, 2 ** 20), max_len=64, min_len=1),
        "offsets": Obj(required={"images": Int(0, 2 ** 62), "targets": Int(0, 2 ** 62)},
                       optional={"labels": Opt(Int(0, 2 ** 62))}),
    },
    optional={"teacher_kwargs": Map(ANY), "teacher_describe": Obj(optional={"c_dim": Opt(Int(0, 100_000))}),
              "images": Opt(Obj(optional={"shape": _DIMS})), "targets": Opt(Obj(optional={"shape": _DIMS})),
              "labels": Opt(Obj(optional={"shape": _DIMS})), "seed": Opt(Int(-2 ** 63, 2 ** 64)), "created": Str(64)},
)

BACKBONE = Obj(
    required={"format": Str(64, choices=("gandistill-backbone",)), "timm_name": NAME},
    optional={"version": Int(1, 1), "timm_kwargs": Obj(optional={"img_size": IMG_SIZE, **TIMM_KWARGS},
                                                        extra="refuse"),
              "num_classes": Int(0, 0), "patches": List(Str(64), max_len=8), "weights": FILE,
              "num_features": WIDTH, "img_size": IMG_SIZE,
              "projector": Opt(Obj(required={"in_dim": WIDTH, "layers": Int(0, 16), "out": WIDTH},
                                   optional={"file": Opt(FILE), "hidden": Opt(WIDTH), "final_bn": Bool()})),
              "input": Obj(optional={"mean": List(Num(-10.0, 10.0), max_len=4), "std": List(Num(1e-6, 10.0), max_len=4),
                                     "range": Str(256)}),
              "source": Obj(), "teacher_conditional": Opt(Bool()), "exported": Str(64), "load": Str(1024)},
)

TEACHER_FOLDER = Obj(
    required={"format": Str(64), "version": Int(1, 1000), "nets": Map(Obj(required={"kwargs": Obj()},
                                                                          optional={"class": Str(256), "file": FILE}),
                                                                      max_keys=16)},
    optional={"meta": Obj()},
)

JUDGE = Obj(optional={"test_accuracy": Num(0.0, 1.0), "feature_dim": WIDTH, "epochs": Int(0, 10_000),
                      "seed": Int(-2 ** 63, 2 ** 64), "seconds": Num(0.0), "recipe": Str(), "train": Str(), "command": Str()})

__all__ = ["BACKBONE", "BANK_HEADER", "CHECKPOINT", "EVAL_CHECKPOINT", "JUDGE", "RUN_CONFIG", "STUDENT_KWARGS",
           "TEACHER_FOLDER", "TIMM_KWARGS"]
