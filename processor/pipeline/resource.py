"""What a span's resource says about where it came from: the ``service`` and
``deployment_environment`` labels of every metric derived from it."""

from __future__ import annotations

from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M

SERVICE_KEYS = (A.SERVICE_NAME, A.DEPLOYMENT_ENVIRONMENT_NAME, A.LEGACY_DEPLOYMENT_ENVIRONMENT)
"""The resource attributes the labels come from, in the order :func:`resource_labels` reads them."""
_SERVICE_KEYS = {key: i for i, key in enumerate(SERVICE_KEYS)}


def resource_labels(resource: Any) -> tuple[str, str]:
    """``(service, environment)`` of an OTLP ``Resource``: its ``service.name`` (the OTel default
    ``unknown_service`` when absent or empty) and ``deployment.environment.name`` (else the older
    ``deployment.environment``, else ``""``). Read once per resource, not per span."""
    found = ["", "", ""]
    get = _SERVICE_KEYS.get
    for kv in resource.attributes:
        i = get(kv.key)
        if i is not None:
            found[i] = kv.value.string_value
    return found[0] or M.UNKNOWN_SERVICE, found[1] or found[2]
