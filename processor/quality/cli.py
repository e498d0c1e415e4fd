"""``llmpulse triage | label | export | spc``: work with flagged samples and SPC baselines.

These commands open the store directly, so they work whether or not the processor is running:
the PostgreSQL store the replicas share (``--store-url``, or ``$LLMPULSE_STORE_URL``), or the
SQLite file (``--db``; default ``$LLMPULSE_QUALITY_DB`` or ``llmpulse-quality.db`` in the
working directory; SQLite's WAL mode lets them read while the processor writes). A flag wins over
either environment variable; ``--store-url`` wins over ``--db``.

* ``triage [--service S] [--feature F] --since 1h --limit 20`` lists flagged samples, newest first;
* ``label ID good|bad --note TEXT`` records a human label (it feeds the judge-agreement metric);
* ``export [--label any|good|bad|all] [--out FILE]`` writes eval-set cases as JSONL;
* ``spc show`` lists saved charts; ``spc reset --feature F [--service S] [--statistic S]`` forgets a baseline
  after an intended model or prompt change (a running processor picks the request up on its
  next tick).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from llmpulse.contract.environment_variables import LLMPULSE_QUALITY_DB as DB_ENV
from llmpulse.contract.environment_variables import LLMPULSE_STORE_URL as STORE_URL_ENV
from llmpulse.processor.quality.metric_names import STATISTICS
from llmpulse.processor.quality.store import StoredSample, iter_jsonl
from llmpulse.processor.store.factory import is_url, open_store
from llmpulse.processor.store.protocols import StateStore, StoreError

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "STORE_URL_ENV",
    "add_store_options",
    "guarded",
    "main",
    "open_from_args",
    "parse_since",
    "register",
]

DEFAULT_DB = "llmpulse-quality.db"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, *, now: float | None = None) -> float:
    """``1h``, ``30m``, ``2d`` ... ago, or an ISO-8601 time, as Unix seconds."""
    match = _DURATION.match(value.strip())
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {value!r}: use a duration like 30m, 1h, 2d or an ISO time like 2026-11-25T10:00"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help=f"SQLite quality database (default: ${DB_ENV} or {DEFAULT_DB})")
    parser.add_argument(
        "--store-url",
        help=f"postgresql:// URL of the store the processor replicas share (default: ${STORE_URL_ENV})",
    )


def register(subparsers: Any) -> None:
    """Add ``triage``, ``label``, ``export`` and ``spc`` to an argparse subparsers object."""
    triage = subparsers.add_parser("triage", help="list flagged samples, newest first")
    add_store_options(triage)
    triage.add_argument("--service", help="only this service (service.name)")
    triage.add_argument("--feature", help="only this feature")
    triage.add_argument(
        "--since", default="1h", help="how far back: 30m, 1h, 2d or an ISO time (default: 1h)"
    )
    triage.add_argument("--limit", type=int, default=20, help="at most this many (default: 20)")
    triage.add_argument("--unlabelled", action="store_true", help="only samples without a human label")
    triage.add_argument("--include-audit", action="store_true", help="also unflagged samples kept for audit")
    triage.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    triage.set_defaults(func=guarded(_triage))

    label = subparsers.add_parser("label", help="record a human label on a flagged sample")
    add_store_options(label)
    label.add_argument("id", type=int, help="sample id (from triage)")
    label.add_argument("label", choices=("good", "bad"))
    label.add_argument("--note", help="why; kept with the eval case")
    label.set_defaults(func=guarded(_label))

    export = subparsers.add_parser("export", help="write flagged samples as JSONL eval-set cases")
    add_store_options(export)
    export.add_argument("--service", help="only this service (service.name)")
    export.add_argument("--feature", help="only this feature")
    export.add_argument("--since", help="how far back (default: everything)")
    export.add_argument(
        "--label",
        choices=("any", "good", "bad", "all"),
        default="any",
        help="labelled samples (any, good, bad) or all, labelled or not (default: any)",
    )
    export.add_argument("--include-audit", action="store_true", help="also unflagged samples kept for audit")
    export.add_argument("--out", help="output file (default: standard output)")
    export.set_defaults(func=guarded(_export))

    spc = subparsers.add_parser("spc", help="show or reset SPC baselines")
    add_store_options(spc)
    actions = spc.add_subparsers(dest="spc_command", metavar="ACTION")
    actions.required = True
    show = actions.add_parser("show", help="list saved charts and their baselines")
    show.add_argument("--service", help="only this service (service.name)")
    show.add_argument("--feature", help="only this feature")
    show.set_defaults(func=guarded(_spc_show))
    reset = actions.add_parser("reset", help="forget baselines so they are re-learnt from new data")
    reset.add_argument("--feature", required=True)
    reset.add_argument("--service", help="of this service only (default: of every service)")
    reset.add_argument("--statistic", choices=STATISTICS, help="one statistic (default: all of the feature)")
    reset.set_defaults(func=guarded(_spc_reset))


class _NoDatabase(Exception):
    pass


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report a missing database or a bad ``--since`` on stderr with exit status 2, no traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except _NoDatabase as exc:
            print(exc, file=sys.stderr)
            return 2
        except StoreError as exc:
            print(f"llmpulse {args.command}: {exc}", file=sys.stderr)
            return 2
        except argparse.ArgumentTypeError as exc:  # a --since that parse_since cannot read
            print(f"llmpulse {args.command}: {exc}", file=sys.stderr)
            return 2

    return run


def _location(args: argparse.Namespace) -> str:
    """Where to open the store: flags first, then the environment, then the default file."""
    url = args.store_url or (None if args.db else os.environ.get(STORE_URL_ENV))
    if url:
        if not is_url(url):
            raise _NoDatabase(f"llmpulse {args.command}: --store-url must be a postgresql:// URL")
        return str(url)
    path = args.db or os.environ.get(DB_ENV, DEFAULT_DB)
    if not os.path.exists(path):  # never create an empty database from a typo
        raise _NoDatabase(
            f"llmpulse {args.command}: no quality database at {path}; pass --db or set {DB_ENV}"
            f" to the path the processor writes (quality.db_path), or --store-url / {STORE_URL_ENV}"
            " for a PostgreSQL store"
        )
    return str(path)


def open_from_args(args: argparse.Namespace) -> StateStore:
    return open_store(_location(args))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _row(sample: StoredSample) -> list[str]:
    r = sample.record
    scores = " ".join(f"{k[:4]}={v:g}" for k, v in r.scores.items())
    return [
        str(sample.id),
        _when(r.created),
        r.service,
        r.feature,
        r.model,
        ",".join(r.sources),
        _one_line(",".join(r.reasons), 40),
        scores,
        sample.label or "-",
        _one_line(r.output, 50),
    ]


def _triage(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        samples = store.flagged.query(
            service=args.service,
            feature=args.feature,
            since=parse_since(args.since),
            limit=args.limit,
            label="none" if args.unlabelled else None,
            include_audit=args.include_audit,
        )
    if args.json:
        for line in iter_jsonl(samples):
            print(line)
        return 0
    if not samples:
        print(f"no flagged samples since {args.since}{_scope(args)}")
        return 0
    header = [
        "ID",
        "TIME (UTC)",
        "SERVICE",
        "FEATURE",
        "MODEL",
        "SOURCE",
        "REASONS",
        "SCORES",
        "LABEL",
        "OUTPUT",
    ]
    rows = [header] + [_row(s) for s in samples]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _label(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        if not store.flagged.label(args.id, args.label, args.note):
            print(f"llmpulse label: no sample with id {args.id} (see llmpulse triage)", file=sys.stderr)
            return 1
    print(f"sample {args.id} labelled {args.label}")
    return 0


def _export(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        samples = store.flagged.query(
            service=args.service,
            feature=args.feature,
            since=parse_since(args.since) if args.since else None,
            limit=None,
            label=None if args.label == "all" else args.label,
            include_audit=args.include_audit,
        )
    lines = [line + "\n" for line in iter_jsonl(list(reversed(samples)))]  # oldest first
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    print(f"exported {len(lines)} case(s)" + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _scope(args: argparse.Namespace) -> str:
    """`` for service S feature F`` (what the command was limited to), or ``""``."""
    parts = [f"{name} {value}" for name in ("service", "feature") if (value := getattr(args, name, None))]
    return f" for {' '.join(parts)}" if parts else ""


def _g(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _spc_show(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        charts = store.charts.load_charts()
        where = store.location
    header = ["SERVICE", "FEATURE", "STATISTIC", "STATE", "MEAN", "SIGMA", "L", "EWMA", "POINTS"]
    rows = [header]
    for (service, feature, statistic), state in sorted(charts.items()):
        if (args.feature and feature != args.feature) or (args.service and service not in (args.service, "")):
            continue
        shown = service or "(any, saved before per-service charts)"
        base = state.get("baseline")
        if base is None:
            warm = f"warming up {len(state.get('warmup_values', []))}/{state.get('warmup')}"
            rows.append([shown, feature, statistic, warm, "-", "-", "-", "-", str(state.get("index", 0))])
        else:
            rows.append(
                [
                    shown,
                    feature,
                    statistic,
                    "monitoring",
                    _g(base.get("mean")),
                    _g(base.get("sigma")) + (f" ({base['source']})" if base.get("source") else ""),
                    _g(base.get("L", state.get("L"))),
                    _g(state.get("ewma")),
                    str(state.get("index", 0)),
                ]
            )
    if len(rows) == 1:
        print(
            f"no SPC charts saved{_scope(args)} in {where} yet: the processor saves a chart once it has "
            "charted a window (spc.requests_per_window calls, spc.scores_per_window verdicts)"
        )
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _spc_reset(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        deleted = store.charts.request_reset(args.feature, args.statistic, service=args.service)
    what = args.statistic or "all statistics"
    print(f"SPC baseline reset{_scope(args)} ({what}); {deleted} saved chart(s) removed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of these commands on its own (``python -m llmpulse.processor.quality.cli``)."""
    parser = argparse.ArgumentParser(prog="llmpulse", description="Quality triage and SPC baselines.")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
