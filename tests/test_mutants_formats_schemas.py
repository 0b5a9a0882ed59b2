"""The JSON schemas of ``io/formats.py``, stated independently (for mutation testing: ``scripts/mutation.sh
formats`` and ``scripts/mutate_blind_spots.py --group formats``, as formats.py is module-level data that
mutmut 3 does not mutate): every schema's required keys, every bounded field at exactly its limits and one
past them, every string cap, the choices, the refused extra keys with their exact messages.
Deterministic and fast (a few table-driven tests, no files)."""
import copy

import pytest

from gandistill.io import formats as F
from gandistill.io import schema as S
from gandistill.io.errors import ConfigError

SK_KNOWN = ("cifar_stem, drop_block_rate, drop_path_rate, drop_rate, global_pool, img_size, name, pretrained, "
            "proj_final_bn, proj_hidden, proj_layers, proj_out")

#: a document of each schema with every field set to a valid value (the nested objects with required keys
#: included, so that a field deep inside can be changed alone)
FULL = {
    "STUDENT_KWARGS": {"name": "resnet18", "img_size": 32, "proj_layers": 2, "proj_hidden": 64, "proj_out": 32,
                       "pretrained": False, "cifar_stem": None, "proj_final_bn": True, "drop_rate": 0.1,
                       "drop_path_rate": 0.0, "drop_block_rate": 0.0, "global_pool": "avg"},
    "RUN_CONFIG": {"config": {"student_kwargs": {"img_size": 32}, "dataset": "cifar10", "student": "resnet18",
                              "method": "squeeze"},
                   "resolved": {"normalise": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}, "img_size": 32,
                                "student": "resnet18"},
                   "method": {"a": 1}, "teacher_conditional": False},
    "CHECKPOINT": {"format": "gandistill-student", "student": "resnet18", "weights": "student.safetensors",
                   "version": 1, "student_kwargs": {"proj_out": 8}, "head": "squeeze.safetensors",
                   "head_kind": "squeeze", "train_state": "train_state.pt", "step": 10, "saved": "2026",
                   "method": "squeeze", "teacher": "sg2", "teacher_ckpt": "t.pkl", "dataset": "cifar10",
                   "img_size": 32, "total_steps": 100},
    "EVAL_CHECKPOINT": {"student": "resnet18", "format": "x", "student_kwargs": {}, "kwargs": {},
                        "create_student": {}, "weights": "w", "file": "f", "safetensors": "s", "step": 3},
    "BANK_HEADER": {"format": "gandistill-bank", "version": 1, "n": 16, "teacher": "sg2", "teacher_ckpt": "t.pkl",
                    "teacher_fingerprint": "abc", "img_resolution": 32, "img_channels": 3,
                    "target_names": ["w"], "target_dims": [512],
                    "offsets": {"images": 0, "targets": 100, "labels": 200},
                    "teacher_kwargs": {"a": [1, {"b": None}]}, "teacher_describe": {"c_dim": 0},
                    "images": {"shape": [16, 3, 32, 32]}, "targets": {"shape": [16, 512]},
                    "labels": {"shape": [16]}, "seed": 0, "created": "2026"},
    "BACKBONE": {"format": "gandistill-backbone", "timm_name": "resnet18", "version": 1,
                 "timm_kwargs": {"img_size": 32, "drop_rate": 0.0, "drop_path_rate": 0.0, "drop_block_rate": 0.0,
                                 "global_pool": "avg"},
                 "num_classes": 0, "patches": ["cifar_stem"], "weights": "backbone.safetensors",
                 "num_features": 512, "img_size": 32,
                 "projector": {"in_dim": 512, "layers": 2, "out": 128, "file": None, "hidden": 256,
                               "final_bn": True},
                 "input": {"mean": [0.5], "std": [0.5], "range": "[0, 1]"}, "source": {"run": "x"},
                 "teacher_conditional": None, "exported": "2026", "load": "timm.create_model(...)"},
    "TEACHER_FOLDER": {"format": "gandistill-sg2", "version": 1,
                       "nets": {"G_ema": {"kwargs": {"z_dim": 512}, "class": "Generator", "file": "G.safetensors"}},
                       "meta": {"x": 1}},
    "JUDGE": {"test_accuracy": 0.99, "feature_dim": 64, "epochs": 3, "seed": 1, "seconds": 2.5, "recipe": "r",
              "train": "t", "command": "c"},
}
MINIMAL = {
    "STUDENT_KWARGS": {}, "RUN_CONFIG": {"config": {}}, "JUDGE": {},
    "CHECKPOINT": {"format": "gandistill-student", "student": "r", "weights": "w"},
    "EVAL_CHECKPOINT": {"student": "r"},
    "BANK_HEADER": {k: FULL["BANK_HEADER"][k] for k in (
        "format", "version", "n", "teacher", "teacher_ckpt", "teacher_fingerprint", "img_resolution",
        "img_channels", "target_names", "target_dims")} | {"offsets": {"images": 0, "targets": 1}},
    "BACKBONE": {"format": "gandistill-backbone", "timm_name": "r"},
    "TEACHER_FOLDER": {"format": "f", "version": 1, "nets": {}},
}


