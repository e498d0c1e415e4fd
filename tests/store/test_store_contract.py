"""The store contract, run against SQLite and a real PostgreSQL alike (``store_location``)."""

from __future__ import annotations

from llmpulse.processor.quality.chart_store import LEGACY_SERVICE
from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.protocols import (
    Admission,
    BudgetLedger,
    ChartSnapshots,
    DriftReferences,
    FlaggedSamples,
    StateStore,
)

NOW = 1_800_000_000.0
DAY = int(NOW // 86400)


def record(n: int, **fields: object) -> FlaggedRecord:
    values: dict[str, object] = {
        "feature": "support",
        "model": "gpt-4o-mini",
        "trace_id": n.to_bytes(16, "big"),
        "span_id": n.to_bytes(8, "big"),
        "sources": ("judge",),
        "reasons": ("low_overall",),
        "created": NOW + n,
        "service": "shop",
        "scores": {"overall": 2.0},
        "judge_verdict": "bad",
        "output": f"answer {n}",
    }
    values.update(fields)
    return FlaggedRecord(**values)  # type: ignore[arg-type]


def test_every_part_satisfies_its_protocol(state: StateStore) -> None:
    assert isinstance(state.flagged, FlaggedSamples)
    assert isinstance(state.charts, ChartSnapshots)
    assert isinstance(state.budget, BudgetLedger)
    assert isinstance(state.references, DriftReferences)


def test_samples_round_trip_with_redaction_and_ids(state: StateStore) -> None:
    flagged = state.flagged
    first = flagged.add(record(1, input='[{"role": "user", "content": "mail me at bob@example.com"}]'))
    flagged.add_many([record(2), record(3, service="bank", feature="loans")])
    assert flagged.count() == 3
    got = flagged.get(first)
    assert got is not None and got.id == first
    assert got.record.trace_id == (1).to_bytes(16, "big") and got.record.span_id == (1).to_bytes(8, "big")
    assert got.record.sources == ("judge",) and got.record.scores == {"overall": 2.0}
    assert got.record.input is not None and "bob@example.com" not in got.record.input
    assert got.label is None
    assert flagged.get(999_999) is None


def test_samples_keep_their_scope_and_a_sample_without_one_reads_none(state: StateStore) -> None:
    scope = {
        "response_model": "gpt-4o-mini-lite",
        "prompt_version": "support-v7",
        "app_version": "2.4.0",
        "query_category": "refunds",
        "rag_index_version": "kb-2026-12-01",
    }
    with_scope = state.flagged.add(record(1, **scope))
    state.flagged.add_many([record(2, prompt_version="support-v8")])
    bare = state.flagged.add(record(3))
    got = state.flagged.get(with_scope)
    assert got is not None and {k: getattr(got.record, k) for k in scope} == scope
    assert got.to_eval_case()["prompt_version"] == "support-v7"
    (many,) = [s for s in state.flagged.query(limit=None) if s.record.trace_id == (2).to_bytes(16, "big")]
    assert many.record.prompt_version == "support-v8" and many.record.app_version is None
    none = state.flagged.get(bare)
    assert none is not None and all(getattr(none.record, k) is None for k in scope)
    assert "prompt_version" not in none.to_eval_case()


def test_query_filters_and_orders_newest_first(state: StateStore) -> None:
    flagged = state.flagged
    flagged.add_many(
        [
            record(1),
            record(2, service="bank"),
            record(3, feature="billing"),
            record(4, sources=("audit",), judge_verdict="good"),
        ]
    )
    assert [s.record.output for s in flagged.query()] == ["answer 3", "answer 2", "answer 1"]
    assert [s.record.output for s in flagged.query(include_audit=True, limit=2)] == ["answer 4", "answer 3"]
    assert [s.record.output for s in flagged.query(service="bank")] == ["answer 2"]
    assert [s.record.output for s in flagged.query(service="shop", feature="support")] == ["answer 1"]
    assert [s.record.output for s in flagged.query(since=NOW + 2)] == ["answer 3", "answer 2"]
    assert len(flagged.query(limit=None)) == 3


def test_labels_and_agreement_per_service_and_feature(state: StateStore) -> None:
    flagged = state.flagged
    flagged.add_many(
        [record(1), record(2), record(3, service="bank"), record(4, judge_verdict=None, sources=("check",))]
    )
    ids = {s.record.output: s.id for s in flagged.query(limit=None)}
    assert flagged.label(ids["answer 1"], "bad", "invents a policy", now=NOW)
    assert flagged.label(ids["answer 2"], "good")
    assert flagged.label(ids["answer 3"], "bad")
    assert flagged.label(ids["answer 4"], "bad")  # not judged: no agreement to count
    assert not flagged.label(999_999, "good")
    labelled = flagged.get(ids["answer 1"])
    assert labelled is not None and (labelled.label, labelled.label_note, labelled.labelled_at) == (
        "bad",
        "invents a policy",
        NOW,
    )
    assert flagged.agreement() == {("shop", "support"): (2, 1), ("bank", "support"): (1, 1)}
    assert [s.record.output for s in flagged.query(label="good")] == ["answer 2"]
    assert {s.record.output for s in flagged.query(label="none", include_audit=True)} == set()
    assert len(flagged.query(label="any")) == 4


def test_prune_drops_old_rows_then_the_oldest_past_the_cap(state: StateStore) -> None:
    flagged = state.flagged  # retention: 1 day, 5 rows
    flagged.add_many([record(n, created=NOW - 2 * 86400 + n) for n in range(2)])
    flagged.add_many([record(n) for n in range(10, 17)])
    assert flagged.prune(now=NOW) == 2 + 2
    assert [s.record.output for s in flagged.query(limit=None)][-1] == "answer 12"
    assert flagged.count() == 5


def test_charts_upsert_load_and_take_over_legacy_rows(state: StateStore) -> None:
    charts = state.charts
    charts.save_charts({(LEGACY_SERVICE, "support", "judge_score"): {"index": 1}}, now=NOW)
    charts.save_charts(
        {("shop", "support", "judge_score"): {"index": 2}, ("shop", "support", "refusal_rate"): {"index": 3}},
        now=NOW,
    )
    charts.save_charts({("shop", "support", "judge_score"): {"index": 4, "baseline": {"mean": 4.1}}})
    assert charts.load_charts() == {
        ("shop", "support", "judge_score"): {"index": 4, "baseline": {"mean": 4.1}},
        ("shop", "support", "refusal_rate"): {"index": 3},
    }


def test_reset_deletes_saved_charts_and_is_taken_once(state: StateStore) -> None:
    charts = state.charts
    charts.save_charts(
        {
            ("shop", "support", "judge_score"): {"index": 1},
            ("shop", "support", "refusal_rate"): {"index": 1},
            ("bank", "support", "judge_score"): {"index": 1},
        }
    )
    assert charts.request_reset("support", "judge_score", service="shop") == 1
    assert charts.request_reset("support") == 2
    assert charts.load_charts() == {}
    assert charts.take_resets() == [("shop", "support", "judge_score"), (None, "support", None)]
    assert charts.take_resets() == []


def test_budget_admits_until_the_day_is_spent_and_renews_the_next_day(state: StateStore) -> None:
    ledger = state.budget
    first = ledger.admit(DAY, 1000, 1.0)
    assert first == Admission(DAY, 0, 0.0)  # no mean cost yet: nothing reserved
    ledger.settle(first, 400, 0.1)
    second = ledger.admit(DAY, 1000, 1.0)
    assert second == Admission(DAY, 400, 0.1)  # the mean paid call is reserved
    # 400 spent + 400 reserved < 1000: one more fits; then 400 + 800 reserved does not.
    third = ledger.admit(DAY, 1000, 1.0)
    assert third is not None
    assert ledger.admit(DAY, 1000, 1.0) is None
    ledger.settle(second, 300, 0.1)
    ledger.settle(third, 0, 0.0)  # never paid for (the judge was not reached)
    assert ledger.spent(DAY) == (700, 0.2)
    assert ledger.admit(DAY, 1000, 1.0) is not None  # 700 spent, nothing in flight
    assert ledger.admit(DAY + 1, 1000, 1.0) == Admission(DAY + 1, 0, 0.0)
    assert ledger.spent(DAY + 1) == (0, 0.0)


def test_budget_usd_limit_and_a_zero_budget(state: StateStore) -> None:
    ledger = state.budget
    assert ledger.admit(DAY, 0, 5.0) is None
    assert ledger.admit(DAY, 10_000, 0.0) is None
    admitted = ledger.admit(DAY, 10_000, 0.25)
    assert admitted is not None
    ledger.settle(admitted, 100, 0.3)
    assert ledger.admit(DAY, 10_000, 0.25) is None
    assert ledger.spent(DAY) == (100, 0.3)


def test_drift_references_upsert_per_service_and_feature(state: StateStore) -> None:
    refs = state.references
    blob = bytes(range(256)) * 4  # binary, with NUL bytes
    refs.save_references({("shop", "support"): blob, ("bank", "support"): b"v1"}, now=NOW)
    refs.save_references({("bank", "support"): b"v2"})
    assert refs.load_references() == {("shop", "support"): blob, ("bank", "support"): b"v2"}


def test_a_stale_owner_save_is_refused_after_another_process_claimed_the_key(store_location: str) -> None:
    """Two processes on one store: the old owner's late save after the new owner's claim is refused
    (charts and references alike); the new owner's state survives; unclaimed keys save unfenced."""
    key, other = ("shop", "support"), ("shop", "search")
    with open_store(store_location) as old, open_store(store_location) as new:
        assert old.charts.claim([key]) == {key: 1}
        assert old.references.claim([key]) == {key: 1}
        assert old.charts.save_charts({(*key, "judge_score"): {"index": 1}}) == []
        assert old.references.save_references({key: b"old-1"}) == []

        assert new.charts.claim([key]) == {key: 2}  # the take-over, then the read
        assert new.references.claim([key]) == {key: 2}
        assert new.charts.load_charts() == {(*key, "judge_score"): {"index": 1}}
        assert new.charts.save_charts({(*key, "judge_score"): {"index": 2}}) == []
        assert new.references.save_references({key: b"new-2"}) == []

        late = {
            (*key, "judge_score"): {"index": 9},
            (*key, "error_rate"): {"index": 9},
            (*other, "error_rate"): {},
        }
        assert sorted(old.charts.save_charts(late)) == [(*key, "error_rate"), (*key, "judge_score")]
        assert old.references.save_references({key: b"old-late", other: b"other"}) == [key]

        assert new.charts.load_charts() == {(*key, "judge_score"): {"index": 2}, (*other, "error_rate"): {}}
        assert new.references.load_references() == {key: b"new-2", other: b"other"}
        assert old.charts.claim([key]) == {key: 3}  # the key comes back: the old process owns it again
        assert old.charts.save_charts({(*key, "judge_score"): {"index": 3}}) == []
        assert new.charts.save_charts({(*key, "judge_score"): {"index": 8}}) == [(*key, "judge_score")]
        assert old.charts.load_charts()[(*key, "judge_score")] == {"index": 3}
