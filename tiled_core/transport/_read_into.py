"""Reading a binary body of a known size straight into a caller's buffer (a Session mixin).

Large bodies over plain API-key or token auth take the bulk path (``_bulk``:
from the socket into the buffer, no copy); others stream through httpx. With
a response cache, a ``304`` fills the buffer from the stored copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from .._version import user_agent
from ._auth import TokenAuth
from ._errors import AuthenticationError, ConnectionFailed, RequestTimeout, ServerError
from ._history import note_direct, served_from_cache
from ._response import stream_into
from ._retry import RetryableStatus

if TYPE_CHECKING:
    from ._session import Params

__all__ = ["ReadInto"]


class ReadInto:
    """``Session.read_into`` and its two fetch paths; uses the Session's pools, auth, cache and retries."""

    def read_into(self, path: str, params: Params, *, accept: str, out: memoryview) -> None:
        """GET a binary body of exactly ``len(out)`` bytes into ``out``.

        Large bodies take the bulk path (straight from the socket into ``out``);
        with a cache, a ``304`` fills ``out`` from the stored copy instead.
        """
        url = self.url(path)
        headers = self._data_headers(accept)
        full_url = httpx.URL(url, params=params)
        slot = self._cache_slot(str(full_url), accept, headers)
        if slot is not None and slot.fresh() and slot.stored_body(out):
            return
        use_bulk = self._bulk is not None and headers.get("accept-encoding") == "identity"

        def fetch(validators: dict[str, str]):
            wanted = {**headers, **validators}
            if use_bulk:
                auth_headers = self._header_auth()
                if auth_headers is not None:  # custom httpx.Auth cannot ride the bulk path
                    return self._bulk_fetch(full_url.raw_path.decode("ascii"), wanted, auth_headers, out, url)
            return self._stream_fetch(url, params, wanted, out)

        def attempt():
            try:
                status, response_headers = fetch(slot.validators() if slot is not None else {})
            except (httpx.ConnectError, httpx.ConnectTimeout, ConnectionFailed, RequestTimeout):
                if slot is not None and slot.offline(out):
                    return
                raise
            if status == 304 and slot is not None:
                if slot.stored_body(out, validated=True):
                    entry = slot.entry
                    served_from_cache(str(full_url), lambda: entry.response(httpx.Request("GET", full_url)))
                    return
                status, response_headers = fetch({})  # the stored copy was replaced meanwhile
            if slot is not None:
                slot.keep(headers, status, response_headers, out)

        self._with_retries("GET", url, attempt)

    def _bulk_fetch(self, target: str, headers: dict[str, str], auth_headers: dict[str, str], out: memoryview, url: str):
        request_headers = {"user-agent": user_agent(), "accept-encoding": "identity", **headers}
        request_headers.update(self._direct_headers())
        request_headers.update(auth_headers)

        def once():
            try:
                return note_direct("GET", self._bulk_url(target), request_headers, lambda: self._bulk.read_into(
                    target, request_headers, out, url=url, auth_hint=self._auth_hint()))
            except ServerError as error:
                if error.status in self.retry.statuses:
                    raise RetryableStatus(error, getattr(error, "retry_after", None)) from None
                raise

        try:
            return once()
        except AuthenticationError:
            if not isinstance(self._auth, TokenAuth):
                raise
            # As TokenAuth.auth_flow does for httpx: refresh once and resend.
            stale = auth_headers["Authorization"].partition(" ")[2]
            request_headers["Authorization"] = f"Bearer {self._auth.renew(stale).access_token}"
            return once()

    def _direct_headers(self) -> dict[str, str]:
        """The session's own headers for a request that bypasses httpx (Accept and encoding set per request)."""
        return {k: v for k, v in self._http.headers.items() if k.lower() not in ("accept", "accept-encoding")}

    def _bulk_url(self, target: str) -> str:
        base = httpx.URL(self._base_url)
        return str(base.copy_with(raw_path=target.encode("ascii")))

    def _stream_fetch(self, url: str, params: Params, headers: dict[str, str], out: memoryview):
        with self._http.stream("GET", url, params=params, headers=headers, auth=self._auth) as response:
            if response.status_code == 304:
                return 304, response.headers
            self._check(response, url)
            stream_into(response, url, out)
            return response.status_code, response.headers
