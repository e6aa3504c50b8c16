"""``regbench leaderboard`` and ``regbench reproduction``: the command lines of harness.leaderboard (registered by
harness.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, check_dir
from ..io.cell_summaries import CELLS

DEFAULT_REPRODUCTION = "results/REPRODUCTION.md"


def add_parser(sub: Any) -> None:
    """Register ``regbench leaderboard``."""
    lb = sub.add_parser("leaderboard", help="tables, tests, plots and index.html from a profile's result records")
    lb.add_argument("--profile", help="profile name: reads results/<profile>/records, writes results/<profile>/")
    lb.add_argument("--records", help="records directory (default: <out>/records)")
    lb.add_argument("--cells", help="cell summaries directory (default: beside the records, cells/)")
    lb.add_argument("--out", help="output directory (default: results/<profile>, or the parent of --records)")
    lb.add_argument("--tracking-uri", help="MLflow URI for the 'leaderboard' run (default: SQLite in the output dir)")
    lb.add_argument("--no-track", action="store_true", help="write the files only, no MLflow run")
    lb.set_defaults(handler=_cmd_leaderboard)
    _add_reproduction(sub)


def _add_reproduction(sub: Any) -> None:
    """Register ``regbench reproduction`` (here, beside the leaderboard it builds on, to keep cli.py short)."""
    rp = sub.add_parser("reproduction",
                        help="results/REPRODUCTION.md: the seed papers' claims tested on a grid's records")
    rp.add_argument("--profile", help="profile name: reads results/<profile>/records")
    rp.add_argument("--records", help="records directory (default: results/<profile>/records)")
    rp.add_argument("--cells", help="cell summaries directory (default: beside the records, cells/)")
    rp.add_argument("--out", default=DEFAULT_REPRODUCTION, help=f"output file (default: {DEFAULT_REPRODUCTION})")
    rp.set_defaults(handler=_cmd_reproduction)


def _cmd_reproduction(args: argparse.Namespace) -> int:
    from .reproduction_doc import write

    if not args.profile and not args.records:
        raise ConfigError("reproduction needs --profile or --records")
    records = Path(args.records) if args.records else Path(f"results/{args.profile}") / "records"
    given = (("profile", args.profile), ("records", args.records), ("cells", args.cells),
             ("out", None if args.out == DEFAULT_REPRODUCTION else args.out))
    command = " ".join(["regbench reproduction", *(f"--{k} {v}" for k, v in given if v)])
    if Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a directory; give the path of the Markdown file to write")
    check_dir(Path(args.out).parent, "--out")
    path = write(records, args.out, args.cells, command)
    print(f"reproduction: {path}")
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..io.tracking import check_tracking_uri, default_tracking_uri
    from . import build_leaderboard

    if not args.profile and not args.records:
        raise ConfigError("leaderboard needs --profile or --records")
    records = Path(args.records) if args.records else Path(args.out or f"results/{args.profile}") / "records"
    out = Path(args.out) if args.out else Path(f"results/{args.profile}") if args.profile else records.parent
    check_dir(out, "--out")
    if args.tracking_uri and not args.no_track:
        check_tracking_uri(args.tracking_uri)
    command = " ".join(["regbench leaderboard", *(f"--{k} {v}" for k, v in (
        ("profile", args.profile), ("records", args.records), ("cells", args.cells), ("out", args.out)) if v)])
    uri = None if args.no_track else (args.tracking_uri or default_tracking_uri(out))
    summary = build_leaderboard(records, out, args.profile, cells_dir=args.cells or records.parent / CELLS,
                                command=command, tracking_uri=uri)
    for line in summary["skipped"]:
        print(f"regbench: {line}", file=sys.stderr)
    print(f"leaderboard: {summary['records']} records, {len(summary['skipped'])} skipped → {out}/leaderboard.md, "
          f"index.html, leaderboard.tex, leaderboard.csv, plots/")
    if summary["mlflow_run_id"]:
        print(f"  mlflow run: {summary['mlflow_run_id']}")
    return 0
