"""`FERRY_TRUSTED_PROXIES`: the client address (login rate limit, access log) comes from
`X-Forwarded-For` only when the direct peer is a trusted proxy.

The unit tests pin the walk over the header; the process tests run real `python -m server`
processes and check what the rate limit and the access log actually used.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from server.proxies import client_address, parse_trusted
from tests.servers import ferry_server_process

LOCAL = parse_trusted("127.0.0.1, 10.0.0.0/8, ::1")


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("127.0.0.1", ["203.0.113.5"], "203.0.113.5"),
        ("127.0.0.1", ["198.51.100.1, 203.0.113.5"], "203.0.113.5"),  # the rightmost untrusted hop
        ("127.0.0.1", ["203.0.113.5, 10.1.2.3"], "203.0.113.5"),  # past another trusted proxy
        ("127.0.0.1", ["203.0.113.5", "10.1.2.3"], "203.0.113.5"),  # several header lines
        ("127.0.0.1", ["not-an-ip"], "127.0.0.1"),  # garbage is not believed
        ("127.0.0.1", ["203.0.113.5, garbage, 10.0.0.1"], "10.0.0.1"),
        ("127.0.0.1", ["10.0.0.2, 10.0.0.1"], "10.0.0.2"),  # every hop trusted: the leftmost
        ("127.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("192.0.2.9", ["203.0.113.5"], "192.0.2.9"),  # an untrusted peer's header is ignored
        ("127.0.0.1", [], "127.0.0.1"),
    ],
)
def test_client_address(peer: str, header: list[str], expected: str) -> None:
    assert client_address(peer, header, LOCAL) == expected


def test_no_trusted_proxies_by_default_and_bad_entries_are_refused() -> None:
    assert client_address("127.0.0.1", ["203.0.113.5"], parse_trusted("")) == "127.0.0.1"
    with pytest.raises(ValueError, match="nonsense"):
        parse_trusted("127.0.0.1,nonsense")


def _fail_sign_in(url: str, forwarded_for: str) -> int:
    response = httpx.post(
        f"{url}/api/auth/token",
        data={"username": "mallory", "password": "wrong password"},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    )
    return response.status_code


def _log_once_it_has(path: Path, line: str, timeout: float = 5.0) -> str:
    """The server's log, once it holds `line` (or after `timeout`): a request's access-log
    line is written just after its answer is sent, so a client can read the log first."""
    deadline = time.monotonic() + timeout
    while line not in (log := path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return log


def test_rate_limit_and_access_log_use_the_forwarded_address_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    limits = {"FERRY_LOGIN_MAX_FAILURES": "2"}
    with ferry_server_process(tmp_path / "trusting", env={**limits, "FERRY_TRUSTED_PROXIES": "127.0.0.1/32"}) as srv:
        assert [_fail_sign_in(srv.url, "203.0.113.5") for _ in range(3)] == [401, 401, 429]
        # Another client behind the same proxy has its own count.
        assert _fail_sign_in(srv.url, "203.0.113.6") == 401
        log = _log_once_it_has(srv.log, "203.0.113.6 POST /api/auth/token 401")
    assert "203.0.113.5 POST /api/auth/token 429" in log
    assert "203.0.113.6 POST /api/auth/token 401" in log

    with ferry_server_process(tmp_path / "default", env=limits) as srv:
        # Not trusted: a client cannot dodge the limit by making up addresses.
        codes = [_fail_sign_in(srv.url, f"203.0.113.{i}") for i in range(3)]
        assert codes == [401, 401, 429]
        log = _log_once_it_has(srv.log, "127.0.0.1 POST /api/auth/token 429")
    assert "203.0.113." not in log
    assert "127.0.0.1 POST /api/auth/token 429" in log
