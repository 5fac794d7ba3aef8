"""Supervisors' logins on the real web app: pages, signed sessions that outlive a restart, logout, and the
login throttle under parallel requests from one address and from many."""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from floor_server import PASSWORD, Floor, form_login, login, request, start_hub
from monitor.web.auth import MIN_SECRET_CHARS, LoginThrottle, check_password, hash_password


@pytest.fixture
def hub():
    hub = start_hub()
    yield hub
    hub.stop()


def test_password_hash_is_salted_and_checked():
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second  # a fresh salt each time
    assert check_password("s3cret", first) and check_password("s3cret", second)
    assert not check_password("S3cret", first)
    assert not check_password("s3cret", "garbage") and not check_password("s3cret", "")
    assert not check_password("s3cret", first.replace("$16384$", "$1073741824$"))  # no memory bomb from config
    assert MIN_SECRET_CHARS == 16


def test_login_failures_and_success(hub):
    response = form_login(hub, "nope")
    assert response.status == 303 and response.getheader("Location") == "/login?failed=1"
    assert response.getheader("Set-Cookie") is None
    response = request(hub, "POST", "/login", json.dumps({"username": "nobody", "password": PASSWORD}),
                       {"Content-Type": "application/json"})
    assert response.status == 401 and response.getheader("Set-Cookie") is None
    page = request(hub, "GET", "/login?failed=1").data.decode()
    assert '<p id="error" role="alert">Wrong username or password.' in page
    assert 'id="error" role="alert" hidden' in request(hub, "GET", "/login").data.decode()

    response = request(hub, "POST", "/login", json.dumps({"username": "sup", "password": PASSWORD}),
                       {"Content-Type": "application/json"})
    cookie = response.getheader("Set-Cookie")
    assert response.status == 303 and response.getheader("Location") == "/floor"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    session = cookie.split(";")[0]
    assert request(hub, "GET", "/floor", headers={"Cookie": session}).status == 200
    assert request(hub, "HEAD", "/floor", headers={"Cookie": session}).status == 200
    assert json.loads(request(hub, "GET", "/session", headers={"Cookie": session}).data)["user"] == "sup"

    response = request(hub, "POST", "/logout", headers={"Cookie": session})
    assert response.status == 303 and "Max-Age=0" in response.getheader("Set-Cookie")
    assert request(hub, "GET", "/floor", headers={"Cookie": session}).status == 302  # revoked, not just forgotten
    assert request(hub, "GET", "/session", headers={"Cookie": session}).status == 401


def test_pages_need_a_session_and_bodies_are_bounded(hub):
    response = request(hub, "GET", "/floor")
    assert response.status == 302 and response.getheader("Location") == "/login"
    assert request(hub, "GET", "/floor", headers={"Cookie": "calmline_session=forged"}).status == 302
    assert request(hub, "GET", "/session").status == 401
    assert request(hub, "DELETE", "/floor").status == 405
    big = request(hub, "POST", "/login", "x" * 20000, {"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status == 413
    junk = request(hub, "POST", "/login", "\x00\xff=&&==", {"Content-Type": "multipart/form-data; boundary=x"})
    assert junk.status == 303 and junk.getheader("Location") == "/login?failed=1"


def test_logout_ends_the_open_floor_stream(hub):
    cookie = login(hub)
    floor = Floor(hub, cookie)
    floor.pump(1)
    request(hub, "POST", "/logout", headers={"Cookie": cookie, "Origin": hub.url.rstrip("/")})
    from websockets.exceptions import ConnectionClosed

    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(100):
            floor.ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == "logged out"


def test_a_session_outlives_a_restart_but_not_a_password_change(tmp_path):
    hub = start_hub(data_dir=tmp_path)
    cookie = login(hub)
    hub.stop()
    key = tmp_path / "session.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600

    hub = start_hub(data_dir=tmp_path)
    try:
        assert request(hub, "GET", "/floor", headers={"Cookie": cookie}).status == 200
        request(hub, "POST", "/logout", headers={"Cookie": cookie})
    finally:
        hub.stop()
    hub = start_hub(data_dir=tmp_path)  # a logout holds across a restart too
    try:
        assert request(hub, "GET", "/floor", headers={"Cookie": cookie}).status == 302
        cookie = login(hub)
    finally:
        hub.stop()
    hub = start_hub(data_dir=tmp_path, supervisors={"sup": hash_password("a new password, long enough")})
    try:
        assert request(hub, "GET", "/floor", headers={"Cookie": cookie}).status == 302
    finally:
        hub.stop()
    hub = start_hub()  # another data directory, another key: the cookie means nothing here
    try:
        assert request(hub, "GET", "/floor", headers={"Cookie": cookie}).status == 302
    finally:
        hub.stop()


def test_parallel_wrong_passwords_are_throttled_and_the_right_one_still_gets_in(hub):
    device = form_login(hub).headers.get_all("Set-Cookie")[1].split(";")[0]  # the supervisor's usual browser
    assert device.startswith("calmline_device=")

    def attempt(args):
        password, source = args
        return form_login(hub, password, source=source).status

    # 300 wrong passwords at once from one address: a handful are checked, the rest refused before scrypt.
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(attempt, [("wrong password", "127.0.0.1")] * 300))
    checked = [s for s in statuses if s != 429]
    assert set(checked) <= {303} and len(checked) <= 5, sorted(set(statuses))
    assert form_login(hub, source="127.0.0.1").status == 429  # the attacker's address is shut for now
    response = form_login(hub, source="127.0.0.200")  # the supervisor, from an address that never failed
    assert response.status == 303 and response.getheader("Location") == "/floor"

    # From 40 addresses at once: still at most 20 checks for the account in the minute.
    sources = [f"127.0.0.{i}" for i in range(2, 42)]
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(attempt, [("wrong password", s) for s in sources for _ in range(5)]))
    assert len([s for s in statuses if s != 429]) <= 20 - 1 - len(checked)
    assert form_login(hub, source="127.0.0.201").status == 429  # the account's checks are used up...
    response = request(hub, "POST", "/login", f"username=sup&password={PASSWORD}",  # ...but not its browser's
                       {"Content-Type": "application/x-www-form-urlencoded", "Cookie": device}, source="127.0.0.202")
    assert response.status == 303 and response.getheader("Location") == "/floor"


def test_the_throttle_counts_before_the_check_and_keeps_a_reserve():
    throttle = LoginThrottle(per_pair=10, per_address=11, per_account=20, reserve=5, per_device=2)
    tickets = [throttle.reserve_check("sup", "10.0.0.1") for _ in range(12)]
    assert sum(t is not None for t in tickets) == 10  # pending checks count: no settling needed to be refused
    assert sum(throttle.reserve_check("sup", "10.0.0.2") is not None for _ in range(10)) == 5  # up to 15 of 20
    ticket = throttle.reserve_check("sup", "10.0.0.9")  # a fresh address uses the reserve
    assert ticket is not None
    throttle.settle(ticket, ok=True)
    assert throttle.reserve_check("sup", "10.0.0.9") is None  # its address has used the account's reserve
    assert throttle.reserve_check("sup", "10.0.0.2") is None
    assert throttle.reserve_check("other", "10.0.0.1") is not None  # another account, its own budget...
    assert throttle.reserve_check("other", "10.0.0.1") is None  # ...but the address is over its own limit
    assert [throttle.reserve_check("sup", "10.0.0.1", known_device=True) is not None for _ in range(3)] == \
        [True, True, False]
