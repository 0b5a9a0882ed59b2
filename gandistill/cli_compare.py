"""``gandistill compare --table N`` / ``--figure 4``: the paper's rows by one command."""
from __future__ import annotations

import shlex
import sys
from typing import Optional

import typer


def print_dry_run(table_no: int, preset_name: str, rows: Optional[str], budget: float, lpips: Optional[str],
                  echo=typer.echo) -> None:
    """Each row's resolved settings as ``key = value`` lines (diffable against SnS's scripts)."""
    from gandistill.compare.presets import describe_plan, get_preset
    from gandistill.compare.runner import CompareConfig, plans_for
    from gandistill.compare.tables import get_table, select_rows

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


def _say(console, s: str) -> None:
    """One progress line as typed; a ``warning: ...`` line (e.g. a conditional teacher) in yellow."""
    if s.startswith("warning: "):
        console.print("[bold yellow]warning:[/bold yellow] ", end="")
        console.print(s[9:], markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(s, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        table: Optional[int] = typer.Option(None, "--table", help="paper table: 1, 2, 5 or 6"),
        figure: Optional[int] = typer.Option(None, "--figure", help="paper figure: 4 (top-1 vs teacher quality)"),
        preset: str = typer.Option("digits", help="digits (embedded, CPU) | cifar10 | cifar100 | stl10 (SnS's settings)"),
        teacher_ckpt: Optional[str] = typer.Option(None, help="teacher checkpoint (default: the bundled digits one)"),
        data_root: Optional[str] = typer.Option(None, help="dataset root (torchvision layout)"),
        budget: float = typer.Option(1.0, help="fraction of the preset's training length (epochs or steps)"),
        rows: Optional[str] = typer.Option(None, help="comma list of row keys (default: all)"),
        out: Optional[str] = typer.Option(None, help="comparison folder (default runs/compare-<preset>); resumes"),
        dry_run: bool = typer.Option(False, "--dry-run", help="print every row's resolved settings and exit"),
        device: str = typer.Option("auto", help="auto | cpu | cuda"),
        seed: int = typer.Option(0),
        lpips_weights: Optional[str] = typer.Option(None, help="LPIPS-alex weights for the encoder rows (the paper's "
                                                    "loss): one file with lpips' alex.pth and the torchvision AlexNet; "
                                                    "make it with `python -m gandistill.losses.lpips ALEX.pth "
                                                    "ALEXNET.pth OUT`"),
        probe_epochs: Optional[int] = typer.Option(None, help="override the probe's epochs (quick looks)"),
        probe_max_train: Optional[int] = typer.Option(None, help="probe on the first N training images only"),
        probe_max_test: Optional[int] = typer.Option(None, help="probe on the first N test images only"),
        mmd_samples: Optional[int] = typer.Option(None, help="Table 6: images per domain (default: the preset's)"),
        gan_run: Optional[str] = typer.Option(None, help="--figure 4: a `gandistill gan train` folder with snapshots"),
        snapshots: Optional[str] = typer.Option(None, help="--figure 4: comma list of snapshot folders (or a folder of "
                                                "snapshot-* folders: all of them) instead"),
        seeds: Optional[str] = typer.Option(None, help="--figure 4: comma list of seeds for error bars (e.g. 0,1,2; "
                                            "default: --seed)"),
        inception: Optional[str] = typer.Option(None, help="--figure 4: Inception weights file for FID (else the "
                                                "offline digits judge)"),
    ) -> None:
        """Run the paper's table rows (or Fig. 4) and print ours beside the paper's numbers.

        Writes tableN.csv / tableN.md / tableN.png and one run folder per training under --out;
        rows already finished there are skipped, so an interrupted comparison resumes.
        """
        from rich.console import Console

        console = Console()
        if (table is None) == (figure is None):
            raise ValueError("pass exactly one of --table N (1, 2, 5, 6) or --figure 4")
        command = "gandistill " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if figure is not None:
            if figure != 4:
                raise ValueError(f"--figure {figure}: only Fig. 4 is a comparison (Fig. 2 is `gandistill plot embed`)")
            from gandistill.compare.figure4 import Figure4Config, figure4, print_figure4

            fcfg = Figure4Config(preset=preset, gan_run=gan_run, snapshots=snapshots, data_root=data_root,
                                 budget=budget, out=out, dry_run=dry_run, device=device, seed=seed, inception=inception,
                                 seeds=[int(x) for x in seeds.split(",") if x.strip()] if seeds else None,
                                 probe_epochs=probe_epochs, probe_max_train=probe_max_train,
                                 probe_max_test=probe_max_test)
            print_figure4(figure4(fcfg, log=console.print), console, command)
            return
        if dry_run:
            from gandistill.teachers.conditioning import conditional_warning

            cond = conditional_warning("sg2-generator", teacher_ckpt)
            if cond is not None:
                _say(console, f"warning: {cond['message']}")
            print_dry_run(table, preset, rows, budget, lpips_weights)
            return
        from gandistill.compare import report
        from gandistill.compare.runner import CompareConfig, compare

        cfg = CompareConfig(table=table, preset=preset, teacher_ckpt=teacher_ckpt, data_root=data_root, budget=budget,
                            rows=rows, out=out, device=device, seed=seed, lpips_weights=lpips_weights,
                            probe_epochs=probe_epochs, probe_max_train=probe_max_train,
                            probe_max_test=probe_max_test, mmd_samples=mmd_samples)
        res = compare(cfg, log=lambda s: _say(console, s))
        report.print_rich(res, console)
        files = report.write_all(res, command)
        console.print(f"wrote {files['csv']}, {files['md']}, {files['png']} (chart drawn with {files['png_backend']}); "
                      f"wall time {res.wall_s / 60:.1f} min")
