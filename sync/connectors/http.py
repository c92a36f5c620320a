"""One way to talk HTTP to a remote service: timeouts, retries, a deadline, redaction.

Every connector builds its client with `make_client` and sends every request through `send`, so
all services share the same rules:

- explicit timeouts on the socket plus an overall deadline per attempt (`RetryPolicy.
  request_timeout`), so a server that drips its body one byte at a time cannot hold a request;
- redirects are never followed: a 3xx is reported as an error (a moved API is a configuration
  problem, and following it could carry an Authorization header to another host);
- retries with exponential backoff and full jitter for transport errors, 5xx and 429, honouring
  `Retry-After` (seconds or HTTP date). A request that is not idempotent is retried only when the
  failure proves the server did not process it (connection refused, 429, 503);
- a 401 calls `on_unauthorized` once (the session refreshes its token) and replays once;
- `redact` strips credentials from any text before it reaches a log line or an exception.

Nothing in here knows about a particular service; `classify` turns a service's error body into a
`ServiceError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from sync import jsoncodec

log = logging.getLogger(__name__)

CATEGORIES = frozenset(
    {"auth", "validation", "not_found", "conflict", "rate_limit", "transient", "limit", "internal"}
)


# ---------------------------------------------------------------------------------------------
# Redaction

_REDACTED = "[REDACTED]"
# Names whose values are secrets wherever they appear (query string, form body, JSON, repr).
_SECRET_NAMES = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code_verifier",
    "assertion",
    "password",
    "code",
)
_NAMES = "|".join(_SECRET_NAMES)
_BEARER = re.compile(r"(?i)\b(bearer|oauth)(\s+)[^\s\"',;]+")
# key=value in a query string or a form body; `\b` keeps "errorCode=" and "status_code=" intact.
_PAIR = re.compile(rf"(?i)(?<![\w-])({_NAMES})=([^&\s\"'#]+)")
# "key": "value" in JSON, or 'key': 'value' in a Python repr.
_JSON = re.compile(rf"(?i)([\"'])({_NAMES})\1(\s*:\s*)([\"'])(?:\\.|(?!\4).)*\4")
# A bare JSON Web Token (header.payload.signature), e.g. a JWT bearer assertion.
_JWT = re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")


def redact(text: str) -> str:
    """Return `text` with bearer tokens, OAuth tokens, secrets, codes and JWTs replaced."""
    if not text:
        return text
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", text)
    text = _PAIR.sub(lambda m: f"{m.group(1)}={_REDACTED}", text)
    text = _JSON.sub(
        lambda m: (
            f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{_REDACTED}{m.group(4)}"
        ),
        text,
    )
    return _JWT.sub(_REDACTED, text)


def safe_url(url: httpx.URL | str) -> str:
    """A URL fit for a log line: no userinfo, no query string, no fragment."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


# ---------------------------------------------------------------------------------------------
# Errors


class ServiceError(Exception):
    """What every connector raises. The message is redacted and says what to do next.

    `category` is one of CATEGORIES; `retryable` says whether trying again later can help;
    `retry_at` is when a limit frees up, if the service said so.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        category: str,
        retryable: bool = False,
        status: int | None = None,
        code: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"unknown error category {category!r}")
        self.message = redact(message)
        super().__init__(self.message)
        self.service = service
        self.category = category
        self.retryable = retryable
        self.status = status
        self.code = code
        self.retry_at = retry_at

    def __repr__(self) -> str:
        return (
            f"ServiceError({self.message!r}, service={self.service!r}, "
            f"category={self.category!r}, retryable={self.retryable}, status={self.status}, "
            f"code={self.code!r})"
        )


# ---------------------------------------------------------------------------------------------
# Policy and client


@dataclass(frozen=True)
class RetryPolicy:
    """How hard `send` tries.

    `attempts` counts every try (1 = no retry). `request_timeout` is the overall deadline of one
    attempt, connection + request + the whole response body; hitting it is not retried (the
    server took the request and may be acting on it). A `Retry-After` longer than
    `max_delay` is not slept through: `send` raises at once with `retry_at` set, so a caller never
    blocks for minutes on one request.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    request_timeout: float = 30.0

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**n)]."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        return random.uniform(0, ceiling)


