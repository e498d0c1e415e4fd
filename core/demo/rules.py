"""Time-compressed copies of the shipped alert rules and Alertmanager routing, for demos and tests.

The shipped rules are sized for production: 5-minute windows, a day of baseline, ``for:`` of
5 to 30 minutes. A demo that plays a day of incidents in a few minutes divides every duration by
a *speed* factor: range selectors (``[5m]``), offsets (``offset 1h``), ``for:`` and
Alertmanager's ``group_wait`` / ``group_interval`` / ``repeat_interval``. Thresholds, ratios
and expressions are untouched, so the demo exercises the real rules.

Two honest limits of the compression: a window holds ``speed`` times fewer events than in
production (the traffic is not sped up), so ratios and quantiles are noisier; and windows have
a floor (``min_window_s``, a few scrape intervals) so that ``rate()`` always sees enough samples,
which makes short windows relatively longer than the rest.

The files are rewritten as text (no YAML parser needed): durations only appear in those places
in our rule files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmpulse.demo.scenario import FEATURES, WARMUP_MIN
from llmpulse.processor.spc.ewma import DEFAULT_WARMUP
from llmpulse.stack import files

__all__ = [
    "RULES_DIR",
    "AlertRule",
    "SpcWindows",
    "alert_rules",
    "compress_alertmanager",
    "compress_duration",
    "compress_rules",
    "engine_settings",
    "parse_duration",
    "spc_windows",
    "write_compressed_rules",
]

RULES_DIR = files.rules_dir()  # the shipped rules: package data, or the checkout's alerting/rules

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_PART = re.compile(r"(\d+)(ms|[smhdwy])")
_RANGE = re.compile(rf"\[({_DURATION})(?::({_DURATION})?)?\]")
_OFFSET = re.compile(rf"(\boffset\s+)({_DURATION})")
_FOR = re.compile(rf"^(\s*for:[ \t]*)({_DURATION})[ \t]*$", re.MULTILINE)
_AM_TIMING = re.compile(
    rf"^(\s*(?:group_wait|group_interval|repeat_interval):[ \t]*)({_DURATION})[ \t]*$", re.M
)
_ALERT = re.compile(r"^\s*-\s*alert:\s*(\S+)\s*$", re.MULTILINE)
_LABEL_LINE = re.compile(r"^\s+(severity|component):\s*(\S+)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m``, ``1h30m`` or ``500ms``."""
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def compress_duration(text: str, speed: float, floor_s: int = 1) -> str:
    """``text`` divided by ``speed``, in whole seconds, at least ``floor_s``."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return f"{max(floor_s, int(parse_duration(text) / speed))}s"


def compress_rules(text: str, speed: float, *, min_window_s: int = 1, min_for_s: int = 1) -> str:
    """A rule file's text with every range, offset and ``for:`` divided by ``speed``.

    Range selectors are at least ``min_window_s`` long, offsets at least 1 s, and a ``for:``
    other than ``0s`` at least ``min_for_s`` (a few scrape intervals: a ``for: 2m`` spans eight
    scrapes in production, and compressed below one scrape interval it let an alert on an absent
    series fire while Prometheus had not yet scraped a target that had just started).
    ``speed == 1`` returns the text unchanged.
    """
    if speed == 1:
        return text

    def window(match: re.Match[str]) -> str:
        inner = compress_duration(match.group(1), speed, min_window_s)
        if match.group(0).find(":") >= 0:  # subquery [range:step]
            step = match.group(2)
            return f"[{inner}:{compress_duration(step, speed) if step else ''}]"
        return f"[{inner}]"

    text = _RANGE.sub(window, text)
    text = _OFFSET.sub(lambda m: m.group(1) + compress_duration(m.group(2), speed), text)

    def hold(match: re.Match[str]) -> str:
        floor = min_for_s if parse_duration(match.group(2)) > 0 else 1
        return match.group(1) + compress_duration(match.group(2), speed, floor)

    return _FOR.sub(hold, text)


def write_compressed_rules(
    target_dir: Path,
    speed: float,
    *,
    source_dir: Path = RULES_DIR,
    min_window_s: int = 1,
    min_for_s: int = 1,
) -> list[Path]:
    """Write a compressed copy of every ``*.yml`` in ``source_dir`` to ``target_dir``; their paths."""
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(source_dir.glob("*.yml")):
        target = target_dir / source.name
        target.write_text(
            compress_rules(source.read_text(), speed, min_window_s=min_window_s, min_for_s=min_for_s)
        )
        written.append(target)
    return written


def compress_alertmanager(text: str, speed: float) -> str:
    """An Alertmanager config's text with its grouping and repeat timings divided by ``speed``."""
    if speed == 1:
        return text
    return _AM_TIMING.sub(lambda m: m.group(1) + compress_duration(m.group(2), speed), text)


@dataclass(frozen=True)
class AlertRule:
    """An alert defined in a rule file: its name, severity and component labels, and the file."""

    name: str
    severity: str
    component: str
    path: Path


