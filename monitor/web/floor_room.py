"""The floor as a whole: every call's state, the alerts, who watches which call, and what each supervisor is
sent. Calls come from this server's monitors (monitor.web.monitors) and from other servers (the Redis bridge).

What a supervisor is sent, and how fast:
- alerts, `call_end`, `remove`, and every event of the call they watch: at once, through their Outbox;
- `resolved` (alerts whose reason cleared) to everyone, `acked` to the supervisor who acknowledged (all their
  streams: acknowledgements are per supervisor, kept here, so a reloaded page shows them);
- a `note` (monitor.web.notes) to the agent's overlays showing that call and to the supervisors watching it;
- tiles: a call's tile is published at most every `tile_interval_s`, and only when something a supervisor
  sees changed (not its clock alone); each supervisor then gets only the fields that changed since the
  tile it last received of that call. A supervisor who reads slowly gets the merged change, never a backlog.
  Levels are not in tiles: they stream only to the supervisors watching that call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass

from .floor import Alert, CallState
from .jsonwire import dumps
from .monitors import DroppedMessage, EventMessage, MAX_SEQ_JUMP
from .notes import CARDS, NoteLimiter, check_say, note_event
from .supervisors import Supervisor

log = logging.getLogger("calmline.floor")

PROTOCOL_VERSION = 1
ALERT_KINDS = ("raised_voice", "acknowledge", "cues", "dead_air", "lost")
TILE_BURST = 2
"""A change right after another still goes out at once; then tiles wait for their interval."""
CLOCK_FIELDS = frozenset({"t", "at"})
"""Tile fields that change with every event: sent along with a change, never a reason to send a tile."""


@dataclass
class FloorOptions:
    tile_interval_s: float = 0.25
    """At most one tile per call per this interval to each supervisor, on average (bursts of TILE_BURST)."""
    tick_s: float = 0.05
    """How often changed tiles are looked for (their extra delay at most)."""
    queue_size: int = 512
    """Per-supervisor queue length beyond which watched `levels` are dropped; 4x this of others closes it."""
    max_calls: int = 20000
    """Calls on this floor at most, whatever the agents (each agent has its own cap too)."""
    max_calls_per_agent: int = 8
    ended_linger_s: float = 10.0
    """An ended call stays on the floor this long."""
    lost_forget_s: float = 600.0
    """A call whose connection was lost and never came back is dropped after this long."""
    peer_timeout_s: float = 5.0
    """Calls of a server not heard from over Redis for this long show as connection lost."""
    acknowledge: object = None
    """The user's [cues.acknowledge] (monitor.config.AcknowledgeConfig): what the floor counts as the agent's
    acknowledgement and the customer's frustration (None: the defaults)."""


