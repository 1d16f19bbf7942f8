"""The report's figures as PNG files in the job folder: ``out_dir/plots/<name>.png``."""

from __future__ import annotations

from pathlib import Path

from grait_engine.artifacts import atomic_write_bytes
from grait_engine.reporting.data import load_job
from grait_engine.reporting.plots import job_figures
from grait_engine.reporting.render import png_bytes

PLOTS_DIR = "plots"


def write_plots(out_dir: Path) -> dict[str, str]:
    """Draw every figure of the job folder ``out_dir`` and write it as a PNG.

    Needs ``out_dir/report.json`` (raises ``FileNotFoundError`` otherwise). Returns
    ``{figure name: path relative to out_dir}`` (POSIX form, for markdown links).
    Side effect: writes ``out_dir/plots/<name>.png`` atomically, one per figure.
    """
    job = load_job(out_dir)
    plots = out_dir / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, fig in job_figures([job]).items():
        atomic_write_bytes(plots / f"{name}.png", png_bytes(fig))
        written[name] = f"{PLOTS_DIR}/{name}.png"
    return written
