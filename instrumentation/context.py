"""``llmpulse.context(...)``: application context put on every span below it.

The attributes live in the OpenTelemetry context, so they follow the trace: into asyncio
tasks (which copy the context), and into threads when thread propagation is on (the
default of ``instrument()``, see :mod:`llmpulse.instrumentation.threads`). Inner contexts
override the keys they set and keep the rest. User ids are replaced by a salted SHA-256
pseudonym (``enduser.pseudo.id``) unless the app opts out.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A

_KEY = otel_context.create_key("llmpulse.context")
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})

F = TypeVar("F", bound=Callable[..., Any])


def current_attributes(ctx: otel_context.Context | None = None) -> Mapping[str, AttributeValue]:
    """The context attributes in force here, or in ``ctx`` (empty when there are none)."""
    value = otel_context.get_value(_KEY, ctx)
    return cast("Mapping[str, AttributeValue]", value) if value is not None else _EMPTY


def hash_user_id(user_id: str, salt: str = "") -> str:
    """The pseudonym recorded instead of a raw user id."""
    return hashlib.sha256(f"{salt}\x00{user_id}".encode()).hexdigest()[:32]


class context:
    """Attach application context to every span created below this point.

    Use as a context manager (``with llmpulse.context(feature="support-bot"): ...``) or as a
    decorator on sync or async functions. ``user_id`` is hashed before it is recorded unless
    ``hash_user_id=False`` is given here or ``hash_user_ids=False`` in the instrumentation
    settings.
    """

    def __init__(
        self,
        *,
        feature: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        prompt_version: str | None = None,
        app_version: str | None = None,
        conversation_id: str | None = None,
        hash_user_id: bool | None = None,
    ) -> None:
        self._hash_user_id = hash_user_id
        self._user_id = user_id
        fixed: dict[str, AttributeValue] = {}
        for key, value in (
            (A.FEATURE, feature),
            (A.SESSION_ID, session_id),
            (A.PROMPT_VERSION, prompt_version),
            (A.APP_VERSION, app_version),
            (A.GEN_AI_CONVERSATION_ID, conversation_id),
        ):
            if value is not None:
                fixed[key] = str(value)
        self._fixed = fixed
        self._tokens: list[object] = []

    def _attributes(self) -> dict[str, AttributeValue]:
        attrs = dict(self._fixed)
        if self._user_id is not None:
            hashing, salt = _user_id_policy()
            if self._hash_user_id is not None:
                hashing = self._hash_user_id
            if hashing:
                attrs[A.ENDUSER_PSEUDO_ID] = hash_user_id(str(self._user_id), salt)
            else:
                attrs[A.ENDUSER_ID] = str(self._user_id)
        return attrs

    def _enter(self) -> object:
        merged = {**current_attributes(), **self._attributes()}
        return otel_context.attach(otel_context.set_value(_KEY, MappingProxyType(merged)))

    def __enter__(self) -> context:
        self._tokens.append(self._enter())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    async def __aenter__(self) -> context:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        """Decorate ``func`` so each call runs inside this context."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = self._enter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    otel_context.detach(token)  # type: ignore[arg-type]

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = self._enter()
            try:
                return func(*args, **kwargs)
            finally:
                otel_context.detach(token)  # type: ignore[arg-type]

        return cast(F, wrapper)


def _user_id_policy() -> tuple[bool, str]:
    """(hash?, salt) from the active instrumentation, or hashing with no salt when there is none."""
    from llmpulse.instrumentation.instrumentor import active_runtime

    runtime = active_runtime()
    if runtime is None:
        return True, ""
    return runtime.settings.hash_user_ids, runtime.settings.user_id_salt
