"""The floor on the real web app (uvicorn, real sockets): monitor and supervisor auth, hostile monitors, caps,
lost connections, tile deltas, the publisher's catch-up and TLS. Redis: test_hub_redis.py; logins and
sessions: test_auth.py."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import free_port, run_async
from floor_server import (TOKENS, Floor, Monitor, call_start, cue, ev, levels, login, refusal, request,
                          start_hub, wait_until)
from monitor.errors import UsageError
from monitor.web.floor_part import FloorPart, FloorPartOptions
from monitor.web.hub_client import HubPublisher


@pytest.fixture
def hub():
    hub = start_hub(rate_per_s=2000.0)  # tests send seconds of audio at once; rate limits have their own tests
    yield hub
    hub.stop()


# ---- monitors: authentication ----

def test_monitor_with_a_bad_token_is_refused(hub):
    with connect(hub.monitor_url) as ws:
        ws.send(json.dumps({"type": "hello", "v": 1, "agent": "ann", "token": "wrong"}))
        assert refusal(ws) == ({"type": "error", "reason": "bad token"}, 1008, "bad token")
    with connect(hub.monitor_url) as ws:  # the token says who the agent is, whatever name the hello gives
        ws.send(json.dumps({"type": "hello", "v": 1, "agent": "mallory", "token": TOKENS["ann"]}))
        welcome = json.loads(ws.recv(timeout=5))
        assert welcome["type"] == "welcome" and welcome["agent"] == "ann"
    with connect(hub.monitor_url) as ws:
        ws.send(json.dumps({"type": "hello", "v": 1, "agent": "ann", "token": ""}))
        assert refusal(ws)[2] == "bad token"


def test_monitor_without_hello_is_refused():
    hub = start_hub(hello_timeout_s=0.3)
    try:
        with connect(hub.monitor_url) as ws:
            ws.send(json.dumps({"type": "event", "call_id": "c", "seq": 1, "event": levels(0.0)}))
            assert refusal(ws) == ({"type": "error", "reason": "expected hello first"}, 1008, "expected hello first")
        with connect(hub.monitor_url) as ws:  # says nothing at all
            message, code, reason = refusal(ws)
            assert (message["type"], code) == ("error", 1008) and reason.startswith("no hello")
        assert hub.stats()["monitors"] == 0
    finally:
        hub.stop()


@pytest.mark.parametrize("tokens, key", [({"sam": ""}, "sam"), ({"ann": TOKENS["ann"], "sam": "short-token"}, "sam")])
def test_an_empty_or_short_token_is_refused_at_start(tokens, key):
    with pytest.raises(UsageError) as refused:
        FloorPart(FloorPartOptions(tokens=tokens))
    assert str(refused.value) == f"[hub.tokens] {key}: a token must be at least 16 characters"


def test_a_supervisor_entry_that_is_no_hash_is_refused_at_start():
    with pytest.raises(UsageError, match=r"^\[hub.supervisors\] lee: not a password hash"):
        FloorPart(FloorPartOptions(supervisors={"lee": "hunter2"}))


def test_publisher_with_a_bad_token_stops_retrying(hub, caplog):
    publisher = HubPublisher(hub.url, "ann", "wrong")
    publisher.start()
    wait_until(lambda: publisher.refused, "the refusal")
    publisher._thread.join(timeout=5)
    assert not publisher._thread.is_alive()  # no more attempts until restart
    assert publisher.refused == "bad token"
    assert sum("refused agent 'ann': bad token" in r.getMessage() for r in caplog.records) == 1
    publisher.publish(levels(0.0))  # still safe to call
    publisher.stop()


# ---- monitors: every field checked, the connection kept ----

def test_each_bad_field_gets_an_error_and_the_connection_stays_open(hub):
    floor = Floor(hub, login(hub))
    mon = Monitor(hub, "ann")
    mon.send(call_start(mon.call_id))
    floor.wait(lambda: mon.call_id in floor.tiles, "ann's tile")
    floor.watch(mon.call_id)
    floor.wait(lambda: floor.events, "the watch snapshot")

    def bad(message) -> str:
        mon.ws.send(message if isinstance(message, str) else json.dumps(message))
        notice = mon.next_notice()
        assert notice["type"] == "error", notice
        return notice["reason"]

    def event(event, seq=None) -> dict:
        mon.seq += 1
        return {"type": "event", "call_id": mon.call_id, "seq": mon.seq if seq is None else seq, "at": time.time(),
                "event": event}

    assert bad(event(ev("talk_end", 1.0, party={"x": 1}, start=0.5))) == "talk_end.party must be a string"
    assert bad(event(ev("interruption", 1.0, by=["agent"]))) == "interruption.by must be a string"
    assert bad(event(ev("transcript", 1.0, party="customer", start=0.0, end=1.0, text=42, final=True))) == \
        "transcript.text must be a string"
    assert bad(event(ev("levels", 1e26))) == "levels.t must be between 0 and 1e+06"
    assert bad(event(levels(1.0), seq=1e26)).startswith("seq must be an integer")
    assert bad(event(levels(1.0), seq=10 ** 26)).startswith("seq must be an integer")
    assert bad(event(levels(1.0), seq=mon.seq + 10 ** 7)).startswith("seq jumps more than 1000000 ahead")
    assert bad(event(ev("cue", 1.0, kind="slow_down", text="Slow down", rank=0.5))) == "cue.rank must be an integer"
    assert bad(event(ev("levels", 1.0, levels={"agent": "loud"}))) == "levels.levels.agent must be a number"
    assert bad(event(ev("nonsense", 1.0))) == "unknown event type 'nonsense'"
    assert bad(event(ev("levels", 1.0), seq=True)).startswith("seq must be an integer")
    assert bad({"type": "event", "call_id": {"x": 1}, "seq": 1, "event": levels(1.0)}).startswith("call_id must be")
    assert bad({"type": "event", "call_id": mon.call_id, "seq": 99, "at": "noon", "event": levels(1.0)}) == \
        "at must be a wall clock time (Unix seconds)"
    assert bad('{"type":"event","call_id":"x","seq":4,"event":{"type":"levels","t":NaN}}') == "not a JSON object"
    assert bad("this is not JSON") == "not a JSON object"
    assert bad({"type": "dropped", "call_id": mon.call_id, "count": -1}) == "count must be a non-negative integer"
    assert bad({"type": "gossip"}) == "unknown message type 'gossip'"

    mon.send(ev("transcript", 2.0, party="customer", start=1.0, end=2.0, text="still here", final=True))
    mon.send(cue(2.5, "slow_down", "Slow down"))
    floor.wait(lambda: any(e.get("kind") == "slow_down" for e in floor.events), "the good cue after the bad ones")
    floor.wait(lambda: (floor.tiles[mon.call_id].get("line") or {}).get("text") == "still here", "the line")
    watched = [e for e in floor.events if e["type"] != "call_start"]
    assert [e["type"] for e in watched] == ["transcript", "cue"]  # nothing bad reached the supervisor
    assert floor.tiles[mon.call_id]["interruptions"] == {"agent": 0, "customer": 0}
    assert hub.calls[mon.call_id].seq == mon.seq  # the call was not poisoned by the huge seq
    floor.close()


def test_oversized_messages_close_only_that_monitor(hub):
    floor = Floor(hub, login(hub))
    good, bad = Monitor(hub, "ann"), Monitor(hub, "bob")
    good.send(call_start(good.call_id))
    bad.send(call_start(bad.call_id))
    bad.ws.send(json.dumps({"type": "event", "call_id": good.call_id, "seq": 9, "event": levels(0.4)}))
    assert bad.next_notice()["reason"] == "call_id belongs to another agent"
    bad.ws.send("x" * (64 * 1024 + 1))
    with pytest.raises(ConnectionClosed) as closed:
        bad.ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009  # message too big
    good.send(cue(3.0, "wait_for_pause", "Wait for the pause"))
    floor.wait(lambda: (floor.tiles.get(good.call_id, {}).get("cue") or {}).get("kind") == "wait_for_pause",
               "ann's cue")
    assert floor.tiles[good.call_id]["gaps"] == 0
    floor.close()


# ---- monitors: caps per agent ----

def test_an_agent_has_caps_on_connections_and_open_calls():
    hub = start_hub(rate_per_s=2000.0, max_connections=4, max_calls_per_agent=8)
    try:
        floor = Floor(hub, login(hub))
        conns = [Monitor(hub, "flood") for _ in range(4)]
        with connect(hub.monitor_url) as fifth:
            fifth.send(json.dumps({"type": "hello", "v": 1, "agent": "flood", "token": TOKENS["flood"]}))
            assert refusal(fifth)[2] == "too many connections for this agent (4)"
        for i in range(8):  # calls without a call_start, so none supersedes another
            conns[i % 4].send(levels(0.2), call_id=f"flood-{i}")
        wait_until(lambda: len(hub.calls) == 8, "the first 8 calls")
        for i in range(8, 20):
            conns[0].send(levels(0.2), call_id=f"flood-{i}")
        reasons = []
        wait_until(lambda: reasons.extend(n["reason"] for n in conns[0].notices()) or len(reasons) >= 8,
                   "the refusals")
        assert set(reasons) == {"too many open calls for this agent (8)"}
        assert len(hub.calls) == 8

        other = Monitor(hub, "ann")  # everyone else is unaffected
        other.send(call_start(other.call_id))
        floor.wait(lambda: other.call_id in floor.tiles, "ann's call")

        conns[0].ws.close()  # a connection going away frees no connection slot twice, and another opens
        wait_until(lambda: hub.stats()["monitors"] == 4, "the closed connection gone")
        Monitor(hub, "flood").ws.close()
        floor.close()
    finally:
        hub.stop()


def test_the_connection_cap_holds_for_simultaneous_hellos():
    import asyncio

    from websockets.asyncio.client import connect as connect_async

    hub = start_hub(max_connections=4)

    async def attempt():
        ws = await connect_async(hub.monitor_url, open_timeout=10)
        await ws.send(json.dumps({"type": "hello", "v": 1, "agent": "flood", "token": TOKENS["flood"]}))
        return ws, json.loads(await ws.recv())

    async def main():
        results = await asyncio.gather(*(attempt() for _ in range(12)))
        kinds = [reply["type"] for _, reply in results]
        for ws, _ in results:
            await ws.close()
        return kinds

    try:
        kinds = run_async(main())
        assert kinds.count("welcome") == 4 and kinds.count("error") == 8
    finally:
        hub.stop()


def test_a_flooding_monitor_is_rate_limited_without_starving_another():
    hub = start_hub(rate_per_s=50.0)
    try:
        floor = Floor(hub, login(hub))
        steady = Monitor(hub, "ann")
        steady.send(call_start(steady.call_id))
        floor.wait(lambda: steady.call_id in floor.tiles, "the steady call")
        floor.watch(steady.call_id)
        flooder = Monitor(hub, "flood")
        flooder.send(call_start(flooder.call_id))

        stop = threading.Event()
        sent = [0]

        def flood():
            t = 0.0
            while not stop.is_set():
                t += 0.2
                try:
                    flooder.send(levels(t) if sent[0] % 4 else cue(t))
                except ConnectionClosed:
                    return
                sent[0] += 1

        flooding = threading.Thread(target=flood, daemon=True)
        for i in range(50):
            if i == 10:
                flooding.start()
                wait_until(lambda: sent[0] > 100, "the flood to start")
            steady.send(cue(float(i), "pause_first", f"line {i}"))
            time.sleep(0.03)
        floor.wait(lambda: len([e for e in floor.events if e["type"] == "cue"]) >= 50, "every steady cue", 10)
        still_flooding = flooding.is_alive()
        stop.set()
        flooding.join(timeout=5)

        cues = [e for e in floor.events if e["type"] == "cue"]
        assert [e["text"] for e in cues] == [f"line {i}" for i in range(50)]  # none lost, in order
        assert still_flooding and sent[0] > 500
        notices = flooder.notices()
        assert any(n["type"] == "rate_limited" and n["dropped"] > 0 for n in notices), notices
        assert floor.tiles[steady.call_id]["gaps"] == 0
        floor.close()
    finally:
        hub.stop()


def test_a_persistent_flood_is_disconnected():
    hub = start_hub(rate_per_s=20.0, flood_close_s=0.5)
    try:
        flooder = Monitor(hub, "flood")
        with pytest.raises(ConnectionClosed) as closed:
            t = 0.0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                t += 0.2
                flooder.send(levels(t))
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "rate limit exceeded")
    finally:
        hub.stop()


# ---- supervisors' stream ----

def test_floor_websocket_needs_a_session_and_its_own_origin(hub):
    for cookie in ("", "calmline_session=forged"):
        with pytest.raises(InvalidStatus) as refused:
            Floor(hub, cookie)
        assert refused.value.response.status_code == 401
    cookie = login(hub)
    with pytest.raises(InvalidStatus) as refused:
        Floor(hub, cookie, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    Floor(hub, cookie).close()  # its own origin is fine


def test_allowed_origins_option():
    hub = start_hub(allowed_origins=["https://floor.example"])
    try:
        cookie = login(hub)
        Floor(hub, cookie, origin="https://floor.example").close()
        with pytest.raises(InvalidStatus):
            Floor(hub, cookie, origin="https://other.example")
    finally:
        hub.stop()


def test_port_taken(hub):
    with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{hub.port}: address already in use"):
        start_hub(port=hub.port)


def test_tiles_carry_only_what_changed_and_no_levels():
    hub = start_hub(rate_per_s=2000.0, tile_interval_s=0.1)
    try:
        floor = Floor(hub, login(hub))
        mon = Monitor(hub, "ann")
        mon.send(call_start(mon.call_id))
        floor.wait(lambda: mon.call_id in floor.tiles, "the tile")
        for i in range(25):  # 5 s of levels: only the clock moves, nothing a supervisor sees
            mon.send(levels(0.2 * (i + 1)))
        mon.send(cue(5.2, "slow_down", "Slow down"))
        floor.wait(lambda: (floor.tiles[mon.call_id].get("cue") or {}).get("kind") == "slow_down", "the cue")
        first, *rest = [m for m in floor.tile_messages if m["call_id"] == mon.call_id]
        assert {"agent", "status", "started_at", "interruptions", "reasons"} <= first.keys()
        assert all("levels" not in m for m in floor.tile_messages)
        changed = [set(m) - {"call_id", "t", "at"} for m in rest]
        assert changed and all(fields <= {"talking", "cue", "cues_1m"} for fields in changed), changed
        assert len(rest) <= 3  # the talking dot once, the cue: never a tile per levels event
        assert floor.tiles[mon.call_id]["t"] == 5.2

        floor.watch(mon.call_id)  # levels stream to the supervisor watching the call
        floor.wait(lambda: floor.events, "the watch snapshot")
        mon.send(levels(5.4, agent=-12.0))
        floor.wait(lambda: any(e["type"] == "levels" and e["levels"]["agent"] == -12.0 for e in floor.events),
                   "the watched levels")
        floor.close()
    finally:
        hub.stop()


def test_lost_connection_shows_and_resumes(hub):
    floor = Floor(hub, login(hub))
    monitor = Monitor(hub, "ann")
    monitor.send(call_start(monitor.call_id))
    monitor.send(levels(0.2))
    floor.wait(lambda: floor.tiles.get(monitor.call_id, {}).get("talking", {}).get("agent"), "the live tile")
    assert floor.tiles[monitor.call_id]["status"] == "live"

    monitor.ws.close()
    floor.wait(lambda: floor.tiles[monitor.call_id]["status"] == "lost", "connection lost")
    assert floor.tiles[monitor.call_id]["needs_attention"] is False  # lost alone is not an emergency
    assert any(a["kind"] == "lost" and a["call_id"] == monitor.call_id for a in floor.alerts)

    again = Monitor(hub, "ann", call_id=monitor.call_id, seq=monitor.seq)
    again.send(levels(0.4, talking=("customer",)))
    floor.wait(lambda: floor.tiles[monitor.call_id]["status"] == "live", "the call resumed")
    assert floor.tiles[monitor.call_id]["t"] == 0.4 and floor.tiles[monitor.call_id]["gaps"] == 0

    again.send(ev("call_end", 0.6, parties={}))
    floor.wait(lambda: monitor.call_id in floor.ended, "call_end")
    assert floor.tiles[monitor.call_id]["status"] == "ended"
    floor.close()


def test_an_escalating_call_raises_alerts_from_the_pipelines_cues_and_comes_first(hub):
    floor = Floor(hub, login(hub))
    calm, hot = Monitor(hub, "agent00"), Monitor(hub, "agent01")
    for m in (calm, hot):
        m.send(call_start(m.call_id))
    for i in range(60):  # loud levels alone are no alert: the pipeline decides raised voice, with its thresholds
        t = 0.2 * (i + 1)
        calm.send(levels(t, customer=-32, talking=("customer",)))
        hot.send(levels(t, agent=-32 if i < 40 else -8, talking=("agent",)))
    hot.send(cue(12.1, "slow_down", "Slow down"))
    floor.wait(lambda: floor.tiles.get(hot.call_id, {}).get("cues_1m") == 1, "the first cue")
    assert not floor.tiles[hot.call_id]["raised_voice"] and not floor.alerts
    for t, (kind, text) in zip((12.2, 12.4), [("acknowledge", "Acknowledge how they feel"),
                                              ("speak_softly", "Speak softly")]):
        hot.send(cue(t, kind, text))
    floor.wait(lambda: floor.tiles.get(hot.call_id, {}).get("cues_1m") == 3, "the hot call's cues")
    tile = floor.tiles[hot.call_id]
    assert tile["needs_attention"] and tile["raised_voice"]
    assert tile["reasons"][0] in ("agent raised voice", "customer upset, not acknowledged")
    floor.wait(lambda: {a["kind"] for a in floor.alerts if a["call_id"] == hot.call_id} ==
               {"raised_voice", "acknowledge", "cues"}, "the three alerts")
    assert not floor.tiles[calm.call_id]["needs_attention"]
    assert not [a for a in floor.alerts if a["call_id"] == calm.call_id]

    silent = Monitor(hub, "agent02")  # dead air: the pipeline's dead_air cue, then nobody talks
    silent.send(call_start(silent.call_id))
    for i in range(60):
        silent.send(levels(0.2 * (i + 1), talking=()))
    floor.wait(lambda: silent.call_id in floor.tiles, "the silent call")
    assert not any(a["kind"] == "dead_air" for a in floor.alerts)  # 12 s of silence: no cue, no alert
    silent.send(cue(12.0, "dead_air", "Keep them informed"))
    for i in range(10):
        silent.send(levels(12.2 + 0.2 * i, talking=()))
    floor.wait(lambda: floor.tiles[silent.call_id].get("dead_air_s", 0) >= 13, "dead air on the tile")
    assert any(a["kind"] == "dead_air" and a["call_id"] == silent.call_id for a in floor.alerts)
    silent.send(levels(14.4, talking=("agent",)))  # someone talks: dead air is over
    floor.wait(lambda: floor.tiles[silent.call_id]["dead_air_s"] == 0, "dead air over")

    late = Floor(hub, login(hub))  # a supervisor arriving now gets it all in the snapshot, attention first
    late.pump(2)
    first = [m for _, m in late.received if m["type"] == "floor"][0]
    assert first["calls"][0]["call_id"] == hot.call_id
    assert len(first["alerts"]) == len(floor.alerts)
    floor.close()
    late.close()


def test_a_slow_supervisor_is_cut_off_without_delaying_another():
    hub = start_hub(rate_per_s=5000.0, queue_size=128)
    try:
        cookie = login(hub)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
        sock.connect(("127.0.0.1", hub.port))
        slow = connect(hub.url.replace("http", "ws", 1) + "floor/ws", sock=sock, additional_headers={"Cookie": cookie},
                       origin=hub.url.rstrip("/"), max_queue=1).__enter__()
        fast = Floor(hub, cookie)
        monitor = Monitor(hub, "ann")
        monitor.send(call_start(monitor.call_id))
        fast.wait(lambda: monitor.call_id in fast.tiles, "the call")
        for floor_ws in (fast.ws, slow):
            floor_ws.send(json.dumps({"type": "watch", "call_id": monitor.call_id}))
        wait_until(lambda: len(hub.part.floor.watchers.get(monitor.call_id, ())) == 2, "both watching")
        cues = lambda: len([e for e in fast.events if e["type"] == "cue"])  # noqa: E731
        reader = threading.Thread(target=fast.wait, args=(lambda: cues() == 900, "the cues", 30), daemon=True)
        reader.start()  # the fast supervisor reads while the burst goes on
        for i in range(900):
            monitor.send(cue(float(i), "pause_first", f"{i} " + "x" * 2000))
            if i % 20 == 19:
                time.sleep(0.002)  # the reading thread shares this process: let it read as a browser would
        reader.join(timeout=35)
        assert cues() == 900  # every one, though the other supervisor is stuck
        wait_until(lambda: hub.stats()["supervisors"] == 1, "the slow supervisor to be cut off", 10)
        fast.wait(lambda: fast.tiles[monitor.call_id]["cues_1m"] == 61, "the last minute of cues (839 s to 899 s)")
        fast.close()
    finally:
        hub.stop()


def test_an_ended_call_leaves_the_floor_after_a_while():
    hub = start_hub(ended_linger_s=0.2)
    try:
        floor = Floor(hub, login(hub))
        monitor = Monitor(hub, "ann")
        monitor.send(call_start(monitor.call_id))
        monitor.send(ev("call_end", 5.0, parties={}))
        floor.wait(lambda: monitor.call_id in floor.ended, "call_end")
        floor.wait(lambda: monitor.call_id not in floor.tiles, "the tile removed", 5)
        assert monitor.call_id not in hub.calls
        floor.close()
    finally:
        hub.stop()


# ---- the publisher ----

def test_publisher_catches_up_after_the_server_restarts():
    port = free_port()
    hub = start_hub(port=port)
    publisher = HubPublisher(f"http://127.0.0.1:{port}", "ann", TOKENS["ann"])
    publisher.start()
    try:
        publisher.publish(call_start("restart-call"))
        publisher.publish(levels(0.2))
        wait_until(lambda: "restart-call" in hub.calls and hub.calls["restart-call"].t == 0.2, "the call")
        hub.stop()
        wait_until(lambda: not publisher.connected, "the publisher to notice")

        publisher.publish(cue(1.0, "acknowledge", "Acknowledge how they feel"))  # while the server is down
        for i in range(10):
            publisher.publish(levels(1.2 + 0.2 * i))
        publisher.publish(ev("transcript", 3.5, party="customer", start=2.0, end=3.4, text="this is absurd",
                             final=True, words=[]))
        time.sleep(1.2)  # the levels are now stale: they go, but the newest
        hub = start_hub(port=port)
        floor = Floor(hub, login(hub))
        floor.wait(lambda: floor.tiles.get("restart-call", {}).get("t") == 3.5, "the catch-up", 15)
        tile = floor.tiles["restart-call"]
        assert tile["status"] == "live" and tile["cue"]["kind"] == "acknowledge"
        assert tile["line"]["text"] == "this is absurd"
        floor.wait(lambda: floor.tiles["restart-call"]["dropped"] == 9, "the dropped count")
        assert publisher.dropped == 9
        floor.watch("restart-call")
        floor.wait(lambda: floor.events, "the watch snapshot")
        assert [e["type"] for e in floor.events][:1] == ["call_start"]
        assert {"cue", "transcript", "levels"} <= {e["type"] for e in floor.events}
        floor.close()
    finally:
        publisher.stop()
        hub.stop()


def test_publisher_keeps_the_newest_events_when_its_queue_is_full():
    publisher = HubPublisher(f"ws://127.0.0.1:{free_port()}/monitor", "ann", "t", queue_size=5)
    publisher.publish(call_start("c"))
    for i in range(10):
        publisher.publish(levels(0.2 * i))
    publisher.publish(cue(3.0))
    kinds = [w["event"]["type"] for w in publisher._queue]
    assert kinds == ["call_start", "levels", "levels", "levels", "cue"]
    assert publisher.dropped == 7 and [w["seq"] for w in publisher._queue][-1] == 12
    publisher.publish(object())  # garbage never raises into the pipeline
    publisher.publish({"type": "levels", "t": float("nan"), "levels": {"agent": float("-inf")}})


# ---- TLS ----

@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    hub = start_hub(tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    publisher = HubPublisher(hub.url, "ann", TOKENS["ann"], cafile=str(cert))
    try:
        assert hub.url.startswith("https://") and hub.monitor_url.startswith("wss://")
        response = request(hub, "POST", "/login", "username=sup&password=correct horse battery staple",
                           {"Content-Type": "application/x-www-form-urlencoded"}, context)
        assert "Secure" in response.getheader("Set-Cookie")
        floor = Floor(hub, response.getheader("Set-Cookie").split(";")[0], context=context)
        publisher.start()
        publisher.publish(call_start("tls-call"))
        floor.wait(lambda: "tls-call" in floor.tiles, "the call over TLS")
        floor.close()
    finally:
        publisher.stop()
        hub.stop()



def test_the_caps_come_from_config_toml(tmp_path):
    from monitor.config import load_config

    config = tmp_path / "config.toml"
    config.write_text(f'[hub]\nmax_connections_per_agent = 2\nmax_calls_per_agent = 3\n'
                      f'[hub.tokens]\nann = "{TOKENS["ann"]}"\n')
    part = FloorPart.from_config(load_config(config).hub, data_dir=tmp_path)
    assert part.monitors.limits.max_connections == 2 and part.floor.options.max_calls_per_agent == 3
    assert part.options.tokens == {"ann": TOKENS["ann"]} and (tmp_path / "session.key").is_file()


def test_the_publisher_logs_each_refusal_once_not_per_event(hub, caplog):
    publisher = HubPublisher(hub.url, "ann", TOKENS["ann"])
    publisher.start()
    try:
        publisher.publish(call_start("noisy-call"))
        for i in range(30):  # a pipeline bug: every event refused by the server
            publisher.publish(ev("talk_end", 0.2 * (i + 1), party="nobody", start=0.0))
        publisher.publish(cue(7.0, "slow_down", "Slow down"))
        wait_until(lambda: "noisy-call" in hub.calls and (hub.calls["noisy-call"].last_cue or {}).get("kind") == "slow_down",
                   "the good cue")
        # The server answers each (a few in flight at most, so a monitor that never reads costs it nothing).
        wait_until(lambda: publisher.notices.get("talk_end.party must be one of agent, customer", 0) >= 8,
                   "the replies")
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hub says")]
        assert len(lines) == 1 and "talk_end.party" in lines[0]
    finally:
        publisher.stop()


def test_a_monitors_raw_card_number_is_redacted_before_any_supervisor_sees_it(hub):
    """An old or modified monitor may send its transcripts unredacted: the server redacts them again."""
    floor = Floor(hub, login(hub))
    monitor = Monitor(hub, "ann")
    monitor.send(call_start(monitor.call_id))
    floor.wait(lambda: monitor.call_id in floor.tiles, "the call's tile")
    floor.watch(monitor.call_id)
    words = [["my", 1.0, 1.2], ["card", 1.2, 1.5], ["is", 1.5, 1.6], ["4532", 1.6, 2.2], ["0151", 2.3, 2.9],
             ["1283", 3.0, 3.6], ["0366", 3.7, 4.3]]
    monitor.send(ev("transcript", 4.3, party="customer", start=1.0, end=4.3, text="My card is 4532 0151 1283 0366.",
                    final=True, words=words))
    monitor.send(ev("transcript", 6.0, party="customer", start=5.0, end=6.0, text="four five three two", final=True))
    lines = floor.wait(lambda: [e for e in floor.events if e["type"] == "transcript"][-2:]
                       if sum(e["type"] == "transcript" for e in floor.events) >= 2 else None, "both lines")
    seen = json.dumps([floor.received, lines])
    for digits in ("4532", "0151", "1283", "0366", "four five"):
        assert digits not in seen
    assert "[card]" in lines[0]["text"] and "[card]" in [w[0] for w in lines[0]["words"]]
    floor.close()
