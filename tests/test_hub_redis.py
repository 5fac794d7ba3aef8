"""Two servers sharing one floor through a real redis-server (a Redis Stream): calls, watching across servers,
spoofing attempts, malformed messages from a peer, a Redis outage caught up without resending, and a server
whose lease runs out."""

from __future__ import annotations

import json
import logging
import time

import redis

from conftest import free_port
from floor_server import Floor, Monitor, call_start, cue, login, start_hub, start_redis, wait_until
from floor_server import redis_port  # noqa: F401 (a fixture)


def test_two_servers_share_calls_through_redis(redis_port):
    url = f"redis://127.0.0.1:{redis_port}/0"
    hub_a, hub_b = start_hub(redis_url=url), start_hub(redis_url=url)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both servers on redis")
        floor_b = Floor(hub_b, login(hub_b))
        monitor = Monitor(hub_a, "ann")
        monitor.send(call_start(monitor.call_id))
        monitor.send(cue(1.0, "acknowledge", "Acknowledge how they feel"))
        floor_b.wait(lambda: floor_b.tiles.get(monitor.call_id, {}).get("cues_1m") == 1, "the call on server B")
        tile = floor_b.tiles[monitor.call_id]
        assert tile["agent"] == "ann" and tile["hub"] == hub_a.id and tile["status"] == "live"
        assert any(a["kind"] == "acknowledge" for a in floor_b.alerts)

        floor_b.watch(monitor.call_id)  # the live view works across servers too
        floor_b.wait(lambda: floor_b.events, "the snapshot")
        monitor.send(cue(2.0, "slow_down", "Slow down"))
        floor_b.wait(lambda: any(e.get("kind") == "slow_down" for e in floor_b.events), "a watched event")

        # JSON allows raw newlines between tokens; they must not let ann pass for bob on other servers.
        spoof = json.dumps({"agent": "bob", "msg": {"type": "event", "call_id": "spoofed", "seq": 1,
                                                    "event": call_start("spoofed")}})
        monitor.seq += 1
        monitor.ws.send(f'{{"type":"event","call_id":"{monitor.call_id}","seq":{monitor.seq},'
                        f'"event":{json.dumps(cue(3.0))},"pad":\n{spoof}\n}}')
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["cues_1m"] == 3, "the padded cue")
        assert "spoofed" not in floor_b.tiles and "spoofed" not in hub_b.calls

        monitor.ws.close()  # lost on A: lost on B
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["status"] == "lost", "lost on server B")
        floor_b.close()
    finally:
        hub_a.stop()
        hub_b.stop()


def test_a_malformed_message_from_a_peer_is_logged_and_the_subscriber_lives_on(redis_port, caplog):
    caplog.set_level(logging.WARNING, logger="calmline.redis")
    url = f"redis://127.0.0.1:{redis_port}/0"
    hub_a, hub_b = start_hub(redis_url=url), start_hub(redis_url=url)
    client = redis.Redis(port=redis_port)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both servers on redis")
        floor_b = Floor(hub_b, login(hub_b))
        bad_event = {"type": "event", "call_id": "evil", "seq": 1, "at": time.time(),
                     "event": {"type": "talk_end", "t": 1.0, "party": {"not": "a party"}}}
        bad_seq = {"type": "event", "call_id": "evil", "seq": 1e26, "event": {"type": "levels", "t": 1.0}}
        batches = [
            "\n".join([json.dumps({"hub": "peer-1"}), json.dumps({"agent": "ann", "msg": bad_event}),
                       json.dumps({"agent": "ann", "msg": bad_seq}), "not json at all",
                       json.dumps({"agent": ["ann"], "msg": {}}), json.dumps({"agent": "ann", "lost": {"x": 1}}),
                       json.dumps([1, 2, 3])]),
            "[not a header",
            json.dumps({"hub": {"nested": True}}),
            "",
        ]
        for batch in batches:
            client.xadd("calmline:events", {"b": batch})
        client.xadd("calmline:events", {"b": b"\xff\xfe binary junk"})
        client.xadd("calmline:events", {"other": "field"})

        monitor = Monitor(hub_a, "ann")  # a good call from server A still reaches server B
        monitor.send(call_start(monitor.call_id))
        floor_b.wait(lambda: monitor.call_id in floor_b.tiles, "the good call on server B", 10)
        assert "evil" not in hub_b.calls
        assert hub_b.part.floor.bridge.rejected >= 6
        refusals = [r.getMessage() for r in caplog.records if r.name == "calmline.redis" and "refused" in r.getMessage()]
        assert refusals and all("\n" not in line for line in refusals)  # one line each
        assert any("talk_end.party must be a string" in line for line in refusals), refusals
        floor_b.close()
    finally:
        client.close()
        hub_a.stop()
        hub_b.stop()


