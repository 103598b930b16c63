"""What every HTTP provider shares: a pooled client, retries with backoff, typed HTTP errors.

Retries follow the official SDKs: connection errors, timeouts, 408/409/429/5xx (529 included) are
retried up to ``max_retries`` times with exponential backoff and jitter, honouring ``retry-after-ms``,
``retry-after`` (seconds or an HTTP date) and ``x-should-retry``. A streaming request is retried only
until its response headers arrive; once events flow, a failure is a :class:`StreamError`.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from anyio.lowlevel import RunVar

from ..errors import (
    AuthenticationError,
    ContextOverflowError,
    InvalidRequestError,
    ModelAPIError,
    ModelConnectionError,
    ModelTimeoutError,
    OverloadedError,
    RateLimitError,
)

__all__ = ["HTTPProvider"]

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_MAX_RETRY_AFTER = 60.0

_clients: RunVar[dict[str, httpx.AsyncClient]] = RunVar("pyflue_http_clients")


def shared_client(key: str) -> httpx.AsyncClient:
    """One pooled :class:`httpx.AsyncClient` per provider key and event loop (a connection pool must
    not cross event loops, so the pool lives in an anyio ``RunVar``)."""
    try:
        clients = _clients.get()
    except LookupError:
        clients = {}
        _clients.set(clients)
    client = clients.get(key)
    if client is None or client.is_closed:
        client = clients[key] = httpx.AsyncClient(
            timeout=httpx.Timeout(600.0, connect=10.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        )
    return client


class HTTPProvider:
    """Base of the HTTP providers. Subclasses set ``provider`` and implement the wire mapping; they
    override :meth:`_api_error` to read their provider's error body."""

    provider: str = "http"
    request_id_header: str = "x-request-id"

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None,
        base_url: str,
        max_retries: int = 2,
        timeout: float = 600.0,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        retry_base_delay: float = 0.5,
    ) -> None:
        self._model_name = model_name
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.timeout = timeout
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
        return self._http_client or shared_client(self.provider)

    def _build(self, path: str, payload: dict[str, Any], timeout: float | None) -> httpx.Request:
        t = timeout or self.timeout
        return self.client.build_request(
            "POST",
            self.base_url + path,
            json=payload,
            headers=self._headers(),
            timeout=httpx.Timeout(t, connect=min(10.0, t)),
        )

    async def _post_json(self, path: str, payload: dict[str, Any], timeout: float | None = None) -> Any:
        async with self._send(path, payload, timeout, stream=False) as response:
            try:
                return response.json()
            except ValueError:
                raise self._api_error(response.status_code, response.text, _rid(response, self)) from None

    @asynccontextmanager
    async def _post_stream(
        self, path: str, payload: dict[str, Any], timeout: float | None = None
    ) -> AsyncIterator[httpx.Response]:
        async with self._send(path, payload, timeout, stream=True) as response:
            yield response

    @asynccontextmanager
    async def _send(
        self, path: str, payload: dict[str, Any], timeout: float | None, *, stream: bool
    ) -> AsyncIterator[httpx.Response]:
        attempt = 0
        while True:
            request = self._build(path, payload, timeout)
            delay: float | None = None
            try:
                response = await self.client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if attempt >= self.max_retries:
                    raise ModelTimeoutError(
                        f"{self.provider} did not answer within {request.extensions['timeout']['read']}s "
                        f"after {attempt + 1} attempts; raise timeout= or retry later",
                        provider=self.provider,
                    ) from exc
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise ModelConnectionError(
                        f"cannot reach {self.provider} at {self.base_url} after {attempt + 1} attempts: "
                        f"{exc or type(exc).__name__}; check the base URL and your network",
                        provider=self.provider,
                    ) from exc
            else:
                if response.status_code < 400:
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                if attempt >= self.max_retries or not _should_retry(response):
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = response.text
                    raise self._api_error(response.status_code, body, _rid(response, self))
                delay = _retry_after(response.headers)
            if delay is None:
                delay = min(self.retry_base_delay * 2**attempt, 8.0) * (1 - 0.25 * random.random())
            attempt += 1
            await anyio.sleep(delay)


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
