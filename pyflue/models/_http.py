"""What every HTTP provider shares: deadlines, retries with backoff, typed HTTP errors, SSE reading.

Retries follow the official SDKs: connection errors, timeouts, 408/409/429/5xx (529 included) are
retried up to ``max_retries`` times with exponential backoff and jitter, honouring ``retry-after-ms``,
``retry-after`` (seconds or an HTTP date) and ``x-should-retry``. A streaming request is retried only
until its response headers arrive; once events flow, a failure is a :class:`StreamError`.

Deadlines (``timeout``, seconds; the ``timeout`` model setting or the provider's default):

- a request (``request()``) ends within ``timeout`` of its start, every attempt, backoff and the body
  included, or raises :class:`ModelTimeoutError`;
- a stream (``stream()``) delivers its first event within ``timeout`` of its start (attempts and response
  headers included), then each next event within ``timeout`` of the previous one. Only events count:
  SSE comments, keep-alive pings and empty events keep a connection open but are not progress. A long
  answer that keeps making progress is never cut.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from ..errors import (
    AuthenticationError,
    ConfigError,
    ContextOverflowError,
    InvalidRequestError,
    ModelAPIError,
    ModelConnectionError,
    ModelTimeoutError,
    OverloadedError,
    RateLimitError,
)
from .base import check_timeout
from .clients import current_pool
from .sse import SSEEvent, SSEParser

__all__ = [
    "DEFAULT_TIMEOUT",
    "EventReader",
    "HTTPProvider",
    "StreamStart",
    "check_base_url",
    "describe_error",
]

DEFAULT_TIMEOUT = 600.0
"""Seconds, as the official SDKs default: long non-streamed answers and slow reasoning models fit."""

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_MAX_RETRY_AFTER = 60.0
_CONNECT_TIMEOUT = 10.0


def check_base_url(url: Any, name: str) -> str:
    """``url`` as a provider base URL, or a :class:`ConfigError` naming where it came from (an
    environment variable or the ``base_url`` argument)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{name} must be a URL such as https://api.example.com/v1, got {url!r:.80}")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc}): {url!r:.120}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"{name} must be an http:// or https:// URL with a host, e.g. https://api.example.com/v1; "
            f"got {url!r:.120}"
        )
    return url.strip().rstrip("/")


class StreamStart:
    """A response whose headers arrived; for a stream, how long its first event may still take
    (``first_event_within``) and the longest wait for each next one (``limit``)."""

    __slots__ = ("first_event_within", "limit", "response")

    def __init__(self, response: httpx.Response, first_event_within: float, limit: float) -> None:
        self.response = response
        self.first_event_within = first_event_within
        self.limit = limit


