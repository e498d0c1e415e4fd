"""Benchmark: cost of redaction per KB, on ordinary text and on text crafted to make patterns backtrack.

Two redactors run in the same process on the same inputs:

* **new**: ``llmpulse.contract.redaction`` as installed (bounded or atomic repetitions, gated
  patterns, numbers matched inside digit runs only);
* **old**: the module read from git at ``--baseline-rev`` (the last commit before the linear-time
  patterns), loaded from its source so nothing else differs.

Each input is measured at 1, 10 and 100 KB (``--sizes``); the cost per KB staying flat as the size
grows is what linear time looks like, a cost per KB growing with the size is backtracking. An old
pattern that takes longer than ``--budget`` seconds at one size is not run at the larger ones (the
quadratic ones take tens of seconds at 100 KB) and the row says so.

Usage: ``python benchmarks/bench_redaction.py [--sizes 1,10,100] [--budget 2] [--baseline-rev REV]``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import types
from collections.abc import Callable
from pathlib import Path

from llmpulse.contract.redaction import Redactor

ROOT = Path(__file__).resolve().parent.parent
BASELINE_REV = "bd5afca"  # the redaction module before the linear-time patterns
MODULE_PATH = "core/contract/redaction.py"

PROSE = (
    "Thanks for reaching out! Your order #A-1182 shipped on 2026-11-30; tracking is with the carrier. "
    "If anything is wrong, write to support@example.com or call +1 415 555 0100 (9am-5pm). "
    "The refund policy is 30 days, and the key point is to keep the receipt. "
)

INPUTS: dict[str, Callable[[int], str]] = {
    "prose": lambda n: (PROSE * (n // len(PROSE) + 1))[:n],
    "letters": lambda n: "a" * n,
    "email-dots": lambda n: ("a." * n)[:n],
    "digit-dots": lambda n: ("1." * n)[:n],
    "at-chain": lambda n: ("a@" * n)[:n],
    "sk-chain": lambda n: ("sk-" * n)[:n],
    "digit-spaces": lambda n: ("1 " * n)[:n],
    "jwt-heads": lambda n: ("eyJ" * n)[:n],
    "pem-heads": lambda n: ("-----BEGIN PRIVATE KEY-----" * n)[:n],
    "password-keys": lambda n: ("password=" * n)[:n],
}


def load_baseline(rev: str) -> Callable[[str], str]:
    """The ``Redactor`` of ``rev``'s redaction module, loaded from its source."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{MODULE_PATH}"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("baseline_redaction")
    exec(compile(source, f"{rev}:{MODULE_PATH}", "exec"), module.__dict__)
    return module.Redactor()  # type: ignore[no-any-return]


def cost(redact: Callable[[str], str], text: str) -> float:
    """Seconds for one redaction of ``text`` (best of three for short runs)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        redact(text)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > 0.5:
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1,10,100", help="input sizes in KB, comma-separated")
    parser.add_argument(
        "--budget", type=float, default=2.0, help="seconds after which larger sizes are skipped"
    )
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    redactors = {"old": load_baseline(args.baseline_rev), "new": Redactor()}
    header = "input          " + "".join(f"{who} {kb:>3} KB   " for who in redactors for kb in sizes)
    print("redaction cost, microseconds per KB (flat across sizes = linear time)")
    print(header)
    for name, make in INPUTS.items():
        cells: list[str] = []
        for redact in redactors.values():
            over = False
            for kb in sizes:
                if over:
                    cells.append(f"{'skipped':>13}")
                    continue
                seconds = cost(redact, make(kb * 1024))
                cells.append(f"{seconds * 1e6 / kb:>13,.0f}")
                over = seconds > args.budget
        print(f"{name:<15}" + "".join(cells))
    print(f"old = {args.baseline_rev}:{MODULE_PATH}; 'skipped': the smaller size took over {args.budget:g} s")


if __name__ == "__main__":
    main()
