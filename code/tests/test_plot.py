"""plot: curves of real runs as PNG, PDF and SVG, the figure's lines and bands, and every refusal.

Usage: python3 -m pytest code/tests/test_plot.py -q
"""
import csv
import math
import os
import subprocess

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from test_frames import four_runs, write_metrics
from test_statistic import make_run

from conftest import CODE, in_project, tree
from utils.exper import main as exper
from utils.statistic import complete, plot


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return four_runs(tmp_path_factory)  # the same four runs as test_frames.py's, made once


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPER_ROOT", str(tmp_path))
    return tmp_path


def csv_values(project, tag, id_, metric, x="step"):
    """{x: value} of a metric in a run's metrics.csv."""
    with open(project / "__result__" / tag / str(id_) / "metrics.csv", newline="") as f:
        return {int(r[x]): float(r[metric]) for r in csv.DictReader(f) if r[metric] != ""}


def band_edges(collection, xs):
    """The band's lowest and highest y at each x."""
    vertices = np.concatenate([path.vertices for path in collection.get_paths()])
    low = [vertices[np.isclose(vertices[:, 0], x), 1].min() for x in xs]
    high = [vertices[np.isclose(vertices[:, 0], x), 1].max() for x in xs]
    return np.array(low), np.array(high)


def labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


# --- real runs ------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_tags_of_two_seeds_mean_and_std_band(real):
    figure = plot.build(["val/mse", "train/mse_step", "a", "b"], root=real).figure
    assert len(figure.axes) == 2
    for ax, metric in zip(figure.axes, ["val/mse", "train/mse_step"], strict=True):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", metric)
        assert labels(ax) == ["a (n=2)", "b (n=2)"]
        assert len(ax.lines) == 2 and len(ax.collections) == 2
        for line, band, tag in zip(ax.lines, ax.collections, ["a", "b"], strict=True):
            runs = [csv_values(real, tag, i, metric) for i in (0, 1)]
            steps = sorted(runs[0])
            assert steps == sorted(runs[1])
            values = np.array([[r[s] for s in steps] for r in runs])
            mean, std = values.mean(axis=0), values.std(axis=0, ddof=1)
            assert list(line.get_xdata()) == steps
            assert np.allclose(line.get_ydata(), mean, rtol=0, atol=1e-12)
            low, high = band_edges(band, steps)
            assert np.allclose(low, mean - std, atol=1e-12) and np.allclose(high, mean + std, atol=1e-12)
            assert to_rgb(line.get_color()) == tuple(band.get_facecolor()[0][:3])  # the band in the line's color
    assert figure.axes[0].lines[0].get_color() != figure.axes[0].lines[1].get_color()