class HTTPProvider:
    """Base of the HTTP providers. Subclasses set ``provider`` and implement the wire mapping; they
    override :meth:`_api_error` to read their provider's error body.

    ``http_client``: a client of your own (its lifetime is yours); without one, calls go through the
    active :class:`~pyflue.models.clients.ClientPool` (see :func:`~pyflue.models.clients.use_pool`).
    """

    provider: str = "http"
    request_id_header: str = "x-request-id"

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None,
        base_url: str,
        max_retries: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        retry_base_delay: float = 0.5,
    ) -> None:
        self._model_name = model_name
        self.api_key = api_key
        self.base_url = check_base_url(base_url, "base_url")
        self.max_retries = max_retries
        self.timeout = check_timeout(timeout, "timeout")
        self.extra_headers = dict(headers or {})
        self._http_client = http_client
        self.retry_base_delay = retry_base_delay

    @property
    def model_name(self) -> str:
        return self._model_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r}, base_url={self.base_url!r})"

    # -- subclass hooks ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return dict(self.extra_headers)

    def _api_error(self, status: int, body: Any, request_id: str | None) -> ModelAPIError:
        """Map an error response to a typed error; providers refine the message and type."""
        message = f"{self.provider} returned HTTP {status}"
        return _error_class(status, None)(
            message, provider=self.provider, status_code=status, request_id=request_id, body=body
        )

    # -- transport ---------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        """The ``http_client`` given, else the active pool's client for this provider."""
        return self._http_client or current_pool().client(self.provider)

    def _limit(self, timeout: Any) -> float:
        return self.timeout if timeout is None else check_timeout(timeout)

    def _timed_out(self, limit: float, attempts: int, what: str) -> ModelTimeoutError:
        return ModelTimeoutError(
            f"{self.provider} {what} within {limit:g}s (timeout={limit:g}, {attempts} attempt(s)); "
            "raise model_settings['timeout'] or retry later",
            provider=self.provider,
        )

    async def _post_json(self, path: str, payload: dict[str, Any], timeout: float | None = None) -> Any:
        """The JSON body of a non-streaming request, under one deadline for the whole call."""
        limit = self._limit(timeout)
        attempts = [0]
        with anyio.move_on_after(limit):
            async with self._send(path, payload, limit, attempts, stream=False) as start:
                response = start.response
                try:
                    return response.json()
                except ValueError:
                    raise self._api_error(response.status_code, response.text, _rid(response, self)) from None
        raise self._timed_out(limit, attempts[0], "did not answer")

    @asynccontextmanager
    async def _post_stream(
        self, path: str, payload: dict[str, Any], timeout: float | None = None
    ) -> AsyncIterator[StreamStart]:
        """A streaming response once its headers arrived (within the deadline, attempts included)."""
        limit = self._limit(timeout)
        async with self._send(path, payload, limit, [0], stream=True) as start:
            yield start

    def stalled(self, limit: float, first: bool) -> ModelTimeoutError:
        """The error of a stream that made no progress in time."""
        what = "sent no event" if first else "sent no further event"
        return ModelTimeoutError(
            f"{self.provider} stream {what} for {limit:g}s (only keep-alives, or nothing; "
            f"timeout={limit:g}); the answer is incomplete: retry, or raise model_settings['timeout']",
            provider=self.provider,
        )

    @asynccontextmanager
    async def _send(
        self, path: str, payload: dict[str, Any], limit: float, attempts: list[int], *, stream: bool
    ) -> AsyncIterator[StreamStart]:
        """Send with retries until a response under 400 arrives, all within ``limit`` seconds of the
        start; ``attempts[0]`` counts the attempts made (for the caller's timeout message)."""
        started = time.monotonic()
        attempt = 0
        while True:
            remaining = limit - (time.monotonic() - started)
            if remaining <= 0:
                raise self._timed_out(limit, attempt, "did not answer")
            attempts[0] = attempt + 1
            request = self._build(path, payload, limit, remaining)
            delay: float | None = None
            failure: Exception
            try:
                with anyio.fail_after(remaining):
                    response = await self.client.send(request, stream=stream)
            except TimeoutError:
                raise self._timed_out(limit, attempt + 1, "did not answer") from None
            except httpx.TimeoutException as exc:
                failure = self._timed_out(limit, attempt + 1, "did not answer")
                failure.__cause__ = exc
            except httpx.TransportError as exc:
                failure = ModelConnectionError(
                    f"cannot reach {self.provider} at {self.base_url} after {attempt + 1} attempt(s): "
                    f"{describe_error(exc)}; check the base URL and your network",
                    provider=self.provider,
                )
                failure.__cause__ = exc
            else:
                if response.status_code < 400:
                    left = limit - (time.monotonic() - started)
                    try:
                        yield StreamStart(response, left, limit)
                    finally:
                        await response.aclose()
                    return
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text
                failure = self._api_error(response.status_code, body, _rid(response, self))
                if not _should_retry(response):
                    raise failure
                delay = _retry_after(response.headers)
            if delay is None:
                delay = min(self.retry_base_delay * 2**attempt, 8.0) * (1 - 0.25 * random.random())
            if attempt >= self.max_retries or time.monotonic() - started + delay >= limit:
                raise failure  # no attempt left, or none that could finish before the deadline
            attempt += 1
            await anyio.sleep(delay)

    def _build(self, path: str, payload: dict[str, Any], limit: float, remaining: float) -> httpx.Request:
        """httpx's own timeouts: each read may wait the whole ``limit`` (a stream's gap between events);
        connecting and pooling get what is left of the deadline, at most 10 s to connect."""
        return self.client.build_request(
            "POST",
            self.base_url + path,
            json=payload,
            headers=self._headers(),
            timeout=httpx.Timeout(
                limit, connect=min(_CONNECT_TIMEOUT, remaining), pool=remaining, write=remaining
            ),
        )


