"""The ``llmpulse`` command.

Each subcommand lives beside the code it drives and registers itself through a
``register(subparsers)`` function named in ``_COMMAND_MODULES``. Modules are
imported when the parser is built; one whose optional dependencies are missing
(``pip install 'llmpulse[processor]'``) contributes a stub that says so.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from llmpulse.contract import environment_variables

# (module, commands it registers, extra that provides its dependencies)
_COMMAND_MODULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("llmpulse.processor.cli", ("serve", "status"), "processor"),
    ("llmpulse.processor.quality.cli", ("triage", "label", "export", "spc"), "processor"),
    ("llmpulse.processor.quality.judge_cli", ("judge",), "processor"),
    ("llmpulse.processor.drift.cli", ("drift",), "processor"),
    ("llmpulse.processor.agents.cli", ("sessions",), "processor"),
    ("llmpulse.console.cli", ("console",), "console"),
    ("llmpulse.testing.cli", ("fake-provider",), ""),
    ("llmpulse.stack.local", ("up", "down"), ""),
    ("llmpulse.demo.runner", ("demo",), "demo"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmpulse",
        description="Production monitoring for LLM applications.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name, commands, extra in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            for command in commands:
                _add_missing(subparsers, command, extra, exc)
            continue
        module.register(subparsers)
    return parser


def _add_missing(subparsers: argparse._SubParsersAction, command: str, extra: str, exc: ImportError) -> None:
    hint = f"pip install 'llmpulse[{extra}]'" if extra else "reinstall llmpulse"
    sub = subparsers.add_parser(command, help=f"(unavailable: {exc.name} is not installed)")

    def run(_args: argparse.Namespace) -> int:
        print(f"llmpulse {command}: {exc.name} is not installed; run: {hint}", file=sys.stderr)
        return 2

    sub.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if args.command == "status":
            if not getattr(args, "json", False):
                _print_stack_health()
            if getattr(args, "url", "") is None:
                args.url = _local_processor_urls() or None
        if _reads_the_store(args):
            _use_the_local_store(args)
        return func(args)
    except BrokenPipeError:
        # The reader went away (`llmpulse triage --json | head`): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not fail on the closed pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _print_stack_health() -> None:
    """``llmpulse status`` starts with the health of the local stack, when `up` started one."""
    try:
        from llmpulse.stack.local import Stack, default_state_dir

        report = Stack(default_state_dir()).health_report()
    except Exception:  # the stack section is a courtesy: status works without it
        logging.getLogger(__name__).debug("event=stack_health_failed", exc_info=True)
        return
    if report:
        print(report + "\n", flush=True)


_STORE_COMMANDS = frozenset({"triage", "label", "export", "spc", "sessions"})


def _reads_the_store(args: argparse.Namespace) -> bool:
    """A store command (triage, label, export, spc, sessions) told nothing of where the store is."""
    return (
        args.command in _STORE_COMMANDS
        and hasattr(args, "store_url")
        and hasattr(args, "db")
        and not args.store_url
        and not args.db
        and not os.environ.get(environment_variables.LLMPULSE_STORE_URL)
        and not os.environ.get(environment_variables.LLMPULSE_QUALITY_DB)
    )


def _use_the_local_store(args: argparse.Namespace) -> None:
    """The local stack's store, when ``llmpulse up`` runs one (its SQLite file, or with
    ``--replicas`` the PostgreSQL the replicas share)."""
    try:
        from llmpulse.stack.local import Stack, default_state_dir

        location = Stack(default_state_dir()).store_location()
    except Exception:  # a courtesy: the command falls back to its own default
        logging.getLogger(__name__).debug("event=stack_store_failed", exc_info=True)
        return
    if location is None:
        return
    if location.startswith("postgresql://"):
        args.store_url = location
    else:
        args.db = location


def _local_processor_urls() -> list[str]:
    """The admin URLs of the processors the local stack runs (N with ``up --replicas N``)."""
    try:
        from llmpulse.stack.local import Stack, default_state_dir

        return Stack(default_state_dir()).processor_urls()
    except Exception:  # a courtesy, as the health section: status falls back to its default URL
        logging.getLogger(__name__).debug("event=stack_processors_failed", exc_info=True)
        return []


if __name__ == "__main__":
    sys.exit(main())