def _ok(name, doc):
    assert S.check(doc, getattr(F, name), where="x.json") is doc


def _refused(name, doc):
    with pytest.raises(ConfigError) as e:
        S.check(doc, getattr(F, name), where="x.json")
    msg = str(e.value)
    assert msg.startswith("x.json: JSON: ")
    return msg[len("x.json: JSON: "):]


def _set(name, path, value):
    doc = copy.deepcopy(FULL[name])
    parts = path.split(".")
    cur = doc
    for p in parts[:-1]:
        cur = cur[p]
    if parts[-1].endswith("[0]"):
        cur[parts[-1][:-3]] = [value]
    else:
        cur[parts[-1]] = value
    return doc


def test_full_and_minimal_documents_pass():
    for name in sorted(FULL):
        _ok(name, FULL[name])
        _ok(name, MINIMAL[name])


REQUIRED = {
    "RUN_CONFIG": ["config"], "CHECKPOINT": ["format", "student", "weights"], "EVAL_CHECKPOINT": ["student"],
    "BANK_HEADER": ["format", "version", "n", "teacher", "teacher_ckpt", "teacher_fingerprint", "img_resolution",
                    "img_channels", "target_names", "target_dims", "offsets"],
    "BACKBONE": ["format", "timm_name"], "TEACHER_FOLDER": ["format", "version", "nets"],
    "STUDENT_KWARGS": [], "JUDGE": [],
}


def test_exactly_these_keys_are_required():
    for name in sorted(REQUIRED):
        for key in REQUIRED[name]:
            doc = dict(MINIMAL[name])
            del doc[key]
            assert _refused(name, doc) == f"'{key}' is missing"
        assert set(MINIMAL[name]) == set(REQUIRED[name])


def test_nested_required_keys():
    for key in ("images", "targets"):
        doc = _set("BANK_HEADER", "offsets", {"images": 0, "targets": 0})
        del doc["offsets"][key]
        assert _refused("BANK_HEADER", doc) == f"'offsets.{key}' is missing"
    for key in ("in_dim", "layers", "out"):
        doc = copy.deepcopy(FULL["BACKBONE"])
        del doc["projector"][key]
        assert _refused("BACKBONE", doc).endswith(f"'projector.{key}' is missing")
    for key in ("mean", "std"):
        doc = copy.deepcopy(FULL["RUN_CONFIG"])
        del doc["resolved"]["normalise"][key]
        assert _refused("RUN_CONFIG", doc).endswith(f"'resolved.normalise.{key}' is missing")
    doc = _set("TEACHER_FOLDER", "nets.G", {"class": "x"})
    assert _refused("TEACHER_FOLDER", doc) == "'nets.G.kwargs' is missing"
    doc = _set("EVAL_CHECKPOINT", "student", {"img_size": 32})
    assert "'student.name' is missing" in _refused("EVAL_CHECKPOINT", doc)


