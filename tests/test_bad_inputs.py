"""Bad inputs and faults, tried as a new user would: every one ends in exactly one ``regbench: error:`` line on
stderr, exit status 2, no traceback, and nothing already written lost or half-written (tests/badinput_cases.py).
Real second processes and signals run as subprocesses; everything else calls ``cli.main`` in-process."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from badinput_cases import CASES
from badinput_helpers import Ctx
from grid_profiles import BASE, mlflow_runs, records_of

from regbench.harness import cli
from regbench.harness.cli import main
from regbench.harness.grid.parallel import LOCK_NAME, BenchLock
from regbench.harness.io import tracking

PROGRESS = re.compile(r"\S+ runs: +\d+%\|")  # tqdm's bar: "<profile> runs:  40%|████      | 2/5 [...]"


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http404():
    server = HTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _files(root: Path) -> dict[str, str]:
    """Every regular file under root (symlinks into the shared mirror are not ours) with its content hash."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _assert_one_line(err: str, expect: str) -> str:
    """Exactly one error line; a grid's progress bar (tqdm, on stderr) may stand above it: it is no error."""
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("regbench: error: ") and expect in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_or_fault_is_one_line(case, tmp_path, data_dir, monkeypatch, capfd, http404):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    ctx = Ctx(tmp_path, data_dir, monkeypatch, http404, main)
    ctx.argv = case.build(ctx)
    before = _files(tmp_path)
    assert main(ctx.argv) == 2
    _assert_one_line(capfd.readouterr().err, case.expect)
    after = _files(tmp_path)
    assert {p: h for p, h in after.items() if p in before} == before  # nothing already there changed or went
    assert not [p for p in after if p.endswith(".part") or "/.tmp-" in p]  # nothing half-written
    if case.writes_nothing:
        assert not Path(ctx.out).exists()
    if case.after:
        case.after(ctx)