def test_a_server_outlives_redis_and_reconnects():
    port = free_port()
    server = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    hub_a, hub_b = start_hub(redis_url=url, peer_timeout_s=1.0), start_hub(redis_url=url, peer_timeout_s=1.0)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both servers on redis", 15)
        floor_a, floor_b = Floor(hub_a, login(hub_a)), Floor(hub_b, login(hub_b))
        monitor = Monitor(hub_a, "ann")
        monitor.send(call_start(monitor.call_id))
        floor_b.wait(lambda: monitor.call_id in floor_b.tiles, "the call on server B", 15)

        server.terminate()
        server.wait(timeout=5)
        monitor.send(cue(1.0))  # server A still serves its own monitors and supervisors
        floor_a.wait(lambda: floor_a.tiles.get(monitor.call_id, {}).get("cues_1m") == 1, "the cue on server A", 15)
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["status"] == "lost", "server B to notice", 15)

        monitor.send(cue(2.0, "slow_down", "Slow down"))  # sent once, while Redis is away
        time.sleep(1.0)
        server = start_redis(port)
        # The stream catches server B up: the cues sent while Redis was away arrive, none sent again.
        floor_b.wait(lambda: (floor_b.tiles[monitor.call_id].get("cue") or {}).get("kind") == "slow_down",
                     "the cue sent during the outage on B", 20)
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["cues_1m"] == 2, "both cues on B")
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["status"] == "live", "live again on B")
        assert hub_b.calls[monitor.call_id].status == "live"  # Redis came back empty: no lease, yet not interrupted
        floor_a.close()
        floor_b.close()
    finally:
        hub_a.stop()
        hub_b.stop()
        server.terminate()
        server.wait(timeout=5)


def test_a_reconnecting_subscriber_reads_what_was_added_meanwhile(redis_port):
    """Server B's reader cut off (not Redis): what A sent meanwhile is read from the stream when B is back."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    hub_a, hub_b = start_hub(redis_url=url), start_hub(redis_url=url)
    client = redis.Redis(port=redis_port)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both servers on redis")
        monitor = Monitor(hub_a, "ann")
        monitor.send(call_start(monitor.call_id))
        wait_until(lambda: monitor.call_id in hub_b.calls, "the call on B")
        for info in client.client_list():  # drop B's blocked XREAD connection
            if "xread" in info.get("cmd", ""):
                client.client_kill_filter(_id=info["id"])
        for t in range(1, 6):
            monitor.send(cue(float(t)))
        wait_until(lambda: hub_b.calls[monitor.call_id].seq == 6, "every cue on B", 10)
        assert len(hub_b.calls[monitor.call_id].cues) == 5
        assert hub_b.part.floor.bridge.caught_up >= 1  # read on reconnecting, from where B had got to
    finally:
        client.close()
        hub_a.stop()
        hub_b.stop()


def test_a_server_whose_lease_runs_out_has_its_calls_interrupted_everywhere(redis_port):
    url = f"redis://127.0.0.1:{redis_port}/0"
    hub_a, hub_b = start_hub(redis_url=url), start_hub(redis_url=url)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both servers on redis")
        floor_b = Floor(hub_b, login(hub_b))
        monitor = Monitor(hub_a, "ann")
        monitor.send(call_start(monitor.call_id))
        floor_b.wait(lambda: monitor.call_id in floor_b.tiles, "the call on server B")
        bridge = hub_a.part.floor.bridge
        for task in bridge._tasks:  # server A as if killed: its Redis jobs stop, its lease is not given back
            task.cancel()
        floor_b.wait(lambda: monitor.call_id in floor_b.ended, "the call ended on B", 20)
        call = hub_b.calls[monitor.call_id]
        assert call.status == "ended" and call.snapshot()[-1].get("interrupted") is True
    finally:
        hub_a.stop()
        hub_b.stop()