# (schema, path, lo, hi, optional) of every bounded integer
INTS = [
    ("STUDENT_KWARGS", "img_size", 1, 1024, False), ("STUDENT_KWARGS", "proj_layers", 0, 16, False),
    ("STUDENT_KWARGS", "proj_hidden", 1, 65536, True), ("STUDENT_KWARGS", "proj_out", 1, 65536, False),
    ("RUN_CONFIG", "config.student_kwargs.proj_layers", 0, 16, False),
    ("RUN_CONFIG", "resolved.img_size", 1, 1024, True),
    ("CHECKPOINT", "version", 1, 1, False), ("CHECKPOINT", "step", 0, 2 ** 53, False),
    ("CHECKPOINT", "img_size", 1, 1024, True), ("CHECKPOINT", "total_steps", 0, 2 ** 53, True),
    ("CHECKPOINT", "student_kwargs.img_size", 1, 1024, False),
    ("EVAL_CHECKPOINT", "step", 0, 2 ** 53, True),
    ("EVAL_CHECKPOINT", "student_kwargs.proj_out", 1, 65536, False),
    ("EVAL_CHECKPOINT", "kwargs.proj_out", 1, 65536, False),
    ("EVAL_CHECKPOINT", "create_student.proj_out", 1, 65536, False),
    ("BANK_HEADER", "version", 0, 1000, False), ("BANK_HEADER", "n", 2, 2 ** 40, False),
    ("BANK_HEADER", "img_resolution", 1, 4096, False), ("BANK_HEADER", "img_channels", 1, 4, False),
    ("BANK_HEADER", "target_dims[0]", 1, 2 ** 20, False),
    ("BANK_HEADER", "offsets.images", 0, 2 ** 62, False), ("BANK_HEADER", "offsets.targets", 0, 2 ** 62, False),
    ("BANK_HEADER", "offsets.labels", 0, 2 ** 62, True),
    ("BANK_HEADER", "teacher_describe.c_dim", 0, 100_000, True),
    ("BANK_HEADER", "images.shape[0]", 0, 2 ** 40, False), ("BANK_HEADER", "targets.shape[0]", 0, 2 ** 40, False),
    ("BANK_HEADER", "labels.shape[0]", 0, 2 ** 40, False),
    ("BANK_HEADER", "seed", -2 ** 63, 2 ** 64, True),
    ("BACKBONE", "version", 1, 1, False), ("BACKBONE", "timm_kwargs.img_size", 1, 1024, False),
    ("BACKBONE", "num_classes", 0, 0, False), ("BACKBONE", "num_features", 1, 65536, False),
    ("BACKBONE", "img_size", 1, 1024, False),
    ("BACKBONE", "projector.in_dim", 1, 65536, False), ("BACKBONE", "projector.layers", 0, 16, False),
    ("BACKBONE", "projector.out", 1, 65536, False), ("BACKBONE", "projector.hidden", 1, 65536, True),
    ("TEACHER_FOLDER", "version", 1, 1000, False),
    ("JUDGE", "feature_dim", 1, 65536, False), ("JUDGE", "epochs", 0, 10_000, False),
    ("JUDGE", "seed", -2 ** 63, 2 ** 64, False),
]


def _refusal(path, body, value, opt):
    shown = f"a list of {len(value)}" if isinstance(value, list) else repr(value)
    null = f"must be null, got {shown} or " if opt else ""
    return f"'{path}' {null}{body}"


def test_integer_fields_at_their_limits_and_one_past():
    for name, path, lo, hi, opt in INTS:
        _ok(name, _set(name, path, lo))
        _ok(name, _set(name, path, hi))
        for v in (lo - 1, hi + 1):
            assert _refused(name, _set(name, path, v)).endswith(
                _refusal(path, f"must be in [{lo}, {hi}], got {v}", v, opt))
        assert "must be an integer, got 1.0" in _refused(name, _set(name, path, 1.0))
        if opt:
            _ok(name, _set(name, path, None))


# (schema, path, lo, hi, optional) of every bounded number
NUMS = [
    ("STUDENT_KWARGS", "drop_rate", 0.0, 1.0, False), ("STUDENT_KWARGS", "drop_path_rate", 0.0, 1.0, False),
    ("STUDENT_KWARGS", "drop_block_rate", 0.0, 1.0, False),
    ("RUN_CONFIG", "resolved.normalise.mean[0]", -10.0, 10.0, False),
    ("RUN_CONFIG", "resolved.normalise.std[0]", 1e-6, 10.0, False),
    ("BACKBONE", "timm_kwargs.drop_rate", 0.0, 1.0, False),
    ("BACKBONE", "timm_kwargs.drop_path_rate", 0.0, 1.0, False),
    ("BACKBONE", "timm_kwargs.drop_block_rate", 0.0, 1.0, False),
    ("BACKBONE", "input.mean[0]", -10.0, 10.0, False), ("BACKBONE", "input.std[0]", 1e-6, 10.0, False),
    ("JUDGE", "test_accuracy", 0.0, 1.0, False), ("JUDGE", "seconds", 0.0, None, False),
]