class Floor:
    """Every call on the floor and the supervisors watching it; runs on the web app's event loop."""

    def __init__(self, options: FloorOptions | None = None, server_id: str | None = None):
        self.options = options or FloorOptions()
        self.id = server_id or secrets.token_hex(4)
        self.calls: dict[str, CallState] = {}
        self.by_agent: dict[str, dict[str, CallState]] = {}
        """Each agent's calls on the floor (their open calls are capped, their new call ends an old one)."""
        self.alerts: deque[Alert] = deque(maxlen=50)
        self.supervisors: set[Supervisor] = set()
        self.watchers: dict[str, set[Supervisor]] = {}
        self.peers: dict[str, float] = {}
        self.bridge = None
        """The Redis bridge (monitor.web.redis_bridge), when servers share the floor."""
        self.published: dict[str, dict] = {}
        """Each call's tile as last published to supervisors."""
        self._dirty: dict[str, float] = {}
        """Calls with an unpublished change -> when they may next be published (monotonic)."""
        self._sent: dict[str, deque[float]] = {}
        """Each call's last TILE_BURST publish times (monotonic)."""
        self._alert_id = 0
        self.viewers: dict[str, set] = {}
        """Each agent's own overlay streams (monitor.web.agent_overlay.Viewer): their current call's events."""
        self.current: dict[str, str] = {}
        """Each agent's current call: the one that started last (an overlay shows one call at a time)."""
        self.cue_counts: dict[str, int] = {}
        """Cues of each call on the floor, for the summary an agent's overlay shows at its end."""
        self.on_viewed_call_end: list = []
        """Called with the CallState when a call that an agent's overlay shows ends (the score comes later)."""
        self.acks: dict[str, set[int]] = {}
        """Each supervisor's (by username) acknowledged alerts."""
        self.notes = NoteLimiter()
        self._note_id = 0
        self.on_note: list = []
        """Called with (CallState, note dict) for each note sent: to record it, to reach a desktop monitor."""

    def stats(self) -> dict:
        return {"calls": len(self.calls), "supervisors": len(self.supervisors),
                "redis": None if self.bridge is None else self.bridge.healthy}

    # ---- calls in ----

    def ingest(self, agent: str, msg: EventMessage, origin: str, conn=None) -> str | None:
        """Apply one checked event of `agent`'s call (from a local monitor or another server); an error
        reason, or None."""
        call = self.calls.get(msg.call_id)
        event = msg.event
        if event.type == "note":
            return "notes come from supervisors only"
        if call is None:
            if len(self.calls) >= self.options.max_calls:
                return "too many calls on this server"
            if event.type == "call_start":
                self._supersede(agent, msg.call_id)
            if origin == self.id and self._open_calls(agent) >= self.options.max_calls_per_agent:
                return f"too many open calls for this agent ({self.options.max_calls_per_agent})"
            started = getattr(event, "started_at", 0.0) or max(0.0, (msg.at or time.time()) - event.t)
            call = self.calls[msg.call_id] = CallState(msg.call_id, agent, origin, started, self.options.acknowledge)
            self.by_agent.setdefault(agent, {})[msg.call_id] = call
            self.current[agent] = msg.call_id
        elif call.agent != agent:
            return "call_id belongs to another agent"
        if call.seq and msg.seq > call.seq + MAX_SEQ_JUMP:
            return f"seq jumps more than {MAX_SEQ_JUMP} ahead of {call.seq}"
        call.origin = origin
        if conn is not None:
            call.conn = conn
            conn.calls.add(msg.call_id)
        resumed = call.status == "lost"
        if resumed:
            call.status = "live"
        if not call.accept_seq(msg.seq):
            if resumed:
                self._changed(call)
            return None
        talking = call.talking
        call.apply(event, msg.raw, msg.at)
        if event.type == "call_end":
            call.changed_at = time.monotonic()
        self._forward(call, msg)
        if event.type == "cue":
            self.cue_counts[call.call_id] = self.cue_counts.get(call.call_id, 0) + 1
        if self.viewers.get(agent) and self.current.get(agent) == call.call_id:
            self._to_viewers(call, msg)
        if self.bridge is not None and origin == self.id:
            self.bridge.send(agent, msg.to_wire())
        # Levels move a tile only when someone starts or stops talking; what changes with time alone (dead
        # air, the last minute of cues) is looked at once a second.
        visible = event.type != "levels" or call.talking != talking
        self._changed(call, ended=event.type == "call_end", visible=visible)
        return None

    def dropped(self, agent: str, msg: DroppedMessage, origin: str) -> str | None:
        call = self.calls.get(msg.call_id) if msg.call_id is not None else None
        if call is not None and call.agent == agent:
            call.dropped += msg.count
            self._changed(call)
        log.info("monitor %s reports %d events dropped while the server was unreachable", agent, msg.count)
        if self.bridge is not None and origin == self.id:
            self.bridge.send(agent, msg.to_wire())
        return None

    def monitor_gone(self, conn) -> None:
        """A local monitor connection ended: its live calls show as connection lost."""
        for call_id in conn.calls:
            call = self.calls.get(call_id)
            if call is not None and call.conn is conn:
                call.conn = None
                if call.status == "live":
                    self.lose(call)
                    if self.bridge is not None:
                        self.bridge.send_lost(conn.agent, call_id)

    def remote_lost(self, agent: str, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.agent == agent and call.status == "live":
            self.lose(call)

    def interrupt(self, server_id: str) -> list[str]:
        """A server's lease ran out (it was killed): its open calls end here as interrupted, for supervisors and
        agents' overlays alike (a call_end marked `interrupted`); the ids of the calls ended."""
        from ..events import CallEnd

        ended = []
        for call in [c for c in self.calls.values() if c.origin == server_id and c.status != "ended"]:
            raw = {"v": 1, "type": "call_end", "t": round(call.t, 3), "parties": {}, "interrupted": True}
            self.ingest(call.agent, EventMessage(call.call_id, call.seq + 1, time.time(), CallEnd(t=call.t), raw),
                        server_id)
            ended.append(call.call_id)
        self.peers.pop(server_id, None)
        return ended

    def heard_from(self, server_id: str) -> None:
        self.peers[server_id] = time.monotonic()

    def lose(self, call: CallState) -> None:
        call.status = "lost"
        call.changed_at = time.monotonic()
        self._changed(call)

    def _open_calls(self, agent: str) -> int:
        return sum(1 for call in self.by_agent.get(agent, {}).values() if call.status != "ended")

    def _supersede(self, agent: str, call_id: str) -> None:
        """An agent has one call at a time: their new call ends any earlier one left open (a crashed monitor)."""
        for call in list(self.by_agent.get(agent, {}).values()):
            if call.call_id != call_id and call.status != "ended":
                call.status = "ended"
                call.changed_at = time.monotonic()
                self._changed(call, ended=True)

    def _changed(self, call: CallState, ended: bool = False, visible: bool = True) -> None:
        """After an event or a status change: alerts at once; the tile now, or when its interval allows."""
        now = time.monotonic()
        if not visible and now - call.checked_at < 1.0:
            return
        call.checked_at = now
        conditions = call.conditions()
        for kind in ALERT_KINDS:
            if kind in conditions and kind not in call.alerted:
                self._alert(call, kind, conditions[kind][1])
        cleared = call.alerted - conditions.keys()
        call.alerted = {k for k in conditions if k in ALERT_KINDS}
        if cleared:
            self._resolve(call, cleared)
        due = self._due(call.call_id)
        if ended or (visible and due <= now and call.call_id not in self._dirty):
            self._publish(call, now)
            if ended:
                self._broadcast(dumps({"type": "call_end", "call_id": call.call_id, "agent": call.agent}))
        elif call.call_id not in self._dirty:
            self._dirty[call.call_id] = due

    def _alert(self, call: CallState, kind: str, text: str) -> None:
        self._alert_id += 1
        alert = Alert(self._alert_id, call.call_id, call.agent, kind, text, round(time.time(), 3))
        self.alerts.append(alert)
        log.info("alert: %s %s: %s", call.agent, call.call_id, text)
        self._broadcast(dumps({"type": "alert", **asdict(alert)}))

    def _resolve(self, call: CallState, kinds: set[str]) -> None:
        """Its reason cleared: the call's open alerts of these kinds are resolved, on every floor page."""
        ids = []
        for alert in self.alerts:
            if alert.call_id == call.call_id and alert.kind in kinds and not alert.resolved:
                alert.resolved = True
                ids.append(alert.id)
        if ids:
            self._broadcast(dumps({"type": "resolved", "ids": ids}))

    def _alerts_for(self, user: str) -> list[dict]:
        acked = self.acks.get(user, set())
        return [{**asdict(alert), "acked": alert.id in acked} for alert in self.alerts]

    def acknowledge(self, sup: Supervisor, msg: dict) -> None:
        """`{"type":"ack","ids":[...]}` (or `"all": true`): these alerts are seen, for this supervisor only."""
        known = {alert.id for alert in self.alerts}
        if msg.get("all") is True:
            ids = known
        else:
            ids = msg.get("ids")
            ids = {i for i in ids if isinstance(i, int) and not isinstance(i, bool)} \
                if isinstance(ids, list) and len(ids) <= 1000 else set()
        acked = self.acks.setdefault(sup.user, set())
        acked &= known
        new = sorted((ids & known) - acked)
        acked.update(new)
        if new:
            text = dumps({"type": "acked", "ids": new})
            for other in [s for s in self.supervisors if s.user == sup.user]:
                self._put(other, "event", text)

    def say(self, sup: Supervisor, msg: dict) -> None:
        """A supervisor's note to the agent of a live call (monitor.web.notes): to the agent's overlays showing
        that call, to the supervisors watching it, to `on_note` (the recording); a `said` or `error` reply."""
        request = check_say(msg)
        call = self.calls.get(request.call_id) if not isinstance(request, str) else None
        if not isinstance(request, str) and (call is None or call.status == "ended"):
            request = "no such live call"
        if isinstance(request, str):
            self._put(sup, "event", dumps({"type": "error", "reason": request, "about": "say"}))
            return
        wait = self.notes.take(sup.user)
        if wait:
            self._put(sup, "event", dumps({"type": "error", "about": "say",
                                           "reason": f"too many messages; wait {wait:.0f} s"}))
            return
        self._note_id = max(self._note_id + 1, int(time.time() * 1000) % 1_000_000_000)  # unique across servers
        note = note_event(self._note_id, round(call.t, 3), sup.user, request)
        log.info("note from %s to %s (call %s)%s", sup.user, call.agent, call.call_id,
                 f": card {request.card}" if request.card else "")
        shown = self._deliver(call, note)
        self._put(sup, "event", dumps({"type": "said", "call_id": call.call_id, "note": note, "viewers": shown,
                                       "monitor": call.conn is not None or call.origin != self.id}))
        if self.bridge is not None:
            self.bridge.send_note(call.agent, call.call_id, note)

    def remote_note(self, agent: str, call_id: str, note: dict) -> str | None:
        """A note a supervisor on another server sent (through Redis) to a call this floor knows too."""
        call = self.calls.get(call_id)
        if call is None or call.agent != agent:
            return "note for an unknown call"
        if any(n.get("id") == note.get("id") for n in call.notes()):
            return None
        self._deliver(call, note)
        return None

    def _deliver(self, call: CallState, note: dict) -> int:
        """A note to this server's overlays of the agent (if the call is their current one), the supervisors
        watching the call, and `on_note` (its recording, its desktop monitor); how many overlays showed it."""
        call.add_note(note)
        text = dumps(note)
        shown = list(self.viewers.get(call.agent, ())) if self.current.get(call.agent) == call.call_id else []
        for viewer in shown:
            viewer.put("note", text)
        watched = dumps({"type": "event", "call_id": call.call_id, "at": time.time(), "event": note})
        for other in list(self.watchers.get(call.call_id, ())):
            self._put(other, "event", watched)
        for hook in self.on_note:
            try:
                hook(call, note)
            except Exception:  # noqa: BLE001 - a hook's fault is not the supervisor's
                log.exception("note hook failed")
        return len(shown)

    def _forward(self, call: CallState, msg: EventMessage) -> None:
        watchers = self.watchers.get(call.call_id)
        if not watchers:
            return
        text = dumps({"type": "event", "call_id": call.call_id, "at": msg.at, "event": msg.raw})
        kind = "levels" if msg.event.type == "levels" else "event"
        for sup in list(watchers):
            self._put(sup, kind, text)

    # ---- agents' own overlays ----

    def view(self, viewer) -> None:
        """An agent's overlay stream opened: their current call's snapshot first (the shape the loopback
        overlay sends: call_start, recent transcripts, the latest cue, pace, levels, call_end), then its events."""
        call = self.calls.get(self.current.get(viewer.agent, ""))
        if call is not None:
            for raw in call.snapshot():
                viewer.put(str(raw.get("type", "")), dumps(raw))
            if call.status == "ended":
                viewer.put("call_summary", dumps(self.summary(call, *call.scored)))
        self.viewers.setdefault(viewer.agent, set()).add(viewer)

    def unview(self, viewer) -> None:
        viewers = self.viewers.get(viewer.agent)
        if viewers is not None:
            viewers.discard(viewer)
            if not viewers:
                del self.viewers[viewer.agent]

    def summary(self, call: CallState, score: dict | None = None, self_view: dict | None = None) -> dict:
        """What an agent's overlay shows when their call ends: how long, cues, interruptions, talk share, and
        the scorecard's score once the call is recorded here ({met, total}; absent until then)."""
        tile = call.tile()
        out = {"v": 1, "type": "call_summary", "t": round(call.t, 3), "call_id": call.call_id,
               "cues": self.cue_counts.get(call.call_id, 0), "interruptions": dict(call.interruptions),
               "share": tile["share"], "wpm": call.wpm}
        if score is not None:
            out["score"] = score
        if self_view is not None:
            out["self_view"] = self_view
        return out

    def send_summary(self, call_id: str, score: dict, self_view: dict | None = None) -> None:
        """The ended call's summary again, now with its score (and the agent's self-view, monitor.web.self_view),
        to the overlays still showing it; kept for an overlay that connects later."""
        call = self.calls.get(call_id)
        if call is None or self.current.get(call.agent) != call_id:
            return
        call.scored = (score, self_view)
        text = dumps(self.summary(call, score, self_view))
        for viewer in list(self.viewers.get(call.agent, ())):
            viewer.put("call_summary", text)

    def _to_viewers(self, call: CallState, msg: EventMessage) -> None:
        kind = msg.event.type
        texts = [(kind, dumps(msg.raw))]
        if kind == "call_end":
            texts.append(("call_summary", dumps(self.summary(call))))
            for hook in self.on_viewed_call_end:
                hook(call)
        for viewer in list(self.viewers.get(call.agent, ())):
            for kind_, text in texts:
                if not viewer.put(kind_, text):
                    log.warning("closing %s's overlay: too far behind", viewer.agent)
                    self.unview(viewer)
                    viewer.close(1013, "client too slow")
                    break

    # ---- tiles ----

    def _due(self, call_id: str) -> float:
        """When the call's tile may next be published: TILE_BURST in a row, then one per interval on average."""
        sent = self._sent.get(call_id)
        if sent is None or len(sent) < TILE_BURST:
            return 0.0
        return sent[0] + TILE_BURST * self.options.tile_interval_s

    def publish_due(self) -> None:
        """Publish every changed tile whose interval has passed (the floor's tick)."""
        if not self._dirty:
            return
        now = time.monotonic()
        due = [call_id for call_id, when in self._dirty.items() if when <= now]
        for call_id in due:
            del self._dirty[call_id]
            call = self.calls.get(call_id)
            if call is not None:
                self._publish(call, now)

    def _publish(self, call: CallState, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._dirty.pop(call.call_id, None)
        tile = call.tile()
        last = self.published.get(call.call_id)
        if last is not None and all(last.get(k) == v for k, v in tile.items() if k not in CLOCK_FIELDS):
            return  # only its clock moved: supervisors extrapolate that themselves
        self.published[call.call_id] = tile
        self._sent.setdefault(call.call_id, deque(maxlen=TILE_BURST)).append(now)
        for sup in self.supervisors:
            sup.tile_changed(call.call_id)

    # ---- supervisors ----

    def connect(self, sup: Supervisor) -> None:
        """A supervisor's floor stream opened: the whole floor first, then changes."""
        for call_id in list(self._dirty):
            call = self.calls.get(call_id)
            if call is not None:
                self._publish(call)
        tiles = [self.published[call_id] for call_id in self.calls if call_id in self.published]
        tiles.sort(key=lambda tile: (not tile["needs_attention"], -tile["attention"], tile["started_at"]))
        sup.known = {tile["call_id"]: dict(tile) for tile in tiles}
        sup.outbox.put("floor", dumps({"type": "floor", "v": PROTOCOL_VERSION, "hub": self.id, "user": sup.user,
                                       "calls": tiles, "alerts": self._alerts_for(sup.user),
                                       "cards": CARDS}))
        sup.wake.set()
        self.supervisors.add(sup)

    def disconnect(self, sup: Supervisor) -> None:
        self.supervisors.discard(sup)
        self._unwatch(sup)

    def on_supervisor_message(self, sup: Supervisor, msg) -> None:
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "ack":
            return self.acknowledge(sup, msg)
        if kind == "say":
            return self.say(sup, msg)
        if kind != "watch":
            self._put(sup, "event", dumps({"type": "error", "reason": "expected a watch, ack or say message"}))
            return
        self._unwatch(sup)
        call_id = msg.get("call_id")
        if call_id is None:
            return
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None:
            self._put(sup, "event", dumps({"type": "error", "reason": "no such call",
                                           "call_id": call_id if isinstance(call_id, str) else None}))
            return
        sup.watching = call_id
        self.watchers.setdefault(call_id, set()).add(sup)
        self._put(sup, "event", dumps({"type": "watching", "call_id": call_id, "agent": call.agent,
                                       "events": call.snapshot()}))

    def _unwatch(self, sup: Supervisor) -> None:
        if sup.watching is not None:
            watchers = self.watchers.get(sup.watching)
            if watchers is not None:
                watchers.discard(sup)
                if not watchers:
                    del self.watchers[sup.watching]
            sup.watching = None

    def end_sessions(self, sid: str, reason: str) -> None:
        """A session ended (logout): close its floor streams."""
        for sup in [s for s in self.supervisors if s.sid == sid]:
            self._drop(sup, 1008, reason)
        for viewer in [v for vs in self.viewers.values() for v in vs if v.sid == sid]:
            self.unview(viewer)
            viewer.close(1008, reason)

    def _broadcast(self, text: str) -> None:
        for sup in list(self.supervisors):
            self._put(sup, "event", text)

    def _put(self, sup: Supervisor, kind: str, text: str) -> None:
        if not sup.put(kind, text):
            log.warning("closing supervisor %s: too far behind", sup.user)
            self._drop(sup, 1013, "client too slow")

    def _drop(self, sup: Supervisor, code: int, reason: str) -> None:
        self.disconnect(sup)
        sup.close(code, reason)

    # ---- housekeeping ----

    async def run(self) -> None:
        """The floor's clock: publish changed tiles every tick, sweep once a second."""
        sweep_at = 0.0
        while True:
            await asyncio.sleep(self.options.tick_s)
            try:
                self.publish_due()
                if time.monotonic() >= sweep_at:
                    sweep_at = time.monotonic() + 1.0
                    self.sweep()
            except Exception:
                log.exception("floor tick failed")

    def sweep(self) -> None:
        """Drop calls ended a while ago, forget lost ones, notice servers gone silent, end expired sessions."""
        now = time.monotonic()
        opts = self.options
        dead_peers = {peer for peer, seen in self.peers.items() if now - seen > opts.peer_timeout_s}
        for call in list(self.calls.values()):
            if call.status == "ended" and now - call.changed_at > opts.ended_linger_s:
                self._remove(call)
            elif call.status == "lost" and now - call.changed_at > opts.lost_forget_s:
                self._remove(call)
            elif call.status == "live" and call.origin in dead_peers:
                self.lose(call)
        wall = time.time()
        for sup in [s for s in self.supervisors if s.expires < wall]:
            self._drop(sup, 1008, "session expired")
        for viewer in [v for vs in self.viewers.values() for v in vs if v.expires < wall]:
            self.unview(viewer)
            viewer.close(1008, "session expired")

    def _remove(self, call: CallState) -> None:
        self.calls.pop(call.call_id, None)
        agent_calls = self.by_agent.get(call.agent, {})
        agent_calls.pop(call.call_id, None)
        if not agent_calls:
            self.by_agent.pop(call.agent, None)
        if self.current.get(call.agent) == call.call_id:
            del self.current[call.agent]
        self.cue_counts.pop(call.call_id, None)
        self.published.pop(call.call_id, None)
        self._dirty.pop(call.call_id, None)
        self._sent.pop(call.call_id, None)
        self.watchers.pop(call.call_id, None)
        for sup in self.supervisors:
            sup.forget(call.call_id)
        self._broadcast(dumps({"type": "remove", "call_id": call.call_id}))