class EventReader:
    """The SSE events of a streaming response, a batch (one network chunk's worth) at a time, under the
    stream deadline: the first event within ``start.first_event_within`` seconds, each next one within
    ``start.limit`` seconds of the previous one (time the consumer spends between batches does not
    count). Comments and ``ping`` events are handed on but are not progress. ``stalled(limit, first)``
    is the error raised when the deadline passes.

    The common case costs one clock read per chunk: while events keep coming, httpx's read timeout
    (``limit``) is the only timer; a read gets its own cancel scope only after a chunk without progress.
    """

    __slots__ = ("_budget", "_chunks", "_first", "_limit", "_stalled", "_waiting_since", "_watched", "parser")

    def __init__(
        self, start: StreamStart, parser: SSEParser, stalled: Callable[[float, bool], Exception]
    ) -> None:
        self.parser = parser
        self._chunks = start.response.aiter_bytes()
        self._limit = start.limit
        self._stalled = stalled
        self._waiting_since = time.monotonic()
        self._budget = start.first_event_within
        self._first = True
        self._watched = True  # no event since _waiting_since: the next read gets the rest of the budget

    async def batch(self) -> list[SSEEvent] | None:
        """The next non-empty list of events, or ``None`` at the end of the body (after the events
        ``parser.close()`` completes; ``parser.truncated`` then says whether the body ended mid-event)."""
        if not self._watched:  # progress was made: the consumer's time since then does not count
            self._waiting_since = time.monotonic()
        while True:
            try:
                if self._watched:
                    remaining = self._budget - (time.monotonic() - self._waiting_since)
                    if remaining <= 0:
                        raise self._stalled(self._limit, self._first)
                    chunk = None
                    with anyio.move_on_after(remaining):
                        chunk = await self._chunks.__anext__()
                    if chunk is None:
                        raise self._stalled(self._limit, self._first)
                else:
                    chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                return self.parser.close() or None
            except httpx.ReadTimeout:
                raise self._stalled(self._limit, self._first) from None
            events = self.parser.feed(chunk)
            if events:
                for event in events:
                    if event.data and event.event != "ping":
                        self._budget = self._limit
                        self._first = self._watched = False
                        return events
                self._watched = True
                return events
            self._watched = True


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """What went wrong, in one bounded line: the exception's type and text, and its root cause's when
    that says more (httpx's connection errors can have an empty text on asyncio)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    root: BaseException = exc
    seen = {id(exc)}
    while True:
        follow: BaseException | None = root.__cause__ or root.__context__
        if isinstance(root, BaseExceptionGroup) and root.exceptions:
            follow = root.exceptions[0]
        if follow is None or id(follow) in seen:
            break
        seen.add(id(follow))
        root = follow
    if root is not exc:
        detail = str(root)
        if detail and detail not in text:
            text += f" ({type(root).__name__}: {detail})"
        elif not str(exc):
            text += f" ({type(root).__name__})"
    if text == type(exc).__name__:
        text += " (no details given)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rid(response: httpx.Response, provider: HTTPProvider) -> str | None:
    value: str | None = response.headers.get(provider.request_id_header) or response.headers.get("request-id")
    return value


def _should_retry(response: httpx.Response) -> bool:
    explicit = response.headers.get("x-should-retry")
    if explicit == "true":
        return True
    if explicit == "false":
        return False
    return response.status_code in _RETRY_STATUS or response.status_code >= 500


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait as the server asks, or None to use our own backoff."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            seconds = float(value) / 1000
        except ValueError:
            seconds = -1.0
        if 0 <= seconds <= _MAX_RETRY_AFTER:
            return seconds
    value = headers.get("retry-after")
    if value:
        try:
            seconds = float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            seconds = parsed.timestamp() - time.time() if parsed else -1.0
        if 0 <= seconds <= _MAX_RETRY_AFTER:
            return seconds
    return None


def _error_class(status: int, error_type: str | None) -> type[ModelAPIError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    if status == 413:
        return ContextOverflowError
    if status >= 500 or error_type == "overloaded_error":
        return OverloadedError
    if 400 <= status < 500:
        return InvalidRequestError
    return ModelAPIError


error_class = _error_class