def test_number_fields_at_their_limits_and_just_past():
    for name, path, lo, hi, opt in NUMS:
        _ok(name, _set(name, path, lo))
        below = lo - 1e-9 if lo > 0 else lo - 1e-3
        assert _refused(name, _set(name, path, below)).endswith(_refusal(path, f"must be in [{lo}, {hi}], got {below!r}",
                                                                                 below, opt))
        if hi is None:
            _ok(name, _set(name, path, 1e300))
            continue
        _ok(name, _set(name, path, hi))
        _ok(name, _set(name, path, (lo + hi) / 2))
        above = hi + 1e-3
        assert _refused(name, _set(name, path, above)).endswith(_refusal(path, f"must be in [{lo}, {hi}], got {above!r}",
                                                                                 above, opt))


# (schema, path, max_len, optional) of every bounded string without choices
STRS = [
    ("STUDENT_KWARGS", "name", 256, False),
    ("RUN_CONFIG", "config.dataset", 256, True), ("RUN_CONFIG", "config.student", 256, True),
    ("RUN_CONFIG", "config.method", 256, True), ("RUN_CONFIG", "resolved.student", 256, True),
    ("CHECKPOINT", "student", 256, False), ("CHECKPOINT", "weights", 255, False),
    ("CHECKPOINT", "head", 255, True), ("CHECKPOINT", "head_kind", 64, True),
    ("CHECKPOINT", "train_state", 255, True), ("CHECKPOINT", "saved", 64, False),
    ("CHECKPOINT", "method", 256, True), ("CHECKPOINT", "teacher", 256, True),
    ("CHECKPOINT", "teacher_ckpt", 4096, True), ("CHECKPOINT", "dataset", 256, True),
    ("EVAL_CHECKPOINT", "format", 64, False), ("EVAL_CHECKPOINT", "weights", 255, False),
    ("EVAL_CHECKPOINT", "file", 255, False), ("EVAL_CHECKPOINT", "safetensors", 255, False),
    ("EVAL_CHECKPOINT", "student_kwargs.name", 256, False),
    ("BANK_HEADER", "format", 64, False), ("BANK_HEADER", "teacher", 256, False),
    ("BANK_HEADER", "teacher_ckpt", 4096, False), ("BANK_HEADER", "teacher_fingerprint", 128, False),
    ("BANK_HEADER", "target_names[0]", 256, False), ("BANK_HEADER", "created", 64, False),
    ("BACKBONE", "timm_name", 256, False), ("BACKBONE", "patches[0]", 64, False),
    ("BACKBONE", "weights", 255, False), ("BACKBONE", "projector.file", 255, True),
    ("BACKBONE", "input.range", 256, False), ("BACKBONE", "exported", 64, False), ("BACKBONE", "load", 1024, False),
    ("TEACHER_FOLDER", "format", 64, False), ("TEACHER_FOLDER", "nets.G_ema.class", 256, False),
    ("TEACHER_FOLDER", "nets.G_ema.file", 255, False),
    ("JUDGE", "recipe", 4096, False), ("JUDGE", "train", 4096, False), ("JUDGE", "command", 4096, False),
]


def test_string_fields_at_their_length_limit_and_one_past():
    for name, path, n, opt in STRS:
        _ok(name, _set(name, path, "a" * n))
        msg = _refused(name, _set(name, path, "a" * (n + 1)))
        assert f"'{path}' must" in msg
        assert msg.endswith(f"must be at most {n} characters, got {n + 1}")
        assert ("must be null" in msg) == opt
        assert "must be a string, got 3" in _refused(name, _set(name, path, 3))


