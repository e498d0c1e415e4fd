"""Benchmark: instructions per span of the processor's hot loop, this tree against a baseline commit.

CPU seconds on a shared 2-core machine move by 30% between identical runs; instruction counts
do not. This decodes each request as the receivers do and runs ``Pipeline.process`` of a real
:class:`~llmpulse.processor.service.ProcessorService`
(engines on, as ``llmpulse serve`` builds them) under ``valgrind --tool=callgrind`` on requests
parsed afresh for every call, twice per tree and span shape (``--small`` and ``--large``
requests after the same warm-up), and reports ``(large - small) / spans``: the instructions of
one span, start-up and warm-up cancelled out. The baseline is the same code at ``--baseline``
(a commit, default ``HEAD``), checked out in a temporary git worktree and imported in place of
this tree's package.

Usage: ``python benchmarks/bench_instructions.py [--baseline REF] [--small 1] [--large 11]``
(about a minute per valgrind run; eight runs).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPANS_PER_REQUEST = 512
PACKAGES = {
    "llmpulse": "core",
    "llmpulse.console": "console",
    "llmpulse.instrumentation": "instrumentation",
    "llmpulse.processor": "processor",
}

# Runs in the measured interpreter: imports llmpulse from TREE (sys.argv[1]), then the loop.
_LOOP = r"""
import asyncio, importlib.abc, importlib.util, sys, tempfile
from pathlib import Path

tree, shape, requests = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
roots = {name: tree / sub for name, sub in PACKAGES.items() if (tree / sub).is_dir()}
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]


class TreeFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in roots:
            return importlib.util.spec_from_file_location(
                name, roots[name] / "__init__.py", submodule_search_locations=[str(roots[name])]
            )
        return None


sys.meta_path.insert(0, TreeFinder())
sys.path.insert(0, str(tree / "benchmarks"))
import otlp_load
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from llmpulse.processor.engines import build_engines
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings

try:  # the receivers' decoding (the C reader where the tree has one), else upb's
    from llmpulse.processor.pipeline.wire import decode_request as decode
    from llmpulse.processor.pipeline import _otlp  # noqa: F401  (built by _build_reader)
    print("reader: C")
except ImportError:
    decode = ExportTraceServiceRequest.FromString
    print("reader: upb")


async def main():
    state = Path(tempfile.mkdtemp(prefix="llmpulse-bench-"))
    tables = {"quality": {"db_path": str(state / "quality.db")}, "drift": {}, "canary": {}}
    pipeline = ProcessorService(Settings(), extensions=build_engines(tables, {})).pipeline
    raw = otlp_load.build_requests(8, shape=shape)
    for body in raw[:4]:
        pipeline.process(decode(body))
    for i in range(requests):
        pipeline.process(decode(raw[i % len(raw)]))


asyncio.run(main())
"""


def _build_reader(tree: Path) -> None:
    """Compile the tree's C reader in place, as the editable install does for this checkout (a
    fresh worktree has only the source; without this its baseline would silently run on upb)."""
    source = tree / "processor" / "pipeline" / "_otlp.c"
    if not source.is_file():
        return
    target = source.with_name("_otlp" + sysconfig.get_config_var("EXT_SUFFIX"))
    command = [
        sysconfig.get_config_var("CC").split()[0],
        "-O2",
        "-shared",
        "-fPIC",
        f"-I{sysconfig.get_paths()['include']}",
        str(source),
        "-o",
        str(target),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"could not build the C reader of {tree}:\n{result.stderr[-2000:]}")


def _instructions(tree: Path, shape: str, requests: int, script: Path) -> tuple[int, str]:
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            str(tree),
            shape,
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    reader = re.search(r"^reader: (\w+)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or found is None or reader is None:
        raise SystemExit(f"valgrind run failed ({tree}, {shape}, {requests}):\n{result.stderr[-2000:]}")
    return int(found.group(1)), reader.group(1)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print instructions per span for the baseline and this tree."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="HEAD", help="commit to compare with (default: HEAD)")
    parser.add_argument("--small", type=int, default=1, help="requests of the short run")
    parser.add_argument("--large", type=int, default=11, help="requests of the long run")
    parser.add_argument("--shapes", default="peer,llmpulse", help="span shapes (otlp_load.SHAPES)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions needs valgrind: apt-get install valgrind")
    if args.large <= args.small:
        raise SystemExit("--large must be greater than --small")
    work = Path(tempfile.mkdtemp(prefix="llmpulse-instructions-"))
    base = work / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.baseline], check=True
    )
    _build_reader(base)
    script = work / "loop.py"
    script.write_text(f"PACKAGES = {PACKAGES!r}\n{_LOOP}")
    spans = (args.large - args.small) * SPANS_PER_REQUEST
    try:
        print(f"instructions per span, engines on (callgrind, ({args.large} - {args.small}) requests of 512)")
        print(f"{'shape':<10} {'baseline ' + args.baseline:>22} {'this tree':>12} {'change':>8}")
        for shape in args.shapes.split(","):
            per_span, readers = [], []
            for tree in (base, ROOT):
                small, reader = _instructions(tree, shape, args.small, script)
                large, _ = _instructions(tree, shape, args.large, script)
                per_span.append((large - small) / spans)
                readers.append(reader)
            before, after = per_span
            print(
                f"{shape:<10} {before:>22,.0f} {after:>12,.0f} {after / before - 1:>+8.1%}"
                f"   (readers: {readers[0]} / {readers[1]})"
            )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
