"""The HTTP core of the client: one httpx client, the bearer token, errors translated, lists paged.

Every call goes to ``/api/v1/...`` of the fleet service (in this process or on a server). An
error answer becomes the fleet error of its problem detail (:mod:`._errors`); a server that
cannot be reached becomes :class:`ServerUnavailable` (exit 69) naming where it was looked for.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import httpx

from ._errors import ServerUnavailable, error_from_problem

API = "/api/v1"
PAGE = 500                      # the server's largest page


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (params or {}).items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else v
    return out


class Http:
    """``get/post/put/delete(path, ...)`` -> the decoded JSON answer; ``pages`` follows cursors."""

    def __init__(self, client: httpx.Client, *, where: str, token: Callable[[], str]) -> None:
        self.client = client
        self.where = where               # "http://host:8080" or "the local database sqlite:///..."
        self._token_source = token
        self._token: str | None = None

    # -- credentials --------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            self._token = self._token_source()
        return self._token

    def _headers(self, auth: bool) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token()}"} if auth else {}

    # -- requests -----------------------------------------------------------------------
    def send(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
             auth: bool = True, stream: bool = False, timeout: float | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """The response (2xx) or the translated error; ``stream``: the body is read by the caller."""
        url = API + path
        kwargs: dict[str, Any] = {"params": _params(params), "headers": {**self._headers(auth), **(headers or {})}}
        if body is not None:
            kwargs["json"] = body
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            request = self.client.build_request(method, url, **kwargs)
            response = self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise ServerUnavailable(f"the fleet server at {self.where} did not answer {method} {url} in time "
                                    f"({type(exc).__name__}); try again, or check the server's load",
                                    server=self.where) from None
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach the fleet server at {self.where} ({exc}); check --server / "
                                    "FLEET_SERVER and that `fleet serve` runs there", server=self.where) from None
        if response.status_code >= 400:
            if stream:
                response.read()
                response.close()
            raise error_from_problem(response.status_code, _json_or_none(response), method=method, path=url)
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, body={} if body is None else body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("PUT", path, body={} if body is None else body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)

    def text(self, path: str, **kwargs: Any) -> str:
        return self.send("GET", path, **kwargs).text

    def lines(self, method: str, path: str, body: Any, *, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """An NDJSON answer, one decoded object per line as the server sends it."""
        response = self.send(method, path, body=body, stream=True, timeout=timeout,
                             headers={"accept": "application/x-ndjson"})
        try:
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)
        finally:
            response.close()

    def pages(self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None,
              extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a list (``{items, next_cursor}``), or the first ``limit``; ``extra`` collects
        other keys of the first page (e.g. ``total``)."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            want = PAGE if limit is None else max(1, min(PAGE, limit - len(rows)))
            page = self.get(path, params={**(params or {}), "limit": want, "cursor": cursor})
            if extra is not None and not rows:
                extra.update({k: v for k, v in page.items() if k not in ("items", "next_cursor")})
            rows.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or (limit is not None and len(rows) >= limit):
                return rows if limit is None else rows[:limit]

    def close(self) -> None:
        self.client.close()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