def test_the_battery_is_broad():
    commands = collections.Counter(c.id.split("-")[0] for c in CASES)
    assert len(CASES) >= 40 and {"run", "bench", "plan", "validate", "leaderboard", "check"} <= set(commands)


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "_cmd_ls", boom)
    monkeypatch.delenv("REGBENCH_DEBUG", raising=False)  # main sets it under --debug (for grid workers)
    assert main(["ls", "tasks"]) == 1
    line = _assert_one_line(capsys.readouterr().err, "unexpected RuntimeError: boom")
    assert line.endswith("re-run with --debug for the traceback")
    assert main(["ls", "--debug", "tasks"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == line


def _profile(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps({**BASE, "trials": 1, "epochs": 1, **changes}))  # JSON is YAML
    return path


def _bench(profile: Path, out: Path, data_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "regbench.harness.cli", "bench", "--profile", str(profile), "--out", str(out),
            "--data-dir", data_dir, *extra]


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_mid_grid_is_one_line_and_the_grid_resumes(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    profile, out = _profile(tmp_path, seeds=[1, 2, 3, 4]), tmp_path / "out"
    proc = subprocess.Popen(_bench(profile, out, data_dir, "--no-track"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: list(out.glob("records/*/*/*.json")), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    _assert_one_line(err, "interrupted by SIGTERM; everything written so far is kept")
    done = records_of(out)  # every record there is whole
    assert 1 <= len(done) < 4 and not list(out.rglob("*.part"))
    assert main(["bench", "--profile", str(profile), "--out", str(out), "--data-dir", data_dir, "--no-track"]) == 0
    assert sorted(r["run_info"]["seed"] for r in records_of(out)) == [1, 2, 3, 4]


def test_ctrl_c_to_a_grid_with_workers_is_one_line_and_the_grid_resumes(tmp_path, data_dir, monkeypatch):
    """Ctrl-C reaches the whole process group: the workers stop quietly, the parent says it once."""
    seeds = list(range(1, 13))  # enough final runs that the grid cannot finish before the signal lands
    profile, out = _profile(tmp_path, seeds=seeds), tmp_path / "out"
    # SIGINT back to its default in the child: a shell that starts the test suite in the background (`cmd &` without
    # job control) makes SIGINT ignored, ignored signals are inherited, and Python then never raises
    # KeyboardInterrupt — the grid would run to the end (what two fresh-clone runs here showed), not what is tested.
    proc = subprocess.Popen(_bench(profile, out, data_dir, "--no-track", "--workers", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: list(out.glob("records/*/*/*.json")), proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    sys.stderr.write(err)  # whole, under "Captured stderr" if an assertion below fails (its message is cut short)
    assert proc.returncode == 2, err
    _assert_one_line(err, "interrupted by Ctrl-C (SIGINT); everything written so far is kept")
    assert 1 <= len(records_of(out)) < len(seeds) and not list(out.rglob("*.part"))
    assert main(["bench", "--profile", str(profile), "--out", str(out), "--data-dir", data_dir, "--no-track"]) == 0
    assert sorted(r["run_info"]["seed"] for r in records_of(out)) == seeds


def test_two_benches_started_at_once_on_one_output_one_refuses_and_nothing_is_lost(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    profile, out = _profile(tmp_path, seeds=[1, 2], trials=2), tmp_path / "out"
    procs = [subprocess.Popen(_bench(profile, out, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    errs = [proc.communicate(timeout=300)[1] for proc in procs]
    assert sorted(proc.returncode for proc in procs) == [0, 2], errs
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    _assert_one_line(errs[loser], f"in use by another `regbench bench` (pid {procs[winner].pid} on ")
    assert "Traceback" not in errs[winner], errs[winner]
    assert collections.Counter(r["run_info"]["seed"] for r in records_of(out)) == {1: 1, 2: 1}
    runs = mlflow_runs(out, "regbench-grid")
    assert set(collections.Counter(r.data.tags[tracking.KEY_TAG] for r in runs).values()) == {1}
    assert len(runs) == 1 + 2 + 2 and not [r for r in runs if r.info.status == "RUNNING"]


def test_a_lock_left_by_a_dead_bench_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 22 + 7, "host": "here", "started": "earlier"}))
    with BenchLock(tmp_path):  # the kernel dropped the dead holder's flock: nothing to wait for
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    with BenchLock(tmp_path, cluster=True), BenchLock(tmp_path, cluster=True):
        pass  # cluster mode: workers on several machines share the directory by design


def _mirror_without(data_dir: str, tmp_path: Path, group: str, task: str) -> Path:
    """A mirror of links to the shared one, less one task's folder."""
    mirror = tmp_path / "mirror"
    for entry in [*Path(data_dir).iterdir(), *(Path(data_dir) / group).iterdir()]:
        if entry.name not in (group, task):
            link = mirror / entry.relative_to(data_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(entry)
    return mirror


def test_plan_and_bench_agree_when_an_ood_set_has_no_data(tmp_path, data_dir, capsys):
    """Both stop before any run with the same line (bench used to tune every cell, then fail each final run)."""
    mirror, profile = _mirror_without(data_dir, tmp_path, "sentence_cls", "imdb"), _profile(tmp_path, seeds=[1])
    lines = []
    for command in (["plan"], ["bench", "--out", str(tmp_path / "out"), "--no-track"]):
        assert main([*command, "--profile", str(profile), "--data-dir", str(mirror)]) == 2
        lines.append(_assert_one_line(capsys.readouterr().err, "imdb"))
    assert lines[0] == lines[1] and "set `ood: false` in the profile" in lines[0]
    assert not list((tmp_path / "out").rglob("*.json"))


def test_plan_and_bench_agree_when_the_transfer_task_data_is_missing(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    mirror = _mirror_without(data_dir, tmp_path, "sentence_cls", "trec")  # the collapse probe's transfer task for sst2
    profile = _profile(tmp_path, seeds=[1])
    assert main(["plan", "--profile", str(profile), "--data-dir", str(mirror)]) == 0
    assert "note: collapse probe transfer to trec will be skipped" in capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["bench", "--profile", str(profile), "--out", str(out), "--data-dir", str(mirror), "--no-track"]) == 0
    (record,) = records_of(out)
    assert "trec" in record["metrics"]["collapse"]["settings"]["transfer_error"]