def make_client(
    base_url: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 30.0,
) -> httpx.AsyncClient:
    """An AsyncClient with explicit timeouts that never follows redirects."""
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
        headers={"Accept": "application/json", "User-Agent": "reminder-sync/0.1"},
    )


# ---------------------------------------------------------------------------------------------
# Sending

Classifier = Callable[[httpx.Response], "ServiceError | None"]

# Failures that prove the request never reached the server's application logic.
_UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Statuses that mean "refused before processing": safe to replay even a create.
_UNPROCESSED_STATUSES = frozenset({429, 503})
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def default_error(response: httpx.Response, service: str) -> ServiceError:
    """A ServiceError from the status alone, for responses `classify` did not recognise."""
    status = response.status_code
    if 300 <= status < 400:
        target = response.headers.get("location", "")
        where = f" to {safe_url(target)}" if target else ""
        return ServiceError(
            f"{service} answered {status} with a redirect{where}; redirects are not followed. "
            "Check the configured URL.",
            service=service,
            category="internal",
            status=status,
            code="REDIRECT",
        )
    category, retryable = _category_for_status(status)
    return ServiceError(
        f"{service} answered HTTP {status} {response.reason_phrase}".rstrip(),
        service=service,
        category=category,
        retryable=retryable,
        status=status,
        code=f"HTTP_{status}",
    )


def _category_for_status(status: int) -> tuple[str, bool]:
    if status in (401, 403):
        return "auth", False
    if status in (404, 410):
        return "not_found", False
    if status in (409, 412):
        return "conflict", False
    if status == 429:
        return "rate_limit", True
    if status in _RETRYABLE_STATUSES:
        return "transient", True
    if 400 <= status < 500:
        return "validation", False
    return "internal", False


def _transport_error(exc: Exception, service: str, method: str, url: str) -> ServiceError:
    if isinstance(exc, _UNSENT_ERRORS):
        what, code = "could not connect", "CONNECT_ERROR"
    elif isinstance(exc, httpx.TimeoutException):
        what, code = "timed out", "TIMEOUT"
    else:
        what, code = f"connection failed ({type(exc).__name__})", "NETWORK_ERROR"
    return ServiceError(
        f"{service}: {method} {safe_url(url)} {what}. Check the network; the next sync retries.",
        service=service,
        category="transient",
        retryable=True,
        code=code,
    )