@pytest.mark.slow
def test_the_command_writes_a_png_pdf_and_svg_without_a_display(real):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"  # an interactive backend the command must not need
    (real / "notes").mkdir(exist_ok=True)
    script = in_project(real, "plot val/mse train/mse_step a b && plot 'val/m*' -o fig.pdf --band sem && "
                              "plot val/mse b/0 a --x epoch -o fig.svg", cwd=real / "notes")
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False, timeout=300)
    font_cache = "Matplotlib is building the font cache"  # once per machine, on its first import
    assert done.returncode == 0 and all(font_cache in line for line in done.stderr.splitlines()), done.stderr
    png = "__statistic__/plot/val-mse+train-mse_step__a+b.png"
    assert done.stdout.splitlines() == [png, "fig.pdf", "fig.svg"]
    figure = plot.build(["val/mse", "train/mse_step", "a", "b"], root=real).figure
    width, height = figure.get_size_inches() * plot.DPI
    with Image.open(real / png) as image:
        assert image.format == "PNG" and image.size == (round(width), round(height)) == (1560, 540)
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colors) > 50  # lines, bands, text: not a blank canvas
    pdf = (real / "notes" / "fig.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and len(pdf) > 5000
    svg = (real / "notes" / "fig.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg


@pytest.mark.slow
def test_epochs_on_x_single_runs_alone_and_globs(real):
    built = plot.build(["val/mse*", "b/1", "a", "--x", "epoch", "--band", "minmax"], root=real)
    assert [ax.get_ylabel() for ax in built.figure.axes] == ["val/mse", "val/mse_best"]
    ax = built.figure.axes[0]
    assert labels(ax) == ["b/1", "a (n=2)"] and ax.get_xlabel() == "epoch"
    alone, mean = ax.lines
    assert list(alone.get_xdata()) == [1, 2]
    assert list(alone.get_ydata()) == [v for _, v in sorted(csv_values(real, "b", 1, "val/mse", "epoch").items())]
    assert len(ax.collections) == 1  # the tag's band only
    values = np.array([[v for _, v in sorted(csv_values(real, "a", i, "val/mse", "epoch").items())] for i in (0, 1)])
    low, high = band_edges(ax.collections[0], [1, 2])
    assert np.allclose(low, values.min(axis=0)) and np.allclose(high, values.max(axis=0))
    assert built.runs == [("b", 1), ("a", 0), ("a", 1)]


# --- synthetic runs: alignment and bands ------------------------------------------------------

def three_seeds(root):
    """s/0 and s/1 reach step 15, s/2 stops at 10; u/0 is one run; w/0 and w/1 log at other steps."""
    rows = {0: [(5, 1.0), (10, 2.0), (15, 4.0)], 1: [(5, 2.0), (10, 4.0), (15, 6.0)], 2: [(5, 3.0), (10, 9.0)]}
    for id_, points in rows.items():
        make_run(root, "s", id_)
        write_metrics(root, "s", id_, "epoch,step,loss_step\n" + "".join(f"0,{s},{v}\n" for s, v in points))
    make_run(root, "u", 0)
    write_metrics(root, "u", 0, "epoch,step,loss_step\n0,5,7.0\n0,10,8.0\n")
    for id_, steps in ((0, (5, 15)), (1, (10, 15))):
        make_run(root, "w", id_)
        write_metrics(root, "w", id_, "epoch,step,loss_step\n" + "".join(f"0,{s},{s / 10}\n" for s in steps))


@pytest.mark.parametrize("band", ["std", "sem", "minmax", "none"])
def test_runs_that_stop_early_are_aligned_by_step_and_the_band_uses_the_runs_present(root, band):
    three_seeds(root)
    ax = plot.build(["loss_step", "s", "u", "w", "--band", band], root=root).figure.axes[0]
    assert labels(ax) == ["s (n=3, 2 at the end)", "u (n=1)", "w (n=2, 1 at some points)"]
    s, u, w = ax.lines
    assert list(s.get_xdata()) == [5, 10, 15] and list(s.get_ydata()) == [2.0, 5.0, 5.0]
    assert list(u.get_ydata()) == [7.0, 8.0] and list(w.get_xdata()) == [5, 10, 15]
    assert list(w.get_ydata()) == [0.5, 1.0, 1.5]
    if band == "none":
        assert len(ax.collections) == 0
        return
    assert len(ax.collections) == 2  # s and w; u has one run, no band
    low, high = band_edges(ax.collections[0], [5, 10, 15])
    # step 5: 1, 2, 3 (std 1); step 10: 2, 4, 9 (std sqrt(13)); step 15: only 4, 6 (std sqrt(2))
    std = np.array([1.0, math.sqrt(13), math.sqrt(2)])
    width = {"std": std, "sem": std / np.sqrt([3, 3, 2])}.get(band)
    if band == "minmax":
        assert list(low) == [1.0, 2.0, 4.0] and list(high) == [3.0, 9.0, 6.0]
    else:
        assert np.allclose(low, [2, 5, 5] - width) and np.allclose(high, [2, 5, 5] + width)
    w_low, w_high = band_edges(ax.collections[1], [15])  # w has two runs only at step 15
    assert np.allclose([w_low[0], w_high[0]], [1.5, 1.5])


def test_a_list_draws_its_runs_by_tag_and_a_run_without_the_metric_is_named(root, capsys):
    three_seeds(root)
    make_run(root, "v", 0)
    write_metrics(root, "v", 0, "epoch,step,other_step\n0,5,1.0\n")
    lists = root / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    (lists / "paper.txt").write_text("s/2\nu/0\ns/0\nv/0\n")
    ax = plot.build(["loss_step", "-l", "paper"], root=root).figure.axes[0]
    assert labels(ax) == ["s (n=2, 1 at the end)", "u (n=1)"]
    assert capsys.readouterr().err == "warning: v has no value of loss_step in its metrics.csv\n"
    assert [len(a.lines) for a in plot.build(["loss_step"], root=root).figure.axes] == [3]  # every run: s, u, w


# --- refusals: one error line, nothing written -----------------------------------------------

def run_plot(capsys, *argv):
    code = exper(["plot", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "message"), [
    (["nope"], "no metric 'nope' in these runs' metrics.csv; the metrics are: loss_step, train/loss"),
    (["loss_step", "nope"], "'nope' is neither a metric in these runs' metrics.csv nor a tag"),
    (["s"], "'s' is a tag; name the metrics first"),
    (["test/acc", "s"], "no metric 'test/acc'"),  # in statistic.json, but no curve
    (["loss_step", "s/7"], "no run s/7; `expels s` lists its ids"),
    (["loss_step", "s/x"], "no metric 's/x'"),
    (["loss_step", "-l", "paper"], "no list __statistic__/exper-list/paper.txt"),
    (["loss_step", "-l", "a/b"], "'a/b' is not a valid list name"),
    (["loss_step", "-l", "finished"], "no runs in list finished"),
    (["loss_step", "-o", "fig.jpg"], "-o 'fig.jpg': name a .png, .pdf or .svg file"),
    (["loss_step", "-o", "folder.png"], "-o 'folder.png' is a folder"),
    (["loss_step", "--x", "time"], "invalid choice: 'time'"),
    (["loss_step", "--band", "ci"], "invalid choice: 'ci'"),
    (["loss_step", "--bogus"], "--bogus"),
    ([], "the following arguments are required"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(root, capsys, monkeypatch, argv, message):
    three_seeds(root)
    write_metrics(root, "s", 0, "epoch,step,loss_step,train/loss\n0,5,1.0,\n1,10,,0.5\n")
    (root / "__statistic__" / "exper-list").mkdir(parents=True)
    (root / "__statistic__" / "exper-list" / "finished.txt").write_text("# none yet\n")
    (root / "folder.png").mkdir()
    monkeypatch.chdir(root)
    before = tree(root)
    code, out, err = run_plot(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert tree(root) == before and not (root / "fig.jpg").exists()


def test_no_runs_and_runs_without_curves_are_errors(root, capsys):
    code, out, err = run_plot(capsys, "loss_step")
    assert (code, out) == (1, "")
    assert err == "error: no runs in this project; `run <tag>` makes one, `expls` lists them\n"
    make_run(root, "t", 0)
    before = tree(root)
    code, out, err = run_plot(capsys, "loss_step", "t")
    assert (code, out) == (1, "")
    assert err == "error: none of the 1 runs chosen has a metrics.csv row yet (__result__/t/0/metrics.csv is missing)\n"
    assert tree(root) == before


def test_the_command_writes_under_statistic_plot_and_prints_the_path(root, capsys):
    three_seeds(root)
    code, out, err = run_plot(capsys, "loss_step", "s", "u/0")
    assert (code, err) == (0, "") and out == "__statistic__/plot/loss_step__s+u-0.png\n"
    with Image.open(root / "__statistic__" / "plot" / "loss_step__s+u-0.png") as image:
        assert image.size == (round(plot.PANEL[0] * plot.DPI), round(plot.PANEL[1] * plot.DPI))
    assert sorted(p.name for p in (root / "__statistic__" / "plot").iterdir()) == ["loss_step__s+u-0.png"]


def test_help_usage_and_completion(root, capsys):
    with pytest.raises(SystemExit) as e:
        exper(["plot", "-h"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: plot")
    assert exper(["-h"]) == 0 and "\n  plot <metric> " in capsys.readouterr().out
    three_seeds(root)
    (root / "__statistic__" / "exper-list").mkdir(parents=True)
    (root / "__statistic__" / "exper-list" / "paper.txt").write_text("s/0\n")
    assert complete.candidates(1, ["plot", ""]) == []  # the first word is a metric
    assert complete.candidates(2, ["plot", "loss_step", "s"]) == ["s", "s/0", "s/1", "s/2"]
    assert complete.candidates(2, ["plot", "loss_step", ""]) == ["s", "u", "w"]
    assert complete.candidates(3, ["plot", "loss_step", "-l", ""]) == ["paper"]
    assert complete.candidates(3, ["plot", "loss_step", "-o", ""]) == []
    assert complete.candidates(4, ["exper", "plot", "loss_step", "--band", ""]) == []
    assert "plot" in complete.candidates(1, ["exper", "pl"])


def test_source_sh_defines_and_completes_plot():
    script = f'. "{CODE}/source.sh" && type plot && complete -p plot'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert 'exper plot "$@"' in done.stdout and "complete -F _exper_complete_bash plot" in done.stdout
