"""Two servers sharing one floor through a real redis-server: calls, watching across servers, spoofing
attempts, malformed messages from a peer, and a Redis outage."""

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
            client.publish("calmline:events", batch)
        client.publish("calmline:events", b"\xff\xfe binary junk")

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

        server = start_redis(port)
        # Pub/sub keeps nothing for a subscriber that is still reconnecting: send until server B hears again.
        deadline = time.monotonic() + 30
        t = 2.0
        while not (floor_b.tiles[monitor.call_id].get("cue") or {}).get("kind") == "slow_down":
            assert time.monotonic() < deadline, "server B never heard server A again"
            monitor.send(cue(t, "slow_down", "Slow down"))
            t += 1.0
            floor_b.pump(timeout=1.0)
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["status"] == "live", "live again on B")
        floor_a.close()
        floor_b.close()
    finally:
        hub_a.stop()
        hub_b.stop()
        server.terminate()
        server.wait(timeout=5)
