"""``llmpulse.context(...)``: application context put on every span below it.

The attributes live in the OpenTelemetry context, so they follow the trace: into asyncio
tasks (which copy the context), and into threads when thread propagation is on (the
default of ``instrument()``, see :mod:`llmpulse.instrumentation.threads`). Inner contexts
override the keys they set and keep the rest. User ids are replaced by a keyed pseudonym
(``enduser.pseudo.id``, HMAC-SHA256 under a per-deployment salt) unless the app opts out; a
session or conversation id that contains personal data (an e-mail address, a phone number, ...)
is replaced by its pseudonym too, other ids are kept as they are so they can be looked up.

The salt is ``LLMPULSE_USER_ID_SALT`` when set (set the same value on every instance so a user
has one pseudonym everywhere); otherwise a random salt kept in ``$XDG_STATE_HOME/llmpulse/
user-id-salt`` (``~/.local/state`` by default, created once, mode 0600), so pseudonyms are stable on
one machine and cannot be reversed with a dictionary of likely ids. Where that file cannot be
written the salt is random per process, with a warning.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.contract.environment_variables import LLMPULSE_USER_ID_SALT
from llmpulse.contract.redaction import Redactor

_KEY = otel_context.create_key("llmpulse.context")
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})

F = TypeVar("F", bound=Callable[..., Any])


def current_attributes(ctx: otel_context.Context | None = None) -> Mapping[str, AttributeValue]:
    """The context attributes in force here, or in ``ctx`` (empty when there are none)."""
    value = otel_context.get_value(_KEY, ctx)
    return cast("Mapping[str, AttributeValue]", value) if value is not None else _EMPTY


def with_attributes(
    extra: Mapping[str, AttributeValue],
    ctx: otel_context.Context | None = None,
    *,
    replacing: tuple[str, ...] = (),
) -> otel_context.Context:
    """``ctx`` (default: the current context) with ``extra`` added to its context attributes,
    after removing the keys in ``replacing``."""
    merged = {k: v for k, v in current_attributes(ctx).items() if k not in replacing}
    merged.update(extra)
    return otel_context.set_value(_KEY, MappingProxyType(merged), ctx)


_log = logging.getLogger(__name__)
_SALT_FILE_NAME = "user-id-salt"


def deployment_salt() -> str:
    """``LLMPULSE_USER_ID_SALT``, else the salt read from, or created once in, the state directory."""
    if configured := os.environ.get(LLMPULSE_USER_ID_SALT):
        return configured
    return _load_or_create_salt()


@functools.cache
def _load_or_create_salt() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    path = os.path.join(state, "llmpulse", _SALT_FILE_NAME)
    try:
        with open(path, encoding="ascii") as f:
            if salt := f.read().strip():
                return salt
    except OSError:
        pass
    salt = secrets.token_hex(32)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(salt + "\n")
        try:
            os.link(tmp, path)  # the first process to create the file wins; the others read it
        except FileExistsError:
            with open(path, encoding="ascii") as f:
                salt = f.read().strip() or salt
        finally:
            os.unlink(tmp)
    except OSError as exc:
        _log.warning(
            "event=user_id_salt_not_saved path=%s error=%s effect=pseudonyms_differ_per_process "
            "hint=set LLMPULSE_USER_ID_SALT to the same value on every instance",
            path,
            exc.strerror or exc,
        )
    return salt


def hash_user_id(user_id: str, salt: str = "") -> str:
    """The pseudonym recorded instead of a raw user id (``salt`` empty: the deployment salt)."""
    key = (salt or deployment_salt()).encode()
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:32]


_REDACT = Redactor()


def _opaque_id(value: str) -> str:
    """``value`` itself, or its pseudonym when it carries personal data the redactor knows."""
    return value if _REDACT(value) == value else "pseudo-" + hash_user_id(value, _user_id_policy()[1])


class context:
    """Attach application context to every span created below this point.

    Use as a context manager (``with llmpulse.context(feature="support-bot"): ...``) or as a
    decorator on sync or async functions. ``prompt_version``, ``app_version``, ``query_category``
    and ``rag_index_version`` scope a regression on the incident page: keep each to a small set
    of values (they become bounded metric labels; a category is the app's own, never the query
    text). ``app_version`` defaults, in the processor, to the resource's ``service.version``.
    ``user_id`` is hashed before it is recorded unless
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
        query_category: str | None = None,
        rag_index_version: str | None = None,
        conversation_id: str | None = None,
        hash_user_id: bool | None = None,
    ) -> None:
        self._hash_user_id = hash_user_id
        self._user_id = user_id
        fixed: dict[str, AttributeValue] = {}
        for key, value in (
            (A.FEATURE, feature),
            (A.PROMPT_VERSION, prompt_version),
            (A.APP_VERSION, app_version),
            (A.QUERY_CATEGORY, query_category),
            (A.RAG_INDEX_VERSION, rag_index_version),
        ):
            if value is not None:
                fixed[key] = str(value)
        for key, value in ((A.SESSION_ID, session_id), (A.GEN_AI_CONVERSATION_ID, conversation_id)):
            if value is not None:
                fixed[key] = _opaque_id(str(value))
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
