"""What a span's resource says about where it came from: the ``service`` and
``deployment_environment`` labels of every metric derived from it."""

from __future__ import annotations

from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M

SERVICE_KEYS = (
    A.SERVICE_NAME,
    A.DEPLOYMENT_ENVIRONMENT_NAME,
    A.LEGACY_DEPLOYMENT_ENVIRONMENT,
    A.SERVICE_VERSION,
)
"""The resource attributes read, in the order :func:`resource_context` reads them."""
_SERVICE_KEYS = {key: i for i, key in enumerate(SERVICE_KEYS)}


def context_of(found: list[str]) -> tuple[str, str, str]:
    """``(service, environment, version)`` from the string values of :data:`SERVICE_KEYS`."""
    return found[0] or M.UNKNOWN_SERVICE, found[1] or found[2], found[3]


def resource_context(resource: Any) -> tuple[str, str, str]:
    """``(service, environment, version)``: :func:`resource_labels` and the resource's
    ``service.version`` (``""`` when absent), read in one pass."""
    found = ["", "", "", ""]
    get = _SERVICE_KEYS.get
    for kv in resource.attributes:
        i = get(kv.key)
        if i is not None:
            found[i] = kv.value.string_value
    return context_of(found)


def resource_labels(resource: Any) -> tuple[str, str]:
    """``(service, environment)`` of an OTLP ``Resource``: its ``service.name`` (the OTel default
    ``unknown_service`` when absent or empty) and ``deployment.environment.name`` (else the older
    ``deployment.environment``, else ``""``). Read once per resource, not per span."""
    service, environment, _ = resource_context(resource)
    return service, environment
