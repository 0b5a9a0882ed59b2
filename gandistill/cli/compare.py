"""``gandistill compare --table N`` / ``--figure 4``: the paper's rows by one command."""
from __future__ import annotations

import shlex
import sys
from typing import Any, Dict, List, Literal, Optional

import typer

from gandistill.cli.console import console, say
from gandistill.cli.options import Flag, Logger, given, logger_names, print_config, with_field_flags
from gandistill.compare import report
from gandistill.compare.figure4 import Figure4Config, figure4, print_figure4
from gandistill.compare.presets import PRESETS, describe_plan, get_preset
from gandistill.compare.runner import CompareConfig, compare, plans_for
from gandistill.compare.tables import get_table, select_rows
from gandistill.io.config_file import merge_config
from gandistill.teachers.conditioning import conditional_warning


def print_dry_run(table_no: int, preset_name: str, rows: Optional[str], budget: float, lpips: Optional[str],
                  echo=say) -> None:
    """Each row's resolved settings as ``key = value`` lines (diffable against SnS's scripts)."""
    table, preset = get_table(table_no), get_preset(preset_name)
    cfg = CompareConfig(table=table_no, preset=preset_name, rows=rows, budget=budget, lpips_weights=lpips)
    sel = select_rows(table, rows)
    plans = plans_for(table, cfg, sel)
    echo(f"# Table {table.number}: {table.title}")
    echo(f"# preset {preset.name}: {preset.help}; budget x{budget:g}")
    for n in preset.notes:
        echo(f"# note: {n}")
    for row in sel:
        plan = plans[row.key]
        paper = row.paper.get(preset.paper_column)
        echo("")
        echo(f"[{row.key}] {row.group} | {row.label}  (run {row.run}; paper {preset.paper_column}: "
             f"{'-' if paper is None else f'{paper:.2f}'})")
        desc = describe_plan(plan, preset)
        if table.metric == "mmd2":
            desc["probe"] = (f"MMD^2 (unbiased, Gaussian kernel, sigma = median pairwise distance) between the "
                             f"backbone features of {preset.mmd_samples} synthetic and {preset.mmd_samples} real "
                             "training images")
        for k, v in desc.items():
            if k == "notes":
                for note in v:
                    echo(f"  note: {note}")
            else:
                echo(f"  {k} = {v}")


COMPARE_FLAGS: Dict[str, Flag] = {
    "table": Flag("paper table: 1, 2, 5 or 6 (or --figure 4)", type=Literal[1, 2, 5, 6]),
    "preset": Flag("digits (embedded, CPU) | cifar10 | cifar100 | stl10 (SnS's settings)",
                   type=Literal[tuple(PRESETS)]),
    "teacher_ckpt": Flag("teacher checkpoint (default: the bundled digits one)"),
    "data_root": Flag("dataset root (torchvision layout)"),
    "budget": Flag("fraction of the preset's training length (epochs or steps)"),
    "rows": Flag("comma list of row keys (default: all)"),
    "out": Flag("comparison folder (default runs/compare-<preset>); resumes"),
    "device": Flag("auto | cpu | cuda"),
    "seed": Flag("random seed"),
    "lpips_weights": Flag("LPIPS-alex weights for the encoder rows (the paper's loss): one file with lpips' "
                          "alex.pth and the torchvision AlexNet; make it with `python -m gandistill.losses.lpips "
                          "ALEX.pth ALEXNET.pth OUT`"),
    "probe_epochs": Flag("override the probe's epochs (quick looks)"),
    "probe_max_train": Flag("probe on the first N training images only"),
    "probe_max_test": Flag("probe on the first N test images only"),
    "mmd_samples": Flag("Table 6: images per domain (default: the preset's)"),
    "baselines": Flag("suite presets: also probe raw pixels and a random-init student"),
    "logger": Flag("every training also logs to TensorBoard / W&B (repeatable; optional extras)",
                   type=List[Logger], field="loggers"),
}
COMPARE_FLAGS_FIELDS = {name: (f.field or name) for name, f in COMPARE_FLAGS.items()}


@with_field_flags(CompareConfig, COMPARE_FLAGS)
def compare_cmd(
    ctx: typer.Context,
    figure: Optional[Literal[4]] = typer.Option(None, "--figure", help="paper figure: 4 (top-1 vs teacher quality)"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML / JSON file of CompareConfig fields; "
                                         "flags given here override it"),
    print_cfg: bool = typer.Option(False, "--print-config", help="print the complete config as commented YAML"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print every row's resolved settings and exit"),
    gan_run: Optional[str] = typer.Option(None, help="--figure 4: a `gandistill gan train` folder with snapshots"),
    snapshots: Optional[str] = typer.Option(None, help="--figure 4: comma list of snapshot folders (or a folder of "
                                            "snapshot-* folders: all of them) instead"),
    seeds: Optional[str] = typer.Option(None, help="--figure 4: comma list of seeds for error bars (e.g. 0,1,2; "
                                        "default: --seed)"),
    inception: Optional[str] = typer.Option(None, help="--figure 4: Inception weights file for FID (else the "
                                            "offline digits judge)"),
    **flags: Any,
) -> None:
    """Run the paper's table rows (or Fig. 4) and print ours beside the paper's numbers.

    Writes tableN.csv / tableN.md / tableN.png and one run folder per training under --out;
    rows already finished there are skipped, so an interrupted comparison resumes.
    """
    flags["logger"] = logger_names(flags.get("logger"))
    values = merge_config(CompareConfig, config, given(flags, CompareConfig, COMPARE_FLAGS_FIELDS))
    cfg = CompareConfig(**values)
    if print_cfg:
        print_config(CompareConfig, values, ctx.command, "gandistill compare config (gandistill compare --config FILE)",
                     COMPARE_FLAGS_FIELDS)
        return
    if ("table" in values) == (figure is not None):
        raise ValueError("pass exactly one of --table N (1, 2, 5, 6) or --figure 4")
    command = "gandistill " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if figure is not None:
        fcfg = Figure4Config(preset=cfg.preset, gan_run=gan_run, snapshots=snapshots, data_root=cfg.data_root,
                             budget=cfg.budget, out=cfg.out, dry_run=dry_run, device=cfg.device, seed=cfg.seed,
                             inception=inception, probe_epochs=cfg.probe_epochs,
                             seeds=[int(x) for x in seeds.split(",") if x.strip()] if seeds else None,
                             probe_max_train=cfg.probe_max_train, probe_max_test=cfg.probe_max_test)
        print_figure4(figure4(fcfg, log=say), console, command)
        return
    if dry_run:
        cond = conditional_warning("sg2-generator", cfg.teacher_ckpt)
        if cond is not None:
            say(f"warning: {cond['message']}")
        print_dry_run(cfg.table, cfg.preset, cfg.rows, cfg.budget, cfg.lpips_weights)
        return
    res = compare(cfg, log=say)
    report.print_rich(res, console)
    files = report.write_all(res, command)
    png = files["png"] or f"no PNG: {files['png_backend']}"
    say(f"wrote {files['csv']}, {files['md']}, {png}; "
        f"wall time {res.wall_s / 60:.1f} min")


def register(app: typer.Typer) -> None:
    """Add ``compare``."""
    app.command("compare")(compare_cmd)
