"""What each table row trains, stated independently (issue 15 item 5: a Table 5 row's loss weights survived).

The recipes below are typed from SnS's scripts as docs/reference (§1.6, "Table 5 ablations") describes
them, not read from gandistill.methods, so a wrong weight in the table data is caught even when the
method registry agrees with it.
"""
from __future__ import annotations

import pytest

from gandistill.compare.tables import RUNS, RunSpec, get_table, run_of, select_rows

# row -> (teacher, (lambda, mu, nu), alpha = synthetic share, squeeze depth, augmentation)
TABLE5_RECIPES = {
    "a": ("sg2-generator", (1.0, 0.0, 0.0), 1.0, 0, False),     # plain MSE, no augmentation
    "b": ("sg2-generator", (1.0, 0.0, 0.0), 1.0, 0, True),      # + augmentation (vanilla distillation)
    "c": ("sg2-generator", (1.0, 0.0, 0.0), 1.0, 3, True),      # + T_phi, no var/cov: collapses
    "d": ("sg2-generator", (25.0, 25.0, 0.0), 1.0, 3, True),    # + var, 25/25/0
    "e": ("sg2-generator", (25.0, 25.0, 1.0), 1.0, 3, True),    # + cov = Squeeze, 25/25/1
    "f": ("sg2-generator", (25.0, 25.0, 1.0), 0.5, 3, True),    # + Span (syn_ratio 0.5)
}

TABLE1_RECIPES = {   # the distillation rows: (teacher, weights, alpha, depth)
    "w-vanilla": ("sg2-latent", (1.0, 0.0, 0.0), 1.0, 0),
    "w-squeeze": ("sg2-latent", (25.0, 25.0, 1.0), 1.0, 3),
    "w-sns": ("sg2-latent", (25.0, 25.0, 1.0), 0.5, 3),
    "g-vanilla": ("sg2-generator", (1.0, 0.0, 0.0), 1.0, 0),
    "g-squeeze": ("sg2-generator", (25.0, 25.0, 1.0), 1.0, 3),
    "g-sns": ("sg2-generator", (25.0, 25.0, 1.0), 0.5, 3),
    "enc-syn": ("sg2-encoder", (1.0, 0.0, 0.0), 1.0, None),
    "enc-mixed": ("sg2-encoder", (1.0, 0.0, 0.0), 0.5, None),
}


@pytest.mark.parametrize("key", sorted(TABLE5_RECIPES))
def test_table5_row_trains_its_recipe(key):
    teacher, weights, alpha, depth, augment = TABLE5_RECIPES[key]
    run = run_of(get_table(5).row(key))
    assert (run.teacher, run.weights, run.alpha, run.squeeze_depth, run.augment) == \
        (teacher, weights, alpha, depth, augment)
    assert run.kind == "train" and run.budget == 1.0
    assert run.domain == ("syn" if alpha == 1.0 else "syn+real")


@pytest.mark.parametrize("key", sorted(TABLE1_RECIPES))
def test_table1_distillation_rows_train_their_recipe(key):
    teacher, weights, alpha, depth = TABLE1_RECIPES[key]
    run = run_of(get_table(1).row(key))
    assert (run.teacher, run.weights, run.alpha, run.squeeze_depth) == (teacher, weights, alpha, depth)


def test_table1_d_rows_are_frozen_probes_and_ssl_rows_their_baselines():
    for key, mode in (("d-single", "single"), ("d-multi", "multi")):
        run = run_of(get_table(1).row(key))
        assert (run.kind, run.teacher, run.teacher_kwargs, run.budget, run.augment) == \
            ("probe-d", "sg2-discriminator", {"mode": mode}, 0.0, False)
    t2 = get_table(2)
    for key, (weights, alpha, teacher) in {
        "real-vicreg": ((25.0, 25.0, 1.0), 0.0, None), "syn-vicreg": ((25.0, 25.0, 1.0), 1.0, "sg2-generator"),
        "mixed-vicreg": ((25.0, 25.0, 1.0), 0.5, "sg2-generator"), "real-simsiam": (None, 0.0, None),
        "syn-simsiam": (None, 1.0, "sg2-generator"), "mixed-simsiam": (None, 0.5, "sg2-generator"),
    }.items():
        run = run_of(t2.row(key))
        assert (run.weights, run.alpha, run.teacher) == (weights, alpha, teacher), key


def test_every_run_is_in_a_table_and_ids_are_their_keys():
    used = {r.run for n in (1, 2, 5, 6) for r in get_table(n).rows}
    assert used == set(RUNS)
    assert all(k == v.id for k, v in RUNS.items())


def test_runspec_refuses_unknown_domain_and_kind():
    RunSpec("ok", "vanilla", None, "real")                       # defaults are valid
    assert RunSpec("ok", "vanilla", None, "syn").kind == "train"
    with pytest.raises(ValueError, match=r"run x: domain must be one of \('syn', 'real', 'syn\+real'\), got 'web'"):
        RunSpec("x", "vanilla", None, "web")
    with pytest.raises(ValueError, match=r"run y: kind must be one of \('train', 'probe-d'\), got 'eval'"):
        RunSpec("y", "vanilla", None, "syn", kind="eval")


def test_lookup_errors_name_what_exists():
    t5 = get_table(5)
    with pytest.raises(KeyError) as e:
        t5.row("z")
    assert e.value.args[0] == "table 5 has no row 'z'; rows: a, b, c, d, e, f"
    with pytest.raises(KeyError) as e:
        select_rows(t5, "a, z")
    assert e.value.args[0] == "table 5 has no row(s) ['z']; rows: a, b, c, d, e, f"
    with pytest.raises(KeyError) as e:
        get_table(3)
    assert e.value.args[0] == ("no table 3; the paper's tables here are [1, 2, 5, 6] "
                               "(Tables 3 and 4 are ImageNet transfer results, not reproduced)")
    assert [r.key for r in select_rows(t5, " f ,b,")] == ["b", "f"]
    assert [r.key for r in select_rows(t5, None)] == list("abcdef")
    assert get_table("6").number == 6


def test_paper_columns_are_the_five_datasets():
    for n in (1, 2, 5, 6):
        for row in get_table(n).rows:
            assert set(row.paper) == {"cifar10", "cifar100", "stl10", "imagenet100", "imagenet"}


def test_specs_are_frozen():
    import dataclasses

    run = RUNS["g-sns"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.weights = (1.0, 0.0, 0.0)                       # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_table(5).row("d").run = "g-squeeze"             # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_table(5).metric = "mmd2"                        # type: ignore[misc]


def test_metrics_of_the_tables():
    from gandistill.compare.tables import METRICS, TableSpec

    assert [get_table(n).metric for n in (1, 2, 5, 6)] == ["top1", "top1", "top1", "mmd2"]
    assert all(get_table(n).metric in METRICS for n in (1, 2, 5, 6))
    assert TableSpec(9, "t", ("cifar10",), ()).metric == "top1"      # the default metric
    assert get_table(1).units == {} and get_table(6).units["stl10"] == 1e-3
