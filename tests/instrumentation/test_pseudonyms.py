"""User-id pseudonyms: keyed by a per-deployment salt, stable across processes, not reversible by
hashing a dictionary of likely ids; session ids that carry personal data are pseudonymised."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import llmpulse
from llmpulse.contract import attributes as A
from llmpulse.instrumentation.context import hash_user_id

MESSAGES = [{"role": "user", "content": "hi"}]
PSEUDONYM = (
    "from llmpulse.instrumentation.context import hash_user_id; print(hash_user_id('alice@example.com'))"
)


def _pseudonym_in_a_fresh_process(state: Path, **env: str) -> str:
    environ = {**os.environ, "XDG_STATE_HOME": str(state), **env}
    if "LLMPULSE_USER_ID_SALT" not in env:
        environ.pop("LLMPULSE_USER_ID_SALT", None)
    out = subprocess.run(
        [sys.executable, "-c", PSEUDONYM], env=environ, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_the_pseudonym_is_not_the_unsalted_digest_a_dictionary_reverses() -> None:
    unsalted = hashlib.sha256(b"\x00alice@example.com").hexdigest()[:32]
    assert hash_user_id("alice@example.com") != unsalted
    assert (
        hash_user_id("alice@example.com", "pepper")
        != hashlib.sha256(b"pepper\x00alice@example.com").hexdigest()[:32]
    )


def test_the_deployment_salt_is_created_once_private_and_shared_by_processes(tmp_path: Path) -> None:
    first = _pseudonym_in_a_fresh_process(tmp_path)
    salt_file = tmp_path / "llmpulse" / "user-id-salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    assert len(salt_file.read_text().strip()) == 64
    assert _pseudonym_in_a_fresh_process(tmp_path) == first
    assert _pseudonym_in_a_fresh_process(tmp_path / "other-machine") != first


def test_a_configured_salt_gives_the_same_pseudonym_on_every_machine(tmp_path: Path) -> None:
    one = _pseudonym_in_a_fresh_process(tmp_path / "a", LLMPULSE_USER_ID_SALT="pepper")
    other = _pseudonym_in_a_fresh_process(tmp_path / "b", LLMPULSE_USER_ID_SALT="pepper")
    assert one == other
    assert not (tmp_path / "a" / "llmpulse").exists()


def test_an_unwritable_state_directory_still_pseudonymises(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    assert len(_pseudonym_in_a_fresh_process(blocker)) == 32


def test_session_ids_with_personal_data_are_pseudonymised_opaque_ones_kept(spans, oai) -> None:
    with llmpulse.context(session_id="jane@example.com", conversation_id="conv-123"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = spans.one_llm().attributes or {}
    assert attrs[A.SESSION_ID] == "pseudo-" + hash_user_id("jane@example.com")
    assert attrs[A.GEN_AI_CONVERSATION_ID] == "conv-123"
