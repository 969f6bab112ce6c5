"""The one exception tree of tiled_core.

    TiledError
    ├── TransportError            no usable response arrived
    │   ├── ConnectionFailed      could not connect, or the connection broke
    │   ├── RequestTimeout        a phase took longer than its timeout, or retries ran out of time
    │   └── TruncatedResponse     the body ended before the bytes it announced
    ├── MalformedResponse         a complete response that cannot be what was asked for
    └── ServerError               the server answered with an error status (status, detail, request_id)
        └── ClientError           4xx
            ├── AuthenticationError   401
            │   └── LoginRequired     the login session expired or was revoked: log in again
            ├── PermissionDenied      403
            ├── NotFound              404
            ├── NotAcceptable         406 (format not offered)
            └── Conflict              409

Messages name the URL (which never carries credentials) and never the API key.

``ServerError`` is also an ``httpx.HTTPStatusError`` (as the reference client's
errors are): ``error.response.status_code`` and ``error.request.url`` work, and
``except httpx.HTTPStatusError`` catches it. Where no HTTP response object was
at hand (the bulk read path), ``response`` is a stand-in with the status, the
request id header and ``{"detail": ...}`` as its JSON body.
"""

from __future__ import annotations

import httpx

__all__ = [
    "TiledError",
    "TransportError",
    "ConnectionFailed",
    "RequestTimeout",
    "TruncatedResponse",
    "MalformedResponse",
    "ServerError",
    "ClientError",
    "AuthenticationError",
    "LoginRequired",
    "PermissionDenied",
    "NotFound",
    "NotAcceptable",
    "Conflict",
    "ClientClosed",
    "error_for_status",
]


class TiledError(Exception):
    """Base class of every error tiled_core raises about a server exchange."""


class TransportError(TiledError):
    """No usable response arrived."""


class ConnectionFailed(TransportError):
    """Could not connect, or the connection broke mid-exchange."""


class RequestTimeout(TransportError):
    """A timeout expired, or the retry deadline ran out."""


class TruncatedResponse(TransportError):
    """The body ended before the number of bytes the server announced."""

    def __init__(self, url: str, expected: int, received: int) -> None:
        super().__init__(f"truncated response from {url}: expected {expected} bytes, received {received}")
        self.url = url
        self.expected = expected
        self.received = received

    def __reduce__(self):
        # Errors cross process boundaries (Dask workers): rebuild from the fields, not the message.
        return (type(self), (self.url, self.expected, self.received), self.__dict__)


class ClientClosed(TiledError, RuntimeError):
    """The client's connections were closed (``context.close()``); it sends nothing more."""


class MalformedResponse(TiledError):
    """A complete response whose content cannot be what was asked for."""


class ServerError(TiledError, httpx.HTTPStatusError):
    """The server answered with an error status.

    Attributes: ``status``, ``detail`` (the server's message), ``request_id``
    (its ``X-Tiled-Request-ID``, to find the request in the server's logs), ``url``;
    and, as an ``httpx.HTTPStatusError``, ``response`` and ``request``.
    """

    def __init__(self, status: int, detail: str, *, url: str, request_id: str | None = None,
                 response: httpx.Response | None = None) -> None:
        self.status = status
        self.detail = detail
        self.url = url
        self.request_id = request_id
        rid = f" [correlation ID {request_id}: search the server logs for it]" if request_id else ""
        httpx.HTTPStatusError.__init__(self, f"{status} from {url}: {detail}{rid}",
                                       request=getattr(response, "request", None), response=response)

    # httpx.HTTPStatusError's attributes, filled in on first use where no response was kept.
    @property
    def response(self) -> httpx.Response:
        if self.__dict__.get("_response") is None:
            headers = {"x-tiled-request-id": self.request_id} if self.request_id else {}
            self._response = httpx.Response(self.status, json={"detail": self.detail}, headers=headers,
                                            request=httpx.Request("GET", self.url))
        return self._response

    @response.setter
    def response(self, response: httpx.Response | None) -> None:
        self._response = response

    @property
    def request(self) -> httpx.Request:
        if self.__dict__.get("_request") is None:
            self._request = self.response.request
        return self._request

    @request.setter
    def request(self, request: httpx.Request | None) -> None:
        self._request = request

    def __reduce__(self):
        # Errors cross process boundaries (Dask workers): rebuild from the fields, not the message.
        # The HTTP objects stay behind: their requests carry the credential headers.
        state = {k: v for k, v in self.__dict__.items() if k not in ("_request", "_response")}
        return (_rebuild_server_error, (type(self), self.status, self.detail, self.url, self.request_id), state)


class ClientError(ServerError):
    """A 4xx answer: the request was wrong for this server or node."""


class AuthenticationError(ClientError):
    """401: missing, wrong, expired or revoked credentials."""


class LoginRequired(AuthenticationError):
    """The login session can no longer be refreshed (expired, revoked, or logged out): log in again.

    ``LoginRequired("why")`` (a message alone, as the reference client's
    ``CannotRefreshAuthentication`` takes) is a 401 with that detail.
    """

    def __init__(self, status: int | str = 401, detail: str | None = None, *, url: str = "(no request)",
                 request_id: str | None = None, response: httpx.Response | None = None) -> None:
        if isinstance(status, str):
            status, detail = 401, status if detail is None else f"{status}: {detail}"
        super().__init__(status, detail or "log in again", url=url, request_id=request_id, response=response)


class PermissionDenied(ClientError):
    """403: the credentials are valid but not allowed to do this."""


class NotFound(ClientError):
    """404: no such node (or no such route for this node's family)."""


class NotAcceptable(ClientError):
    """406: the server cannot produce the requested format."""


class Conflict(ClientError):
    """409: the key exists, the node is not empty, or a write falls outside the array."""


def _rebuild_server_error(cls, status, detail, url, request_id):
    error = cls.__new__(cls)
    ServerError.__init__(error, status, detail, url=url, request_id=request_id)
    return error


_BY_STATUS: dict[int, type[ServerError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    406: NotAcceptable,
    409: Conflict,
}


DEFAULT_AUTH_HINT = "pass api_key=, set TILED_API_KEY, or log in"


def error_for_status(
    status: int, detail: str, *, url: str, request_id: str | None, auth_hint: str = DEFAULT_AUTH_HINT,
    response: httpx.Response | None = None,
) -> ServerError:
    """Build the exception for an error status; ``auth_hint`` says what to do about a 401.

    ``response`` (the httpx response, when there is one) becomes the error's ``response``.
    """
    cls = _BY_STATUS.get(status) or (ClientError if 400 <= status < 500 else ServerError)
    if cls is AuthenticationError:
        detail = f"{detail} (the server at {url.split('/api/')[0]} rejected the credentials: {auth_hint})"
    return cls(status, detail, url=url, request_id=request_id, response=response)
