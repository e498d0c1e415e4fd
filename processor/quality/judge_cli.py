"""``llmpulse judge eval``: the judge's agreement with the human labels, before a change ships.

Without ``--replay`` it prints the agreement of the verdicts the running judge recorded (the
console's judge page, in a terminal): per service, feature and dimension, the confusion
matrix, Cohen's kappa and the judge's precision and recall on "bad". With ``--replay`` it
sends the labelled samples again through a judge configuration (``--judge-url`` /
``$LLMPULSE_JUDGE_BASE_URL``, ``--judge-model`` / ``$LLMPULSE_JUDGE_MODEL``, the key only from
``$LLMPULSE_JUDGE_API_KEY``; ``--prompt-file`` for a new system prompt, ``--few-shot N`` for N
examples drawn from the labels) and prints both tables, so the two can be compared. A replay
calls the judge once per sample (at most ``--max-samples``) and is paid like any judge call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import replace
from typing import Any

from llmpulse.contract import environment_variables as E
from llmpulse.processor.quality.agreement import agreement_table
from llmpulse.processor.quality.cli import add_store_options, guarded, open_from_args, parse_since
from llmpulse.processor.quality.judge import check_system_prompt
from llmpulse.processor.quality.judge_eval import Replay, agreement_rows, pick_examples, replay
from llmpulse.processor.quality.settings import JudgeSettings
from llmpulse.processor.quality.store import StoredSample

__all__ = ["register"]

# (column shown, key of an agreement row)
_COLUMNS = (
    ("SERVICE", "service"),
    ("FEATURE", "feature"),
    ("DIMENSION", "dimension"),
    ("N", "n"),
    ("J-BAD/H-BAD", "judge_bad_human_bad"),
    ("J-BAD/H-GOOD", "judge_bad_human_good"),
    ("J-GOOD/H-BAD", "judge_good_human_bad"),
    ("J-GOOD/H-GOOD", "judge_good_human_good"),
    ("KAPPA", "kappa"),
    ("PRECISION", "precision_bad"),
    ("RECALL", "recall_bad"),
)


def register(subparsers: Any) -> None:
    """Add ``judge eval`` to an argparse subparsers object."""
    judge = subparsers.add_parser("judge", help="measure the judge against the human labels")
    actions = judge.add_subparsers(dest="judge_command", metavar="ACTION")
    actions.required = True
    ev = actions.add_parser(
        "eval", help="agreement of the judge with the human labels (stored verdicts, or a replay)"
    )
    add_store_options(ev)
    ev.add_argument("--service", help="only this service (service.name)")
    ev.add_argument("--feature", help="only this feature")
    ev.add_argument("--since", help="only samples flagged since: 30m, 1h, 2d or an ISO time")
    ev.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    ev.add_argument(
        "--fail-at-or-below",
        type=float,
        default=JudgeSettings().fail_at_or_below,
        help="a dimension scored at or below this counts as the judge saying bad (default: %(default)s)",
    )
    ev.add_argument("--replay", action="store_true", help="judge the labelled samples again")
    ev.add_argument("--judge-url", help=f"OpenAI-compatible base URL (default: ${E.LLMPULSE_JUDGE_BASE_URL})")
    ev.add_argument("--judge-model", help=f"judge model (default: ${E.LLMPULSE_JUDGE_MODEL} or gpt-4o-mini)")
    ev.add_argument("--prompt-file", help="system prompt to measure, with {rubric} and {keys} placeholders")
    ev.add_argument(
        "--few-shot", type=int, default=0, help="labelled examples shown to the judge (default: 0)"
    )
    ev.add_argument(
        "--max-samples", type=int, default=200, help="judge at most this many samples (default: %(default)s)"
    )
    ev.set_defaults(func=guarded(_eval))


def _fail(message: str) -> int:
    print(f"llmpulse judge eval: {message}", file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace) -> JudgeSettings | str:
    url = args.judge_url or os.environ.get(E.LLMPULSE_JUDGE_BASE_URL)
    if not url:
        return f"--replay needs a judge endpoint: pass --judge-url or set {E.LLMPULSE_JUDGE_BASE_URL}"
    if not url.startswith(("http://", "https://")):
        return f"--judge-url must be an http(s) URL such as https://api.openai.com/v1, got {url!r}"
    settings = JudgeSettings(base_url=url, api_key=os.environ.get(E.LLMPULSE_JUDGE_API_KEY, ""))
    model = args.judge_model or os.environ.get(E.LLMPULSE_JUDGE_MODEL)
    settings = replace(settings, fail_at_or_below=args.fail_at_or_below)
    return replace(settings, model=model) if model else settings


def _prompt(args: argparse.Namespace) -> str | None:
    if not args.prompt_file:
        return None
    try:
        with open(args.prompt_file, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read --prompt-file {args.prompt_file}: {exc.strerror or exc}") from None
    return check_system_prompt(text)


def _eval(args: argparse.Namespace) -> int:
    if args.few_shot < 0 or args.max_samples < 1:
        return _fail("--few-shot must be >= 0 and --max-samples >= 1")
    settings: JudgeSettings | str | None = None
    prompt: str | None = None
    if args.replay:
        settings = _settings(args)
        if isinstance(settings, str):
            return _fail(settings)
        try:
            prompt = _prompt(args)
        except ValueError as exc:
            return _fail(str(exc))
    elif args.prompt_file or args.few_shot or args.judge_url or args.judge_model:
        return _fail("--prompt-file, --few-shot, --judge-url and --judge-model take effect with --replay")
    with open_from_args(args) as store:
        labelled = store.flagged.query(
            service=args.service,
            feature=args.feature,
            since=parse_since(args.since) if args.since else None,
            limit=None,
            label="any",
            include_audit=True,
        )
    if not labelled:
        print(
            "llmpulse judge eval: no labelled samples yet; label flagged samples in the console or with"
            " `llmpulse label ID good|bad`",
            file=sys.stderr,
        )
        return 1
    threshold = args.fail_at_or_below
    stored = agreement_table(labelled, fail_at_or_below=threshold)
    output: dict[str, Any] = {"labelled": len(labelled), "stored": agreement_rows(stored)}
    result: Replay | None = None
    if isinstance(settings, JudgeSettings):
        examples, rest = pick_examples(labelled, args.few_shot)
        rest = rest[: args.max_samples]
        result = asyncio.run(replay(rest, settings, system_prompt=prompt, examples=examples))
        output["replay"] = {
            "judge_url": settings.base_url,
            "judge_model": settings.model,
            "prompt": args.prompt_file or "built-in",
            "few_shot_examples": [s.id for s in examples],
            "judged": len(result.samples),
            "errors": dict(result.errors),
            "first_error": result.first_error,
            "skipped_no_content": result.skipped_no_content,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "usd": round(result.usd, 6),
            "agreement": agreement_rows(agreement_table(result.samples, fail_at_or_below=threshold)),
        }
    if args.json:
        print(json.dumps(output, ensure_ascii=False, sort_keys=True))
    else:
        _print_text(output, labelled, result)
    if result is not None and not result.samples:
        print(
            f"llmpulse judge eval: the judge gave no verdict for any of the samples ({result.first_error})",
            file=sys.stderr,
        )
        return 1
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    cells = [[name for name, _ in _COLUMNS]] + [[_fmt(row[key]) for _, key in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]


def _print_text(output: dict[str, Any], labelled: list[StoredSample], result: Replay | None) -> None:
    judged = sum(1 for s in labelled if s.record.judge_verdict is not None)
    print(f"stored verdicts: {judged} of {output['labelled']} labelled samples were judged")
    lines = _table(output["stored"]) if output["stored"] else ["(none judged)"]
    print("\n".join(lines))
    if result is None:
        return
    r = output["replay"]
    shots = ", ".join(f"#{i}" for i in r["few_shot_examples"]) or "none"
    errors = ", ".join(f"{k}={v}" for k, v in sorted(r["errors"].items())) or "none"
    print()
    print(f"replay: {r['judge_model']} at {r['judge_url']}, prompt {r['prompt']}, few-shot examples {shots}")
    print(
        f"judged {r['judged']} samples (errors: {errors}; without content: {r['skipped_no_content']});"
        f" {r['input_tokens']} input + {r['output_tokens']} output tokens, USD {r['usd']:.4f}"
    )
    print("\n".join(_table(r["agreement"]) if r["agreement"] else ["(no verdicts)"]))
