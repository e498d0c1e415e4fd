"""Write every llmpulse dashboard as sorted, stable JSON into dashboards/generated/.

    python -m dashboards.build           # regenerate the committed JSON
    python -m dashboards.build --check   # exit 1 and list the files that differ (CI)

Run from the repository root. Grafana loads the generated files through the file provider in
dashboards/provisioning/dashboards/llmpulse.yml.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from dashboards import (
    conversations_agents,
    drift,
    model_versions,
    overview,
    pipeline_steps,
    processor_health,
    quality,
    users,
)

GENERATED = Path(__file__).resolve().parent / "generated"

DASHBOARDS: dict[str, Callable[[], models.Dashboard]] = {
    overview.UID: overview.build,
    pipeline_steps.UID: pipeline_steps.build,
    processor_health.UID: processor_health.build,
    model_versions.UID: model_versions.build,
    users.UID: users.build,
    quality.UID: quality.build,
    drift.UID: drift.build,
    conversations_agents.UID: conversations_agents.build,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {f"{uid}.json": encoder.encode(build()) + "\n" for uid, build in sorted(DASHBOARDS.items())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare with the committed JSON, write nothing")
    parser.add_argument("--out", type=Path, default=GENERATED, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    rendered = render()
    existing = {path.name for path in args.out.glob("*.json")} if args.out.is_dir() else set()
    stale = sorted(existing - rendered.keys())
    changed = sorted(
        name
        for name, text in rendered.items()
        if not (args.out / name).is_file() or (args.out / name).read_text() != text
    )
    if args.check:
        for name in changed:
            print(f"{args.out / name}: differs from what dashboards/ builds", file=sys.stderr)
        for name in stale:
            print(f"{args.out / name}: no dashboard builds it any more", file=sys.stderr)
        if changed or stale:
            print("run `python -m dashboards.build` and commit dashboards/generated/", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in changed:
        (args.out / name).write_text(rendered[name])
    for name in stale:
        (args.out / name).unlink()
    print(f"{len(rendered)} dashboards in {args.out} ({len(changed)} written, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
