"""The views draw a two-level schedule's levels apart (ASCII marks, picture markers, CLI)."""

from __future__ import annotations

import contextlib
import io

from ckpt_transform import Multilevel
from ckpt_transform.cli import main
from ckpt_transform.viz.ascii import LEGEND_DISK, timeline
from ckpt_transform.viz.plot import _geometry, plot_schedule

SCHEME = Multilevel(1, 2, costs={"write": 1, "read": 1})


def test_timeline_marks_disk_actions_apart():
    text = timeline(SCHEME, 12, width=64)
    rows = [line for line in text.splitlines() if "disk slot" in line]
    assert rows, text
    store = next(r for r in rows if "store" in r)
    assert store.rstrip().split("  ")[-1].count("D") == 1
    restore = next(r for r in rows if "restore" in r)
    assert "U" in restore.split("<- disk slot")[1]
    assert LEGEND_DISK in text
    assert "disk writes / reads" in text


def test_single_level_timeline_has_no_disk_legend():
    from ckpt_transform import Revolve

    assert LEGEND_DISK not in timeline(Revolve(3), 12)


def test_picture_draws_disk_checkpoints_apart(tmp_path):
    actions = list(SCHEME.schedule(12))
    g = _geometry(actions, 12)
    disk_stores = sum(1 for a in actions if a.kind == "store" and a.level == "disk")
    assert len(g.disk_stores) == disk_stores > 0
    assert len(g.disk_held) == disk_stores
    path = tmp_path / "ml.png"
    plot_schedule(SCHEME, 12, path=path)
    assert path.stat().st_size > 1000


def test_cli_multilevel():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["schedule", "multilevel", "--steps", "10", "--memory", "1", "--disk", "2"])
    assert code == 0
    assert "Multilevel(memory=1, disk=2" in out.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
        main(["schedule", "multilevel", "--steps", "10", "--memory", "1"])
    assert "multilevel needs --memory M and --disk D" in err.getvalue()
