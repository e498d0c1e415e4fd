"""A separate process on a shared store, for tests/store/test_shared_postgres.py.

``python replica_child.py URL COMMAND [ARGS...]``; prints one JSON document. Commands:

* ``open START_AT``: wait until the Unix time START_AT, open the store (migrating it), close;
* ``add N``: store N judged flagged samples, print their ids;
* ``agreement``: print the judge-agreement counts;
* ``budget START_AT THREADS MAX_TOKENS COST``: from START_AT, THREADS threads admit and settle
  calls of COST tokens until the shared ledger refuses; print the calls admitted and tokens
  charged by this process.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store

DAY = 20_000


def _wait(start_at: str) -> None:
    time.sleep(max(0.0, float(start_at) - time.time()))


def main(url: str, command: str, *args: str) -> object:
    if command == "open":
        _wait(args[0])
        open_store(url).close()
        return "ok"
    with open_store(url) as state:
        if command == "add":
            now = time.time()
            records = [
                FlaggedRecord(
                    feature="support",
                    model="m",
                    trace_id=n.to_bytes(16, "big"),
                    sources=("judge",),
                    reasons=("low_overall",),
                    created=now + n,
                    service="shop",
                    judge_verdict="bad",
                )
                for n in range(int(args[0]))
            ]
            return [state.flagged.add(r) for r in records]
        if command == "agreement":
            return {"/".join(k): v for k, v in state.flagged.agreement().items()}
        if command == "budget":
            threads, max_tokens, cost = int(args[1]), int(args[2]), int(args[3])
            admitted = [0] * threads

            def spend(i: int) -> None:
                while (admission := state.budget.admit(DAY, max_tokens, 1e9)) is not None:
                    admitted[i] += 1
                    state.budget.settle(admission, cost, 0.0)

            _wait(args[0])
            workers = [threading.Thread(target=spend, args=(i,)) for i in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return {"admitted": sum(admitted), "charged": sum(admitted) * cost}
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
