"""Answer quality: cheap checks on every call, a sampled LLM judge with its guards, SPC
charts of the scores and rates, user signals, canary probes, and the flagged-sample store
with its CLI (``llmpulse triage``, ``label``, ``export``, ``spc``), and the judge's agreement
with the human labels (``llmpulse judge eval``). See docs/quality.md.
"""

__all__ = [
    "agreement",
    "canary",
    "chart_store",
    "charts",
    "checks",
    "cli",
    "content_watch",
    "engine",
    "extension",
    "flag_writer",
    "guards",
    "ingest",
    "judge",
    "judge_cli",
    "judge_eval",
    "judging",
    "metric_names",
    "metrics",
    "settings",
    "status",
    "store",
    "ticker",
    "types",
    "user_signals",
]
