"""`regbench status`: a grid's progress per cell, from its studies and records alone."""

from __future__ import annotations

import json
import socket

import pytest
from grid_profiles import write_profile

from regbench.harness import grid
from regbench.harness.cli import main
from regbench.harness.grid import liveness, tune
from regbench.harness.grid.profiles import load_profile
from regbench.harness.grid.status import status_table


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test asks a trial by hand
def test_status_follows_a_grid_from_nothing_to_done(tmp_path, data_dir, capsys):
    path = write_profile(tmp_path, methods=["std", "std++"], trials=2, seeds=[1, 2], epochs=1)
    profile, out = load_profile(str(path)), tmp_path / "out"
    before = status_table(profile, out, data_dir=data_dir)
    assert set(before["state"]) == {"not started"} and set(before["finals"]) == {"0/2"}
    assert set(before["spent_min"]) == {""}  # no cell summary yet: no figure, not 0
    assert not out.exists()  # reading writes nothing

    url = f"sqlite:///{tmp_path}/o.db"
    grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False, storage=url)
    done = status_table(profile, out, url, data_dir)
    assert set(done["state"]) == {"done"} and set(done["trials"]) == {"2/2"} and set(done["finals"]) == {"2/2"}
    summaries = {json.loads(p.read_text())["cell_key"]: json.loads(p.read_text()) for p in out.rglob("cells/**/*.json")}
    for cell, spent in zip(grid.plan_cells(profile, data_dir), done["spent_min"], strict=True):
        assert spent == round(summaries[cell.key]["cpu_seconds"] / 60, 1)  # trials + finals, run on the CPU

    std_plus = done[done["method"] == "std++"].index[0]
    cell = [c for c in grid.plan_cells(profile, data_dir) if c.method == "std++"][0]
    (record,) = [p for p in out.glob("records/sst2/stdpp/*.json") if json.loads(p.read_text())["run_info"]["seed"] == 2]
    record.unlink()  # seed 2 of std++ not done yet ...
    study = tune.open_study(grid.open_storage(out, url), cell.key, "w", {"type": "none"})
    extra = study.ask()
    extra.set_user_attr(liveness.WORKER_ATTR, f"{socket.gethostname()}:1")  # ... and a trial running (pid 1 lives)
    partial = status_table(profile, out, url, data_dir).loc[std_plus]
    assert (partial["state"], partial["finals"], partial["running"]) == ("final runs", "1/2", 1)

    assert main(["status", "--profile", str(path), "--out", str(out), "--storage", url, "--data-dir", data_dir]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"profile {profile.name}: 2 cells — 1 done, 1 final runs; final runs 3/4; "
                           "trials running now 1; run time spent ")
    assert "std++" in text and "1/2" in text