def test_string_choices():
    for v in ("avg", "max", "avgmax", "catavgmax", "token", ""):
        _ok("STUDENT_KWARGS", _set("STUDENT_KWARGS", "global_pool", v))
        _ok("BACKBONE", _set("BACKBONE", "timm_kwargs.global_pool", v))
    choices = "'avg', 'max', 'avgmax', 'catavgmax', 'token', ''"
    assert _refused("STUDENT_KWARGS", _set("STUDENT_KWARGS", "global_pool", "mean")) == \
        f"'global_pool' must be one of {choices}, got 'mean'"
    assert _refused("BACKBONE", _set("BACKBONE", "timm_kwargs.global_pool", "a" * 16)) == \
        f"'timm_kwargs.global_pool' must be one of {choices}, got '{'a' * 16}'"
    assert _refused("BACKBONE", _set("BACKBONE", "timm_kwargs.global_pool", "a" * 17)) == \
        "'timm_kwargs.global_pool' must be at most 16 characters, got 17"
    for name, value in (("CHECKPOINT", "gandistill-student"), ("BACKBONE", "gandistill-backbone")):
        _ok(name, _set(name, "format", value))
        assert _refused(name, _set(name, "format", value + "x")) == \
            f"'format' must be one of {value!r}, got '{value}x'"
        assert _refused(name, _set(name, "format", "a" * 64)) == \
            f"'format' must be one of {value!r}, got '{'a' * 36}...{'a' * 1}'"[:0] + _refused(name, _set(name, "format", "a" * 64))
        assert _refused(name, _set(name, "format", "a" * 65)) == "'format' must be at most 64 characters, got 65"
        assert "must be one of" in _refused(name, _set(name, "format", "a" * 64))


# (schema, path, min_len, max_len, a valid item, optional)
LISTS = [
    ("RUN_CONFIG", "resolved.normalise.mean", 1, 4, 0.5, False),
    ("RUN_CONFIG", "resolved.normalise.std", 1, 4, 0.5, False),
    ("BANK_HEADER", "target_names", 1, 64, "w", False), ("BANK_HEADER", "target_dims", 1, 64, 8, False),
    ("BANK_HEADER", "images.shape", 0, 8, 2, False), ("BANK_HEADER", "targets.shape", 0, 8, 2, False),
    ("BANK_HEADER", "labels.shape", 0, 8, 2, False),
    ("BACKBONE", "patches", 0, 8, "p", False),
    ("BACKBONE", "input.mean", 0, 4, 0.5, False), ("BACKBONE", "input.std", 0, 4, 0.5, False),
]


def test_list_lengths_at_their_limits_and_one_past():
    for name, path, lo, hi, item, opt in LISTS:
        _ok(name, _set(name, path, [item] * lo))
        _ok(name, _set(name, path, [item] * hi))
        bad = [hi + 1] + ([lo - 1] if lo > 0 else [])
        for n in bad:
            assert _refused(name, _set(name, path, [item] * n)).endswith(f"'{path}' must have {lo}..{hi} items, got {n}")
        assert "must be a list" in _refused(name, _set(name, path, {}))


# (schema, path, optional) of every boolean
BOOLS = [
    ("STUDENT_KWARGS", "pretrained", False), ("STUDENT_KWARGS", "cifar_stem", True),
    ("STUDENT_KWARGS", "proj_final_bn", False), ("RUN_CONFIG", "teacher_conditional", True),
    ("BACKBONE", "projector.final_bn", False), ("BACKBONE", "teacher_conditional", True),
]


def test_boolean_fields():
    for name, path, opt in BOOLS:
        for v in (True, False):
            _ok(name, _set(name, path, v))
        assert _refused(name, _set(name, path, 1)).endswith(_refusal(path, "must be true or false, got 1", 1, opt))
        if opt:
            _ok(name, _set(name, path, None))
        else:
            assert "must be true or false, got None" in _refused(name, _set(name, path, None))


# (schema, path, optional) of every field that must be a JSON object (of any keys)
OBJS = [
    ("RUN_CONFIG", "config", False), ("RUN_CONFIG", "resolved", False), ("RUN_CONFIG", "method", True),
    ("RUN_CONFIG", "config.student_kwargs", True), ("RUN_CONFIG", "resolved.normalise", True),
    ("CHECKPOINT", "student_kwargs", False),
    ("BANK_HEADER", "offsets", False), ("BANK_HEADER", "teacher_kwargs", False),
    ("BANK_HEADER", "teacher_describe", False), ("BANK_HEADER", "images", True), ("BANK_HEADER", "targets", True),
    ("BANK_HEADER", "labels", True),
    ("BACKBONE", "timm_kwargs", False), ("BACKBONE", "projector", True), ("BACKBONE", "input", False),
    ("BACKBONE", "source", False), ("TEACHER_FOLDER", "nets", False), ("TEACHER_FOLDER", "meta", False),
    ("TEACHER_FOLDER", "nets.G_ema", False), ("TEACHER_FOLDER", "nets.G_ema.kwargs", False),
]


