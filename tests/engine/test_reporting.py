"""Job reports: every figure of a real (tiny) job renders to PNG and SVG; report.md links them."""

from __future__ import annotations

import io
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from grait_engine.reporting.data import config_differences, flatten, load_job
from grait_engine.reporting.files import write_plots
from grait_engine.reporting.plots import FIGURES, NOT_AVAILABLE, job_figures, plane_figure
from grait_engine.reporting.render import PNG_MAGIC, png_bytes, svg_text
from tests.tiny_jobs import GRAIT_16, tiny_job


@pytest.fixture(scope="module")
def job_dir(tiny_world: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished grait job folder (run once for this module)."""
    from grait_engine.pipeline.config import load_job_config
    from grait_engine.pipeline.run import run_job

    root = tmp_path_factory.mktemp("reporting")
    run_job(
        load_job_config(tiny_job(tiny_world, {**GRAIT_16, "weighting": "adaptive"})),
        root / "job",
        root / "cache",
    )
    return root / "job"


def _check_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.width > 200 and image.height > 100
        return image.size


def _check_svg(text: str) -> None:
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 20  # more than an empty canvas


def _texts(fig: Any) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_every_figure_renders_as_png_and_svg(job_dir: Path) -> None:
    job = load_job(job_dir)
    assert job.selection is not None and len(job.idk_items) == 16
    assert set(job.metrics) == {"train/loss", "train/lr"} and job.tau is not None
    assert len(job.correctness) == job.report["split"]["n_pool"]
    names = set()
    for name, fig in job_figures([job]).items():
        assert _texts(fig).count(NOT_AVAILABLE) == 0, name
        _check_png(png_bytes(fig))
        assert fig.axes == []  # rendering clears the figure
        names.add(name)
    for fig in job_figures([job]).values():
        _check_svg(svg_text(fig))
    assert names == set(FIGURES)


def test_figures_overlay_several_jobs(job_dir: Path) -> None:
    jobs = [load_job(job_dir, label="a"), load_job(job_dir, label="b")]
    figures = job_figures(jobs)
    legend = figures["curves"].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    n_sets = len(jobs[0].report["eval"])
    # one dashed THS = 0 line per job and test set
    assert len(figures["plane"].axes[0].get_lines()) == 2 * n_sets
    for fig in figures.values():
        _check_png(png_bytes(fig))


def test_ths_zero_line_goes_through_the_base_point() -> None:
    """THS = Pc - Pw * Pc0 / Pw0 is the height above the dashed line (METHOD.md)."""
    block = {
        "init_basic": {"pc": 50.0, "pw": 50.0},
        "init_refuse": {"pc": 40.0, "pw": 30.0, "ths": 10.0},
        "tuned": {"pc": 30.0, "pw": 15.0, "ths": 15.0},
    }
    fig = plane_figure({"job": {"id": block}})
    (line,) = fig.axes[0].get_lines()
    xs, ys = line.get_data()
    assert (xs[0], ys[0]) == (0, 0) and ys[-1] / xs[-1] == pytest.approx(50.0 / 50.0)
    tuned = block["tuned"]
    assert tuned["pc"] - tuned["pw"] * ys[-1] / xs[-1] == pytest.approx(tuned["ths"])
    assert "THS 15.0" in _texts(fig)


def test_report_md_links_existing_pngs(job_dir: Path) -> None:
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (job_dir / "report.md").read_text())
    assert sorted(links) == sorted(f"plots/{name}.png" for name in FIGURES)
    for link in links:
        assert not Path(link).is_absolute()
        _check_png((job_dir / link).read_bytes())


def test_missing_selection_and_metrics_are_handled(job_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "job"
    shutil.copytree(job_dir, copy)
    (copy / "selection.json").unlink()
    (copy / "metrics.jsonl").unlink()
    shutil.rmtree(copy / "plots")
    job = load_job(copy)
    assert job.selection is None and job.idk_items == [] and job.metrics == {}
    figures = job_figures([job])
    assert NOT_AVAILABLE in _texts(figures["weights"])
    assert "no training curves recorded" in _texts(figures["curves"])
    written = write_plots(copy)
    assert set(written) == set(FIGURES)
    for path in written.values():
        _check_png((copy / path).read_bytes())


def test_load_job_needs_a_report(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_job(tmp_path)


def test_config_differences_use_flattened_keys() -> None:
    a = {"method": {"type": "grait", "n_ik": 16}, "seed": 0, "tags": [1]}
    b = {"method": {"type": "cor_rait", "n_ik": 16}, "seed": 0, "extra": {"x": 1}}
    assert flatten(a) == {"method.type": "grait", "method.n_ik": 16, "seed": 0, "tags": [1]}
    assert config_differences([a, b]) == [
        ("extra.x", [None, 1]),
        ("method.type", ["grait", "cor_rait"]),
        ("tags", [[1], None]),
    ]
    assert config_differences([a, dict(a)]) == []