def alert_rules(paths: Iterable[Path] | None = None) -> dict[str, AlertRule]:
    """Every alert defined in ``paths`` (default: the shipped rule files), read at call time."""
    found: dict[str, AlertRule] = {}
    for path in sorted(paths) if paths is not None else sorted(RULES_DIR.glob("*.yml")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            match = _ALERT.match(line)
            if not match:
                continue
            labels: dict[str, str] = {}
            for following in lines[index + 1 :]:
                if _ALERT.match(following) or following.lstrip().startswith("- record:"):
                    break
                label = _LABEL_LINE.match(following)
                if label:
                    labels.setdefault(label.group(1), label.group(2))
            name = match.group(1)
            found[name] = AlertRule(name, labels.get("severity", ""), labels.get("component", ""), path)
    return found


SUPPORT_JUDGE_RATE = 0.22  # of about 7 calls/s: 1.6 verdicts/s, under the judge's 2/s with the others
JUDGE_RATES = {"support-chat": SUPPORT_JUDGE_RATE, "trip-agent": 0.0}
"""Per-feature judge rates of the demo; the others keep the default (5%)."""
QUALITY_TICK_S = 15.0
"""The quality engine's shipped tick: how often it refreshes the user-signal gauges (the
survivorship risk) from its window. Divided by the speed, at least 1 s: an uncompressed 15 s
would be half the demo's 30-second "hour" at speed 120, so the risk gauge lagged its window by
up to 30 simulated minutes and the abandonment surge's alert could miss its `for:`."""
SESSION_TIMEOUT_FLOOR_S = 10.0
"""The demo's shortest session timeout, in real seconds. Turns of a conversation are a few real
seconds apart (latencies and the users' reading time are not compressed), so the shipped 3
minutes divided by a high speed would close conversations between two turns."""
_WARMUP_SHARE = 0.7  # of the warm-up phase: the first calls take a few seconds to arrive
_MIN_CALLS, _MIN_VERDICTS = 5, 3  # per window: fewer would make a p95 or a mean meaningless


@dataclass(frozen=True)
class SpcWindows:
    """The demo's SPC windows at one speed: how many warm-up windows, and each window's size."""

    warmup_windows: int
    requests_per_window: dict[str, int]
    scores_per_window: int


def spc_windows(speed: float) -> SpcWindows:
    """Windows sized so every chart of the demo's features fixes its baseline inside the warm-up
    phase at ``speed`` (traffic is not sped up, so a faster demo has fewer calls to learn from).

    The shipped 100-window warm-up is kept when the slowest feature has the calls for it (at
    least five per window) and shortened otherwise; the designed limits are solved for the
    warm-up actually used. The judge score is charted for ``support-chat`` only: the other
    features are judged at the default 5%, too few verdicts for a chart in a demo.
    """
    seconds = WARMUP_MIN * 60.0 / speed * _WARMUP_SHARE
    calls = {f.name: f.calls_per_s * seconds for f in FEATURES}
    verdicts = calls["support-chat"] * SUPPORT_JUDGE_RATE
    windows = max(
        2, min(DEFAULT_WARMUP, int(min(calls.values()) // _MIN_CALLS), int(verdicts // _MIN_VERDICTS))
    )
    sizes = {name: max(2, int(n // windows)) for name, n in calls.items()}
    return SpcWindows(windows, sizes, max(1, int(verdicts // windows)))


def engine_settings(speed: float) -> str:
    """Extra processor TOML for a demo at ``speed``: the engines' windows, shortened alike.

    The quality and drift engines do not window by the clock alone, so rewriting the rules is
    not enough: user signals use a rolling hour (divided by ``speed`` here), and the SPC charts,
    the judge and the drift reference count samples, which a demo with production traffic rates
    would take hours to fill. The demo judges 22% of the ``support-chat`` calls (about 1.6
    verdicts/s; with the other features' 5%, under the judge's default rate limit of 2/s, so
    verdicts do not queue up and lag), none of the ``trip-agent`` calls and no whole
    conversations (session judging would add to the judge's rate), sizes the
    SPC windows so that every chart's warm-up ends before the first incident
    (:func:`spc_windows`; the shipped control limits, designed for that warm-up, and the shipped
    minimum effects), refreshes the user-signal gauges every ``15 / speed`` seconds (at least
    1 s: :data:`QUALITY_TICK_S`), closes sessions after the shipped 3 minutes divided by ``speed`` but not
    under :data:`SESSION_TIMEOUT_FLOOR_S`, and uses a smaller drift reference with more warm-up
    blocks for the similarity chart (its sigma is estimated from them). These are demo settings,
    not recommendations.
    """
    window = max(10.0, 3600.0 / speed)  # the user-signal window
    bucket = max(1.0, 60.0 / speed)
    spc = spc_windows(speed)
    per_feature = "".join(
        f"\n[quality.features.{name}]\nrequests_per_window = {size}\n"
        + (f"judge_rate = {JUDGE_RATES[name]}\n" if name in JUDGE_RATES else "")
        for name, size in spc.requests_per_window.items()
    )
    return f"""
# Added by `llmpulse demo` (speed {speed:g}); see llmpulse.demo.rules.engine_settings.
[quality]
tick_s = {max(1.0, QUALITY_TICK_S / speed):g}

[quality.signals]
window_s = {window:g}
bucket_s = {bucket:g}

[quality.spc]
warmup_windows = {spc.warmup_windows}
scores_per_window = {spc.scores_per_window}
{per_feature}

[agents]
session_timeout_s = {max(SESSION_TIMEOUT_FLOOR_S, 180.0 / speed):g}
run_grace_s = 0.5
trace_idle_s = 10
judge_rate = 0

[drift.settings]
reference_size = 150
window_size = 100
test_every = 25
min_current = 50
spc_block = 10
spc_warmup = 30
"""