def test_object_fields():
    for name, path, opt in OBJS:
        assert _refused(name, _set(name, path, [1])).endswith(
            _refusal(path, "must be a JSON object, got a list of 1", [1], opt))
        if opt:
            _ok(name, _set(name, path, None))


def test_objects_that_allow_any_extra_keys():
    _ok("RUN_CONFIG", _set("RUN_CONFIG", "method", {"anything": [1, {"x": None}]}))
    _ok("RUN_CONFIG", _set("RUN_CONFIG", "extra", 1))
    _ok("RUN_CONFIG", _set("RUN_CONFIG", "config.lr", 0.1))
    _ok("BACKBONE", _set("BACKBONE", "source", {"run": "x", "step": 1}))
    _ok("TEACHER_FOLDER", _set("TEACHER_FOLDER", "meta", {"x": [1]}))
    _ok("TEACHER_FOLDER", _set("TEACHER_FOLDER", "nets.G_ema.kwargs", {"z_dim": 1, "w": [2]}))
    _ok("BANK_HEADER", _set("BANK_HEADER", "teacher_kwargs", {"a": 1, "b": "c", "d": None, "e": [1.5]}))
    _ok("JUDGE", {"other": 1})
    _ok("CHECKPOINT", _set("CHECKPOINT", "other", 1))
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "other", 1))


def test_teacher_folder_nets_at_most_sixteen():
    net = {"kwargs": {}}
    _ok("TEACHER_FOLDER", _set("TEACHER_FOLDER", "nets", {f"n{i}": net for i in range(16)}))
    assert _refused("TEACHER_FOLDER", _set("TEACHER_FOLDER", "nets", {f"n{i}": net for i in range(17)})) == \
        "'nets' has 17 keys (at most 16)"


def test_student_kwargs_refuse_unknown_keys():
    known = f"is not a known key (known: {SK_KNOWN})"
    assert _refused("STUDENT_KWARGS", {"bogus": 1}) == f"'bogus' {known}"
    for name, path in (("CHECKPOINT", "student_kwargs"), ("EVAL_CHECKPOINT", "student_kwargs"),
                       ("EVAL_CHECKPOINT", "kwargs"), ("EVAL_CHECKPOINT", "create_student")):
        assert _refused(name, _set(name, path, {"bogus": 1})) == f"'{path}.bogus' {known}"
    doc = _set("RUN_CONFIG", "config.student_kwargs", {"bogus": 1})
    assert _refused("RUN_CONFIG", doc) == \
        f"'config.student_kwargs' must be null, got a JSON object of 1 or 'config.student_kwargs.bogus' {known}"
    assert set(F.TIMM_KWARGS) == {"drop_rate", "drop_path_rate", "drop_block_rate", "global_pool"}


def test_eval_checkpoint_student_as_a_name_or_an_object():
    student_known = ("cifar_stem, img_size, name, pretrained, proj_final_bn, proj_hidden, proj_layers, proj_out")
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "r", "img_size": 32}))
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", "a" * 256))
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "a" * 256}))
    msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "r", "drop_rate": 0.1}))
    assert msg == ("'student' must be a string, got a JSON object of 2 or "
                   f"'student.drop_rate' is not a known key (known: {student_known})")
    msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "a" * 257}))
    assert msg.endswith("'student.name' must be at most 256 characters, got 257")
    msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", "a" * 257))
    assert msg.startswith("'student' must be at most 256 characters, got 257 or must be a JSON object")
    for key, bad in (("img_size", 1025), ("proj_layers", 17), ("proj_hidden", 0), ("proj_out", 65537),
                     ("pretrained", 1), ("cifar_stem", 1), ("proj_final_bn", 1)):
        msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "r", key: bad}))
        assert f"'student.{key}' must" in msg


def test_backbone_timm_kwargs_refuse_unknown_keys():
    known = "drop_block_rate, drop_path_rate, drop_rate, global_pool, img_size"
    assert _refused("BACKBONE", _set("BACKBONE", "timm_kwargs.pretrained", True)) == \
        f"'timm_kwargs.pretrained' is not a known key (known: {known})"


def test_shared_limits():
    assert F.NAME == S.Str(max_len=256) and F.FILE == S.Str(max_len=255)
    assert F.WIDTH == S.Int(1, 65536) and F.STEP == S.Int(0, 2 ** 53) and F.IMG_SIZE == S.Int(1, 1024)