def response_json(response: httpx.Response) -> Any:
    """The response's JSON body (ValueError if it is not JSON; NaN and Infinity are not)."""
    return jsoncodec.loads(response.content)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    idempotent: bool,
    headers_factory: Callable[[], Awaitable[dict[str, str]]] | None = None,
    on_unauthorized: Callable[[], Awaitable[None]] | None = None,
    classify: Classifier | None = None,
    service: str | None = None,
    **request_kwargs: Any,
) -> httpx.Response:
    """Send one request under `policy` and return its 2xx response (body already read).

    Raises ServiceError for everything else: `classify(response)` decides for non-2xx answers
    (return None to fall back to the status code); transport failures are "transient".
    `service` names the service in errors (default: the URL's host).
    """
    method = method.upper()
    full_url = str(client.base_url.join(url)) if client.base_url else url
    service = service or urlsplit(full_url).hostname or "service"
    extra_headers = dict(request_kwargs.pop("headers", None) or {})
    if "json" in request_kwargs:  # encoded once, by orjson (httpx would use the stdlib's)
        request_kwargs["content"] = jsoncodec.dumps(request_kwargs.pop("json"))
        if not any(name.lower() == "content-type" for name in extra_headers):
            extra_headers["Content-Type"] = "application/json"
    refreshed = False
    attempt = 0
    while True:
        attempt += 1
        headers = dict(extra_headers)
        if headers_factory is not None:
            headers.update(await headers_factory())
        try:
            async with asyncio.timeout(policy.request_timeout):
                response = await client.request(method, url, headers=headers, **request_kwargs)
        except TimeoutError:
            # Our own deadline is the caller's whole budget for this request: no retry, so a
            # dripping or hanging server never holds the caller longer than request_timeout.
            raise ServiceError(
                f"{service}: {method} {safe_url(full_url)} took longer than "
                f"{policy.request_timeout:g} s and was abandoned; the next sync retries.",
                service=service,
                category="transient",
                retryable=True,
                code="DEADLINE_EXCEEDED",
            ) from None
        except httpx.TransportError as exc:
            error = _transport_error(exc, service, method, full_url)
            unsent = isinstance(exc, _UNSENT_ERRORS)
            if (idempotent or unsent) and attempt < policy.attempts:
                await _pause(policy.backoff(attempt - 1), error, attempt)
                continue
            raise error from None

        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 401 and on_unauthorized is not None and not refreshed:
            # One refresh, one replay; 401 means the server did not act on the request.
            refreshed = True
            log.info("%s %s: 401, refreshing credentials once", method, safe_url(full_url))
            await on_unauthorized()
            attempt -= 1
            continue

        error = (classify(response) if classify else None) or default_error(response, service)
        wait = parse_retry_after(response.headers.get("retry-after"))
        if wait is not None and error.retry_at is None:
            error.retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        may_replay = idempotent or status in _UNPROCESSED_STATUSES
        if not (error.retryable and may_replay and attempt < policy.attempts):
            raise error
        if wait is None:
            wait = policy.backoff(attempt - 1)
        elif wait > policy.max_delay:
            # The service asks for a long pause: report when instead of blocking the caller.
            raise error
        await _pause(wait, error, attempt)


async def _pause(seconds: float, error: ServiceError, attempt: int) -> None:
    log.warning(
        "attempt %d failed (%s); retrying in %.2f s", attempt, error.code or error.category, seconds
    )
    await asyncio.sleep(seconds)


# ---------------------------------------------------------------------------------------------
# Paged reads

Page = TypeVar("Page")


TURNS_TO_SEND = 3  # turns of the event loop httpx takes to put a request on the wire


async def read_ahead(
    first: Awaitable[Page], call_after: Callable[[Page], Awaitable[Page] | None]
) -> AsyncGenerator[Page, None]:
    """The pages of a paged read, each next page's request already on its way while the caller
    works on the one it has: a round trip per page the caller never waits for (on a WAN, most
    of a big read's time; here, the service building its next page).

    `first` is the first page's call; `call_after(page)` checks `page` and returns the call for
    the one after it, or None after the last. It may raise (a malformed page): the page is
    still handed over, then the error is raised and nothing more is asked for. One request at
    a time, as without read-ahead; one the caller no longer wants (it stopped early, or
    failed) is cancelled.
    """
    pending: asyncio.Future[Page] | None = asyncio.ensure_future(first)
    try:
        while pending is not None:
            page = await pending
            pending = None
            try:
                following = call_after(page)
            except Exception as error:  # the page itself is good: the caller gets it first
                yield page
                raise error from None
            if following is not None:
                pending = asyncio.ensure_future(following)
                # The request goes out now, before the caller starts on this page: otherwise
                # it leaves at the caller's first yield, and the service builds the next page
                # after the caller's work on this one, not beside it. httpx writes a request
                # in its third turn of the loop (pool, connection, stream); the test of this
                # (`the_next_page_is_asked_for_before_the_caller_gets_the_page`) counts them.
                for _ in range(TURNS_TO_SEND):
                    await asyncio.sleep(0)
            yield page
    finally:
        if pending is not None:
            await cancel_and_wait(pending)


async def cancel_and_wait(future: asyncio.Future[Any]) -> None:
    """Stop work nobody will take (a read-ahead, a batch in flight), and wait until it has
    stopped: cancelled but never awaited, it would still be running when its caller, or the
    event loop, is gone. Its error, if it failed, is dropped on purpose: the caller stopped for
    its own reason, and that is the one to report."""
    future.cancel()
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()
