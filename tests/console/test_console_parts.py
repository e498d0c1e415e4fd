"""The console's parts without a browser: agreement figures, bundles and their formats, access
rules, bad input, and pages that stay up when Prometheus or Alertmanager do not answer."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from llmpulse.console.app import Console, create_app
from llmpulse.console.bundle import alerts_of, slack_message
from llmpulse.console.settings import ConsoleSettings, ConsoleSettingsError
from llmpulse.console.sources import AlertmanagerClient, PrometheusClient
from llmpulse.processor.quality.agreement import agreement_table, cohens_kappa
from llmpulse.processor.quality.store import FlaggedRecord, FlaggedStore, StoredSample
from llmpulse.stack import components

CLOSED = f"http://127.0.0.1:{components.free_port()}"  # nothing listens here


def _record(verdict: str | None, scores: dict[str, float] | None = None, **kw: Any) -> FlaggedRecord:
    return FlaggedRecord(
        feature=kw.get("feature", "chat"),
        model="m",
        trace_id=b"\x01" * 16,
        sources=("judge",),
        reasons=(),
        created=kw.get("created", time.time()),
        scores=scores or {},
        judge_verdict=verdict,
        output=kw.get("output", "answer"),
        service=kw.get("service", "shop"),
    )


def test_kappa_matches_hand_computations() -> None:
    # p_o = 0.7, p_e = 0.7*0.6 + 0.3*0.4 = 0.54: (0.7 - 0.54) / 0.46
    assert cohens_kappa(5, 2, 1, 2) == pytest.approx(0.16 / 0.46)
    assert cohens_kappa(3, 0, 0, 4) == pytest.approx(1.0)
    # p_o = 0, p_e = 0.5 * 0.5 * 2 = 0.5: (0 - 0.5) / 0.5
    assert cohens_kappa(0, 2, 2, 0) == pytest.approx(-1.0)
    assert cohens_kappa(4, 0, 0, 0) is None  # both raters said "bad" throughout
    assert cohens_kappa(0, 0, 0, 0) is None


def test_agreement_per_dimension_uses_the_judges_failing_threshold() -> None:
    samples = [
        StoredSample(1, _record("bad", {"correctness": 1.0, "tone": 4.0}), "bad", None, None),
        StoredSample(2, _record("good", {"correctness": 2.0, "tone": 5.0}), "bad", "subtle", None),
        StoredSample(3, _record("good", {"correctness": 5.0, "tone": 2.0}), "good", None, None),
        StoredSample(4, _record("bad"), None, None, None),  # no human label: not counted
        StoredSample(5, _record(None), "bad", None, None),  # never judged: not counted
    ]
    table = {a.dimension: a for a in agreement_table(samples)}
    assert list(table) == ["overall", "correctness", "tone"]
    overall = table["overall"].confusion
    assert (
        overall.both_bad,
        overall.judge_bad_human_good,
        overall.judge_good_human_bad,
        overall.both_good,
    ) == (
        1,
        0,
        1,
        1,
    )
    assert [s.id for s in table["overall"].disagreements] == [2]
    assert overall.precision == 1.0 and overall.recall == 0.5
    correctness = table["correctness"].confusion  # 2.0 is at the threshold: the judge says bad
    assert (correctness.both_bad, correctness.both_good) == (2, 1) and correctness.kappa == pytest.approx(1.0)
    tone = table["tone"].confusion
    assert (tone.judge_bad_human_good, tone.judge_good_human_bad) == (1, 2)


def test_slack_message_escapes_content_and_links_the_console() -> None:
    bundle = {
        "alertname": "LLMPulseQualitySPCAlarm",
        "service": "shop",
        "feature": "chat",
        "status": "firing",
        "summary": "<!channel> out of control",
        "console_url": "http://127.0.0.1:9470/incident/abc",
        "concentrates_in": [{"dimension": "model", "value": "gpt-<b>"}],
        "what_changed": [],
        "flagged_samples": 1,
        "top_samples": [
            {"id": 7, "reasons": ["low_overall"], "output": "<https://evil.example|click> & more"}
        ],
    }
    message = slack_message({"status": "firing"}, [bundle])
    text = message["blocks"][0]["text"]["text"]
    assert text.startswith("*<http://127.0.0.1:9470/incident/abc|LLMPulseQualitySPCAlarm · shop / chat>*")
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "&lt;https://evil.example|click&gt; &amp; more" in text
    assert "model gpt-&lt;b&gt;" in text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "not an Alertmanager webhook payload"),
        ({"alerts": "x"}, "not an Alertmanager webhook payload"),
        ({"alerts": [{"labels": "x"}]}, "has no 'labels' object"),
    ],
)
def test_a_payload_that_is_not_alertmanagers_is_refused_in_one_line(payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alerts_of(payload)


def _client(
    tmp_path: Path, *, token: str | None = None, forward: httpx.MockTransport | None = None, **kw: Any
) -> tuple[TestClient, FlaggedStore]:
    store = FlaggedStore(tmp_path / "q.db")
    settings = ConsoleSettings(
        db_path=str(tmp_path / "q.db"),
        prometheus_url=CLOSED,
        alertmanager_url=CLOSED,
        token=token,
        forward_url="http://127.0.0.1:1/hook" if forward else None,
        **kw,
    )
    console = Console(
        settings,
        store=store,
        prometheus=PrometheusClient(CLOSED, timeout=1.0),
        alertmanager=AlertmanagerClient(CLOSED, timeout=1.0),
        forward_client=httpx.Client(transport=forward) if forward else None,
    )
    return TestClient(create_app(console), base_url="http://127.0.0.1:9470", follow_redirects=False), store


def test_pages_stay_up_when_prometheus_and_alertmanager_do_not_answer(tmp_path: Path) -> None:
    client, store = _client(tmp_path)
    store.add(_record("bad"))
    home = client.get("/")
    assert home.status_code == 200
    assert f"Prometheus at {CLOSED}/api/v1/query did not answer" in home.text
    assert f"Alertmanager at {CLOSED}/api/v2/alerts did not answer" in home.text
    assert 'id="queue-total">1<' in home.text
    assert client.get("/judge").status_code == 200
    assert client.get("/incident/nope").status_code == 404


def test_labels_are_idempotent_and_bad_labels_are_refused(tmp_path: Path) -> None:
    client, store = _client(tmp_path)
    sample = store.add(_record("bad"))
    form = {"label": "bad", "note": "wrong", "next": "/incident/x"}
    first = client.post(f"/samples/{sample}/label", data=form)
    assert first.status_code == 303 and first.headers["location"].startswith("/incident/x?message=")
    labelled = store.get(sample)
    assert labelled is not None and (labelled.label, labelled.label_note) == ("bad", "wrong")
    assert client.post(f"/samples/{sample}/label", data=form).status_code == 303
    again = store.get(sample)
    assert again is not None and (again.label, again.label_note) == ("bad", "wrong")
    assert client.post(f"/samples/{sample}/label", data={"label": "meh"}).status_code == 400
    assert client.post("/samples/999/label", data={"label": "good"}).status_code == 404
    outside = client.post(f"/samples/{sample}/label", data={"label": "good", "next": "//evil.example/"})
    assert outside.headers["location"].startswith("/?message=")  # never redirects off the console
    lines = client.get("/export.jsonl").text.splitlines()
    assert [json.loads(x)["label"] for x in lines] == ["good"]


def test_access_rules(tmp_path: Path) -> None:
    client, _ = _client(tmp_path, token="s3cret")
    assert client.get("/", headers={"host": "evil.example:9470"}).status_code == 421
    assert client.get("/").status_code == 303 and client.get("/").headers["location"] == "/login"
    assert client.get("/api/bundles/x").status_code == 401
    assert client.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/login", data={"token": "wrong"}).status_code == 401
    ok = client.post("/login", data={"token": "s3cret"})
    assert ok.status_code == 303 and "httponly" in ok.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the cookie now
    cross = client.post("/samples/1/label", data={"label": "bad"}, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    fetch = client.post("/samples/1/label", data={"label": "bad"}, headers={"sec-fetch-site": "cross-site"})
    assert fetch.status_code == 403


def test_reverse_proxy_header_mode(tmp_path: Path) -> None:
    settings = {"auth_header": "X-Forwarded-User", "trusted_proxies": ("10.0.0.0/8",)}
    client, store = _client(tmp_path, **settings)
    app = client.app
    base = "http://127.0.0.1:9470"
    proxy = TestClient(app, base_url=base, follow_redirects=False, client=("10.1.2.3", 40000))
    other = TestClient(app, base_url=base, follow_redirects=False, client=("192.0.2.7", 40000))
    signed_in = {"x-forwarded-user": "alice@example.com"}
    assert proxy.get("/", headers=signed_in).status_code == 200
    assert proxy.get("/").status_code == 401  # the proxy let a request through without a user
    assert other.get("/", headers=signed_in).status_code == 403  # the header from anyone else
    assert other.get("/healthz").status_code == 200
    sample = store.add(_record("bad"))
    labelled = proxy.post(f"/samples/{sample}/label", data={"label": "bad"}, headers=signed_in)
    assert labelled.status_code == 303
    assert (
        other.post(f"/samples/{sample}/label", data={"label": "good"}, headers=signed_in).status_code == 403
    )
    got = store.get(sample)
    assert got is not None and got.label == "bad"
    # with a token too, a direct client (Alertmanager) may use the token instead
    both, _ = _client(tmp_path / "both", token="s3cret", **settings)
    direct = TestClient(both.app, base_url=base, follow_redirects=False, client=("192.0.2.7", 40000))
    assert direct.get("/api/bundles/x", headers={"authorization": "Bearer s3cret"}).status_code == 404
    assert direct.get("/api/bundles/x", headers=signed_in).status_code == 401
    with pytest.raises(ConsoleSettingsError, match="--trusted-proxy"):
        ConsoleSettings(db_path="x", auth_header="X-Forwarded-User")
    with pytest.raises(ConsoleSettingsError, match="CIDR"):
        ConsoleSettings(db_path="x", auth_header="X-User", trusted_proxies=("proxy.example",))
    assert ConsoleSettings(db_path="x", host="0.0.0.0", **settings).token is None  # type: ignore[arg-type]


def test_the_webhook_forwards_one_slack_message_per_delivery(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200)

    client, store = _client(tmp_path, forward=httpx.MockTransport(hook), forward_format="slack")
    store.add(_record("bad", output="<script>alert(1)</script>"))
    alert = {
        "status": "firing",
        "labels": {"alertname": "LLMPulseQualitySPCAlarm", "service": "shop", "feature": "chat"},
        "annotations": {"summary": "shop: out of control"},
        "startsAt": "2026-12-03T07:00:00.123456789Z",
        "fingerprint": "f00",
    }
    resolved = {**alert, "status": "resolved", "fingerprint": "f01"}
    answer = client.post("/api/alertmanager", json={"status": "firing", "alerts": [alert, resolved]})
    assert answer.json() == {"bundles": 1, "forwarded": True, "forward_status": 200}
    assert len(sent) == 1 and "/incident/f00|LLMPulseQualitySPCAlarm" in sent[0]["blocks"][0]["text"]["text"]
    assert "&lt;script&gt;" in sent[0]["blocks"][0]["text"]["text"]
    kept = client.get("/api/bundles/f00").json()
    assert kept["console_url"] == "http://127.0.0.1:9470/incident/f00" and kept["flagged_samples"] == 1
    assert client.post("/api/alertmanager", content=b"{nope").status_code == 400


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "beyond loopback: set LLMPULSE_CONSOLE_TOKEN"),
        (["--trace-url-template", "http://jaeger/trace"], "has no {trace_id} placeholder"),
        (["--token-file", "/nonexistent/token"], "token file /nonexistent/token"),
        (["--incident-window", "0"], "must be a positive number of seconds"),
    ],
)
def test_bad_settings_get_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "console", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmpulse console: ") and message in lines[0], lines


def test_settings_need_a_token_beyond_loopback() -> None:
    with pytest.raises(ConsoleSettingsError, match="beyond loopback"):
        ConsoleSettings(db_path="x", host="192.0.2.1")
    assert ConsoleSettings(db_path="x", host="192.0.2.1", token="t").base_url == "http://192.0.2.1:9470"


def test_a_port_in_use_gets_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "llmpulse.cli", "console", "--port", str(port), "--db", "unused.db"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (
        f"llmpulse console: cannot listen on 127.0.0.1:{port}: Address already in use;"
        " is another console running? choose another port with --port"
    )


def test_concentration_compares_the_flagged_share_with_the_calls_share() -> None:
    from collections import Counter

    from llmpulse.console.incident import _dimension_rows

    # v2 serves 70% of the calls and holds 6 of 7 flagged samples: the suspect; v0 had calls only
    rows = _dimension_rows("prompt version", Counter({"v2": 6, "v1": 1}), {"v2": 70.0, "v1": 25.0, "v0": 5.0})
    assert [(r.value, r.flagged, r.concentrates) for r in rows] == [
        ("v2", 6, True),
        ("v1", 1, False),
        ("v0", 0, False),
    ]
    assert rows[0].calls_share == 0.7 and rows[2].share == 0.0
    # a value serving 90% of the calls and holding 90% of the flagged samples is no suspect
    even = _dimension_rows("app version", Counter({"a": 9, "b": 1}), {"a": 90.0, "b": 10.0})
    assert not any(r.concentrates for r in even)
    # one value serving every call is everywhere: no suspect either
    only = _dimension_rows("app version", Counter({"3.1": 7}), {"3.1": 40.0})
    assert [r.concentrates for r in only] == [False]
    # without call counts (the response model): the largest share of the flagged samples
    unknown = _dimension_rows("response model", Counter({"lite": 5, "full": 2}), {})
    assert [(r.value, r.concentrates, r.calls_share) for r in unknown] == [
        ("lite", True, None),
        ("full", False, None),
    ]
