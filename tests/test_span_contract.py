"""The span contract module and its documentation page agree key for key."""

from __future__ import annotations

import re

from llmpulse.contract import attributes
from llmpulse.stack import components

DOC = components.REPO_ROOT / "docs" / "span-contract.md"


def _contract_keys() -> set[str]:
    """Attribute keys (dotted names) and environment variables defined in the module."""
    values = {v for k, v in vars(attributes).items() if k.isupper() and isinstance(v, str)}
    return {v for v in values if "." in v or v.isupper()}


def _documented_keys() -> set[str]:
    """First-column entries of the tables in the page."""
    return set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), flags=re.MULTILINE))


def test_every_contract_key_is_documented() -> None:
    missing = _contract_keys() - _documented_keys()
    assert not missing, (
        f"keys in llmpulse.contract.attributes missing from docs/span-contract.md: {sorted(missing)}"
    )


def test_every_documented_key_is_in_the_contract() -> None:
    documented = {k for k in _documented_keys() if "." in k or k.isupper()}
    extra = documented - _contract_keys()
    assert not extra, (
        f"keys documented in docs/span-contract.md but not in llmpulse.contract.attributes: {sorted(extra)}"
    )


def test_values_are_unique() -> None:
    keys = [v for k, v in vars(attributes).items() if k.isupper() and isinstance(v, str) and "." in v]
    assert len(keys) == len(set(keys)), "two constants name the same attribute key"
