"""``llmpulse sessions list | show``: captured conversations, from the store.

The store is the one ``llmpulse triage`` reads (``--store-url`` / ``$LLMPULSE_STORE_URL``, or the
SQLite file ``--db`` / ``$LLMPULSE_QUALITY_DB``); the processor keeps there the turns of the
sessions it sampled for session judging, and of those with a flagged call from that call on,
when content was captured (``[agents] capture_sessions``).

* ``sessions list [--service S] [--feature F] [--verdict bad|good|none] [--limit N] [--json]``:
  newest first;
* ``sessions show ID [--json]``: the turns in order, with the session judge's verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from llmpulse.processor.quality.cli import add_store_options, guarded, open_from_args
from llmpulse.processor.store.sessions import StoredSession

__all__ = ["format_session", "register"]


def register(subparsers: Any) -> None:
    """Add ``sessions`` (with ``list`` and ``show``) to an argparse subparsers object."""
    sessions = subparsers.add_parser("sessions", help="captured conversations: list them, show one's turns")
    actions = sessions.add_subparsers(dest="sessions_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="captured sessions, newest first")
    add_store_options(listing)
    listing.add_argument("--service", help="only this service (service.name)")
    listing.add_argument("--feature", help="only this feature")
    listing.add_argument(
        "--verdict",
        choices=("bad", "good", "none"),
        help="only sessions the judge found bad, good, or not judged",
    )
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default: 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    listing.set_defaults(func=guarded(_list))
    show = actions.add_parser("show", help="one session's turns in order, with its verdict")
    add_store_options(show)
    show.add_argument("id", type=int, help="session id (from sessions list)")
    show.add_argument("--json", action="store_true", help="the session as one JSON object")
    show.set_defaults(func=guarded(_show))


def _printable(text: str, indent: str) -> str:
    """``text`` safe for a terminal: control characters (an ANSI escape in a model's answer)
    shown as ``\\x..`` escapes, continuation lines indented under the first."""
    safe = "".join(c if c in "\n\t" or c.isprintable() else _escape(c) for c in text)
    return safe.replace("\n", "\n" + indent)


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _verdict(s: StoredSession) -> str:
    v = s.verdict
    return "-" if v is None else f"{v.verdict} ({v.overall:.2f})"


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print(f"llmpulse sessions list: --limit {args.limit}: expected a positive number", file=sys.stderr)
        return 2
    with open_from_args(args) as store:
        found = store.sessions.sessions(
            service=args.service, feature=args.feature, verdict=args.verdict, limit=args.limit
        )
    if args.json:
        for s in found:
            view = s.to_json()
            del view["transcript"]
            print(json.dumps(view, ensure_ascii=False, sort_keys=True))
        return 0
    if not found:
        print("no captured sessions" + (f" of service {args.service}" if args.service else ""))
        return 0
    header = ["ID", "ENDED (UTC)", "SERVICE", "FEATURE", "CONVERSATION", "TURNS", "COST USD", "VERDICT"]
    rows = [header] + [
        [
            str(s.id),
            _when(s.record.ended),
            s.record.service,
            s.record.feature,
            _printable(s.record.conversation_id, " "),
            str(s.record.turns),
            f"{s.record.cost_usd:.6f}",
            _verdict(s),
        ]
        for s in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def format_session(s: StoredSession) -> str:
    """The text ``sessions show`` prints: a header, the verdict, then each turn."""
    r = s.record
    lines = [
        f"session {s.id}: {r.service} / {r.feature}"
        + (f" @{r.environment}" if r.environment else "")
        + f", conversation {_printable(r.conversation_id, '')}",
        f"{_when(r.started)} to {_when(r.ended)} UTC, {r.turns} turn(s), cost {r.cost_usd:.6f} USD"
        + (", abandoned after the first answer" if r.abandoned else ""),
        f"feedback: {r.explicit_feedback} explicit ({r.positive_feedback} positive),"
        f" {r.corrections} correction(s), {r.follow_ups} follow-up(s)",
    ]
    v = s.verdict
    if v is None:
        lines.append("verdict: not judged")
    else:
        scores = ", ".join(f"{k} {x:g}" for k, x in sorted(v.scores.items()))
        lines.append(f"verdict: {v.verdict}, overall {v.overall:.2f} ({scores})")
        if v.explanation:
            lines.append(f"  {_printable(v.explanation, '  ')}")
    if r.turns_clipped:
        lines.append(f"({r.turns_clipped} earlier turn(s) not kept)")
    for n, t in r.numbered():
        lines.append("")
        lines.append(
            f"turn {n}  trace {t.trace_id.hex()}  {_when(t.started)}  {t.duration_s:.3f} s  {t.model}"
            f"  {t.llm_calls} call(s)  {t.input_tokens}+{t.output_tokens} tokens  {t.cost_usd:.6f} USD"
            + ("  ERROR" if t.error else "")
        )
        lines.append(f"  user: {_printable(t.user, '        ')}")
        lines.append(f"  assistant: {_printable(t.answer, '             ')}")
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        found = store.sessions.session(args.id)
    if found is None:
        print(
            f"llmpulse sessions show: no session {args.id} in the store"
            " (llmpulse sessions list shows the ids)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(found.to_json(), ensure_ascii=False, sort_keys=True))
    else:
        print(format_session(found))
    return 0
