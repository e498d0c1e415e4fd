"""Redaction: every kind of secret the built-in patterns know, no false positives on common
text, and no input that makes a pattern backtrack over the text (a hang detector, not a timing)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from llmpulse.contract.content import TRUNCATION_MARKER
from llmpulse.contract.redaction import REDACTION_WINDOW, Redactor, redact_truncated

REDACT = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key=[REDACTED:password]",
        ),
        ("secret key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "secret key [REDACTED:aws-secret] here"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc ok", "stripe [REDACTED:api-key] ok"),
        ("restricted rk_test_51HbGqKLmNoPqRsTuV", "restricted [REDACTED:api-key]"),
        ("maps AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI.", "maps [REDACTED:api-key]."),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0 end",
            "jwt [REDACTED:jwt] end",
        ),
        ("ssn 123-45-6789.", "ssn [REDACTED:ssn]."),
        (
            "password=hunter2 and db_password: 's3cr3t!'",
            "password=[REDACTED:password] and db_password: [REDACTED:password]",
        ),
        ('{"password": "correct horse"}', '{"password": [REDACTED:password]}'),
        ("PASSWD = x9!", "PASSWD = [REDACTED:password]"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc+/=\n-----END RSA PRIVATE KEY-----\nafter",
            "[REDACTED:private-key]\nafter",
        ),
        ("cut -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B", "cut [REDACTED:private-key]"),
        ("server 10.0.0.12 down", "server [REDACTED:ip] down"),
        ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx!", "slack [REDACTED:api-key]!"),
        ("app xapp-1-A0123456789-1234567890123-abcdef", "app [REDACTED:api-key]"),
        ("mail bob@example.com, (555) 123-4567", "mail [REDACTED:email], [REDACTED:phone]"),
    ],
)
def test_each_kind_is_redacted(text: str, expected: str) -> None:
    assert REDACT(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "git 3f786850e387550fdab836ed7e6dc881de23001b",
        "python 3.11.4 released on 2024-01-15 for 100.50 USD",
        "npm install left-pad@1.3.0",
        "the secret of a good answer is brevity",
        "see https://example.com/docs/getting-started?page=2",
    ],
)
def test_common_text_is_kept(text: str) -> None:
    assert REDACT(text) == text


def test_a_secret_straddling_the_truncation_limit_is_redacted_whole() -> None:
    text = "x" * 90 + " sk-ant-api03-AbCdEfGhIjKlMnOpQrSt " + "y" * 5000
    out = redact_truncated(REDACT, text, 100, TRUNCATION_MARKER)
    assert out == "x" * 90 + " [REDACTED" + TRUNCATION_MARKER
    assert "sk-" not in out


def test_a_huge_text_is_cut_before_it_is_redacted() -> None:
    seen: list[int] = []

    def hook(text: str) -> str:
        seen.append(len(text))
        return text

    out = redact_truncated(Redactor(hook), "a" * 1_000_000, 500, TRUNCATION_MARKER)
    assert out == "a" * 500 + TRUNCATION_MARKER
    assert seen == [500 + REDACTION_WINDOW]


def test_the_marker_only_when_the_redacted_text_is_cut() -> None:
    cut = redact_truncated(REDACT, "mail a@b.example.com", 20, TRUNCATION_MARKER)
    assert cut == "mail [REDACTED:email" + TRUNCATION_MARKER
    assert redact_truncated(REDACT, "short", 20, TRUNCATION_MARKER) == "short"


ADVERSARIAL = {
    "email-dots": "'a.' * 100_000",
    "digit-dots": "'1.' * 100_000",
    "at-chain": "'a@' * 100_000",
    "sk-chain": "'sk-' * 70_000",
    "digits": "'1' * 200_000",
    "digit-spaces": "'1 ' * 100_000",
    "pem": "'-----BEGIN PRIVATE KEY-----' * 8000",
    "jwt": "'eyJ' * 70_000",
    "password": "'password=' * 25_000",
}


def test_no_crafted_input_makes_redaction_hang() -> None:
    # 200 KB of each crafted text; the quadratic patterns this guards against took over a minute
    # on 100 KB ('a.' * 48,000: 36 s), linear ones take well under a second. The limit is a hang
    # detector with two orders of magnitude of margin, not a speed target (benchmarks/
    # bench_redaction.py measures the cost per KB).
    program = textwrap.dedent(
        """
        from llmpulse.contract.redaction import Redactor
        redact = Redactor()
        for text in [{texts}]:
            redact(text)
        """
    ).format(texts=", ".join(ADVERSARIAL.values()))
    try:
        subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("redaction did not finish 1.8 MB of crafted text in 60 s: a pattern backtracks")
