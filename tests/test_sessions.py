"""Sessions survive a server restart (issue 13, item 4), for supervisors and agents: `calmline server` run as a
user runs it, stopped with SIGTERM and started again on the same data directory; the cookies issued before
still open each role's page and stream, and a logout before the restart still holds after it."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import ROOT, free_port
from floor_server import PASSWORD, SUPERVISORS, form_login, request
from test_messages import AGENT_PASSWORD, AGENTS


def start(tmp_path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(tmp_path / "config.toml"), "server",
                             "--port", str(port), "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "server at http" in line:
            return proc
    pytest.fail(f"the server did not start: {seen}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def cookie_of(where, user: str, password: str) -> str:
    response = form_login(where, password, user=user)
    assert response.status == 303, response.status
    return response.getheader("Set-Cookie").split(";")[0]


def stream(where, path: str, cookie: str):
    return connect(where.url.replace("http", "ws", 1) + path, origin=where.url.rstrip("/"),
                   additional_headers={"Cookie": cookie}, open_timeout=10).__enter__()


@pytest.mark.slow  # `calmline server` in a subprocess, three times
def test_supervisors_and_agents_stay_signed_in_over_a_restart(tmp_path):
    (tmp_path / "config.toml").write_text(f'[transcription]\nenabled = false\n[hub.supervisors]\n'
                                          f'sup = "{SUPERVISORS["sup"]}"\n[hub.agents]\nann = "{AGENTS["ann"]}"\n'
                                          f'bob = "{AGENTS["bob"]}"\n')
    port = free_port()
    where = SimpleNamespace(url=f"http://127.0.0.1:{port}/", port=port)
    proc = start(tmp_path, port)
    try:
        sup, ann, bob = (cookie_of(where, "sup", PASSWORD), cookie_of(where, "ann", AGENT_PASSWORD),
                         cookie_of(where, "bob", AGENT_PASSWORD))
        assert request(where, "POST", "/logout", headers={"Cookie": bob, "Origin": where.url.rstrip("/")}).status == 303
    finally:
        stop(proc)
    proc = start(tmp_path, port)  # a new process: only the data directory is the same
    try:
        for cookie, role, user in ((sup, "supervisor", "sup"), (ann, "agent", "ann")):
            session = request(where, "GET", "/session", headers={"Cookie": cookie})
            assert session.status == 200 and json.loads(session.data)["role"] == role
            assert json.loads(session.data)["user"] == user
        assert request(where, "GET", "/floor", headers={"Cookie": sup}).status == 200
        assert request(where, "GET", "/", headers={"Cookie": ann}).status == 200
        floor = stream(where, "floor/ws", sup)
        assert json.loads(floor.recv(timeout=10).split("\n")[0])["user"] == "sup"
        floor.close()
        stream(where, "ws", ann).close()
        assert request(where, "GET", "/session", headers={"Cookie": bob}).status == 401  # logged out stays out
        with pytest.raises(InvalidStatus):
            stream(where, "ws", bob)
    finally:
        stop(proc)
    (tmp_path / "data" / "session.key").unlink()  # a new signing key: every session ends, as it should
    proc = start(tmp_path, port)
    try:
        assert request(where, "GET", "/session", headers={"Cookie": sup}).status == 401
        assert request(where, "GET", "/floor", headers={"Cookie": sup}).status == 302
    finally:
        stop(proc)


def test_both_roles_streams_reopen_on_a_restarted_app(tmp_path):
    """The same in one process (fast tier): the app stopped and built again on the data directory's key."""
    from test_messages import Server

    srv = Server(tmp_path / "data")
    sup, ann = cookie_of(srv, "sup", PASSWORD), cookie_of(srv, "ann", AGENT_PASSWORD)
    port = srv.port
    srv.stop()
    srv = Server(tmp_path / "data", port=port)
    try:
        floor = stream(srv, "floor/ws", sup)
        assert json.loads(floor.recv(timeout=10).split("\n")[0])["user"] == "sup"
        floor.close()
        stream(srv, "ws", ann).close()
        assert json.loads(request(srv, "GET", "/session", headers={"Cookie": ann}).data)["role"] == "agent"
    finally:
        srv.stop()
