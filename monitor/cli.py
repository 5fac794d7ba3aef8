"""The `calmline` command line. User mistakes end in one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

from .session.stop import Stop

_STOP = Stop.on_signals()  # first of all, so that SIGINT/SIGTERM during start-up is a clean stop too

from audio import SAMPLE_RATE  # noqa: E402
from audio.errors import AudioError
from audio.sources import open_monos, open_stereo, paced

from .config import Config, load_config
from .errors import UsageError
from .library.report import _clock, build_report, format_summary
from .session.session import CallSession
from .session.sinks import Publishers
from .library.store import Store, open_store, resolve_data_dir, resolve_store_url

DEMO_CALL = Path(__file__).parent / "samples" / "demo_call.flac"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) not in CALL_LOOPS and Stop.release():
        return 130
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (UsageError, AudioError) as exc:
        print(f"calmline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calmline", description="Real-time call audio monitor with de-escalation cues.")
    parser.add_argument("--config", metavar="FILE", help="config file (default: $CALMLINE_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(metavar="COMMAND")

    analyze = sub.add_parser("analyze", help="analyse a recorded call and print its report")
    _call_args(analyze)
    analyze.add_argument("--json", action="store_true", help="print the report as JSON")
    analyze.add_argument("--events", metavar="FILE", help="write every event as JSON Lines to FILE")
    analyze.add_argument("--no-transcribe", action="store_true", help="acoustic analysis only (fast)")
    analyze.add_argument("--progress-every", type=float, default=10.0, metavar="S",
                         help="when stderr is not a terminal, a progress line every S seconds (default 10)")
    _summary_args(analyze)
    analyze.set_defaults(handler=cmd_analyze)

    demo = sub.add_parser("demo", help="replay a call (default: the bundled demo call) in real time to the overlay")
    _call_args(demo)
    _live_args(demo)
    demo.add_argument("--loop", action="store_true", help="replay again and again until interrupted")
    demo.add_argument("--linger", type=float, default=0.0, metavar="S", help="keep serving S seconds after the call")
    demo.add_argument("--wait", type=float, default=None, metavar="S",
                      help=f"wait up to S seconds for an overlay to connect before starting (default: {DEMO_WAIT_S:g} "
                           "when run from a terminal, 0 from a script; 0: start at once)")
    _summary_args(demo)
    demo.set_defaults(handler=cmd_demo)

    live = sub.add_parser("live", help="monitor a live call from audio devices")
    live.add_argument("--agent-device", metavar="D", help="the agent's headset microphone (index or name)")
    live.add_argument("--customer-device", metavar="D", help="the customer's line, e.g. a monitor source")
    live.add_argument("--device", metavar="D", help="one multichannel device with a channel per party")
    live.add_argument("--agent-channel", type=int, metavar="N", help="agent's channel on --device (default 0)")
    live.add_argument("--customer-channel", type=int, metavar="N", help="customer's channel on --device (default 1)")
    live.add_argument("--check", action="store_true", help="only check that the devices open, then exit")
    _live_args(live)
    live.set_defaults(handler=cmd_live)

    devices = sub.add_parser("devices", help="list audio input devices")
    devices.set_defaults(handler=cmd_devices)

    server = sub.add_parser("server", help="run the web app: floor, monitors' stream, call library, overlay")
    hub = sub.add_parser("hub", help="deprecated name of `server`")
    for command in (server, hub):
        command.add_argument("--host", help="address to listen on (default: [hub] host, 127.0.0.1)")
        command.add_argument("--port", type=int, help="port to listen on (default: [hub] port, 8766)")
        command.add_argument("--redis", metavar="URL", help="share the floor with other servers through Redis")
        command.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)  # for tests: stop after S
    server.set_defaults(handler=cmd_server)
    hub.set_defaults(handler=cmd_hub)

    hash_pw = sub.add_parser("hash-password", help="make a salted password hash for [hub.supervisors] or [hub.agents]")
    hash_pw.set_defaults(handler=cmd_hash_password)

    calls = sub.add_parser("calls", help="list recorded calls, newest first")
    calls.add_argument("--json", action="store_true", help="the same rows as JSON")
    calls.add_argument("--agent", metavar="NAME", help="only this agent's calls")
    calls.add_argument("--since", metavar="YYYY-MM-DD", help="only calls started on or after this day")
    calls.add_argument("--until", metavar="YYYY-MM-DD", help="only calls started on or before this day")
    calls.set_defaults(handler=cmd_calls)

    report = sub.add_parser("report", help="write a recorded call's report (HTML, or --json) with its scorecard")
    report.add_argument("call_id", metavar="CALL_ID", help="a call id from `calmline calls` (a unique prefix will do)")
    report.add_argument("--out", metavar="FILE", help="where to write (default: calmline-report-ID.html)")
    report.add_argument("--json", action="store_true", help="the report and scorecard as JSON")
    report.set_defaults(handler=cmd_report)

    replay = sub.add_parser("replay", help="serve a recorded call's replay page (audio, timeline, transcript)")
    replay.add_argument("call_id", metavar="CALL_ID", help="a call id from `calmline calls` (a unique prefix will do)")
    replay.add_argument("--host", help="address to serve on (default 127.0.0.1)")
    replay.add_argument("--port", type=int, help="port to serve on (default 8767)")
    replay.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)  # for tests: stop after S
    replay.set_defaults(handler=cmd_replay)

    purge = sub.add_parser("purge", help="delete recorded calls older than the retention period")
    purge.add_argument("--older-than", type=float, metavar="DAYS", help="default: [store] retention_days")
    purge.set_defaults(handler=cmd_purge)

    for command in (analyze, demo, live, calls, report, replay, purge, server, hub):
        command.add_argument("--data-dir", metavar="DIR", help="where calls are recorded "
                             "(default: $CALMLINE_DATA_DIR or ~/.local/share/calmline)")
        command.add_argument("--store-url", metavar="URL", help="the call library in PostgreSQL, shared by "
                             "servers (postgresql://...; default: $CALMLINE_STORE_URL or [store] url; audio stays "
                             "in --data-dir)")
    for command in (analyze, demo, live):
        command.add_argument("--no-record", action="store_true", help="do not record this call")
        command.add_argument("--agent-name", metavar="NAME", help="the agent the call is recorded under "
                             "(default: [store] agent_name, else 'demo' for demo, 'unknown' for analyze and "
                             "your login name for live)")
    return parser


def _live_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", metavar="URL", help="publish this call to the supervisors' hub (or [hub] url)")
    parser.add_argument("--token", metavar="T", help="this agent's token for the hub (or [hub] token)")
    parser.add_argument("--host", help="address to serve the overlay on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to serve the overlay on (default 8765)")
    parser.add_argument("--events", metavar="FILE", help="also write every event as JSON Lines to FILE")
    parser.add_argument("--no-transcribe", action="store_true", help="acoustic analysis only")


def _summary_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="the full lists after the call: every interruption, cue and transcript line")


def _call_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call", nargs="?", metavar="CALL", help="stereo call file (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--agent", metavar="FILE", help="mono file of the agent (with --customer)")
    parser.add_argument("--customer", metavar="FILE", help="mono file of the customer (with --agent)")
    parser.add_argument("--agent-channel", type=int, metavar="N", help="channel index of the agent (default 0)")
    parser.add_argument("--customer-channel", type=int, metavar="N", help="channel index of the customer (default 1)")


def open_call(args, config: Config, default: Path | None = None):
    """The call file(s) opened for streaming (channels 'agent', 'customer') and a name for its source."""
    if args.agent or args.customer:
        if args.call or not (args.agent and args.customer):
            raise UsageError("give either one stereo CALL file or both --agent FILE and --customer FILE")
        return open_monos({"agent": args.agent, "customer": args.customer}, _warn), f"{args.agent} + {args.customer}"
    path = args.call or default
    if path is None:
        raise UsageError("no call given: pass a CALL file, or --agent FILE --customer FILE")
    picks = {
        "agent": config.channels.agent if args.agent_channel is None else args.agent_channel,
        "customer": config.channels.customer if args.customer_channel is None else args.customer_channel,
    }
    if picks["agent"] == picks["customer"]:
        raise UsageError(f"agent and customer are both on channel {picks['agent']}; they need a channel each")
    return open_stereo(path, picks, _warn), str(path)


def _warn(message: str) -> None:
    print(f"calmline: warning: {message}", file=sys.stderr, flush=True)


def cmd_analyze(args) -> int:
    config = load_config(args.config)
    _agent_name(args, config, "unknown")
    call, source = open_call(args, config)
    if args.progress_every <= 0:
        raise UsageError("--progress-every must be more than 0 seconds")
    progress = Progress(call.duration_s, every_s=args.progress_every) if call.duration_s > PROGRESS_MIN_S else None
    session = _session(args, config, source, progress=progress.update if progress else None)
    try:
        result = session.run(call.frames())
    finally:
        if progress:
            progress.done(session.pipeline is not None and session.pipeline.now >= call.duration_s - 1)
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print(_summary(result, config, recorded=session.store is not None, verbose=args.verbose))
    return 0


PROGRESS_MIN_S = 60.0
"""Files at least this long show their analysis' progress (shorter ones take a few seconds)."""


def _summary(result, config: Config, recorded: bool, verbose: bool = False) -> str:
    """The end of a call on a terminal: a few counts, the score, its id and what to run next; the full lists
    (every interruption, cue and line) only with --verbose."""
    from .library.scorecard import score_call

    report = result.report
    card = score_call([e.to_dict() for e in result.events], config)
    lines = [format_summary(report)] if verbose else [_short(report)]
    lines.append(f"Scorecard: {card['score']} of 100 ({card['met']} of {card['total']} met)")
    if recorded:
        lines += [f"Call id: {result.call_id}",
                  f"Next: calmline replay {result.call_id}    (audio, timeline, transcript in the browser)",
                  f"      calmline report {result.call_id}    (HTML report with the scorecard)"]
    else:
        lines.append(f"Call id: {result.call_id} (not recorded)")
    if not verbose:
        lines.append("Every interruption, cue and line: --verbose (or --json)")
    return "\n".join(lines)


def _short(report: dict) -> str:
    """The counts of a report: duration, each party's talk, loudness, pace and interruptions, cue kinds."""
    lines = [f"Call of {_clock(report['duration_s'])} (m:ss): {len(report['cues'])} cues, "
             f"{len(report['interruptions'])} interruptions, {len(report['overlaps'])} overlaps, "
             f"{len(report['transcript'])} transcript lines"]
    total = sum(p["talk_s"] for p in report["parties"].values()) or 1.0
    for name, p in report["parties"].items():
        loud = "-" if p["loudness_dbfs"] is None else f"{p['loudness_dbfs']:.1f} dBFS"
        wpm = "" if p["wpm"] is None else f", {p['wpm']:.0f} wpm"
        lines.append(f"  {name:<9} talked {p['talk_s']:6.1f} s ({100 * p['talk_s'] / total:3.0f}%), "
                     f"loudness {loud}{wpm}, cut in {p['interruptions']} times")
    kinds: dict[str, int] = {}
    for c in report["cues"]:
        kinds[c["text"]] = kinds.get(c["text"], 0) + 1
    if kinds:
        lines.append("  cues: " + ", ".join(f"{text} x{n}" for text, n in sorted(kinds.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def _agent_name(args, config: Config, default: str) -> None:
    """Who the call is recorded under: --agent-name, else [store] agent_name, else `default` (a file's
    agent is unknown, and the demo's is nobody: the login name, often root, would be wrong)."""
    name = (getattr(args, "agent_name", None) or "").strip()
    if getattr(args, "agent_name", None) is not None and not name:
        raise UsageError("--agent-name must not be empty")
    config.store.agent_name = name or config.store.agent_name or default


def cmd_demo(args) -> int:
    """Replay a call file in real time through exactly the live path: same pipeline, server and overlay.
    It waits (up to --wait) for an overlay to connect, so that whoever opens the page sees the call from
    its start; when it ends it tells the overlay so, instead of leaving it reconnecting."""
    config = load_config(args.config)
    _agent_name(args, config, "demo")
    if args.wait is None:  # a person at a terminal opens the page first; a script or a test does not
        args.wait = DEMO_WAIT_S if sys.stderr.isatty() and sys.stdin.isatty() else 0.0
    if args.wait < 0 or args.linger < 0:
        raise UsageError("--wait and --linger take seconds, 0 or more")
    call, source = open_call(args, config, default=DEMO_CALL)
    hub = _publisher(args, config)
    overlay = _serve(args, config)
    publish = Publishers(overlay, hub)
    stop = Stop.on_signals()
    store = _call_store(args, config)  # one store for every round of a loop: a store per round leaked its files
    _notes_from_hub(hub, overlay, store)
    try:
        _wait_for_overlay(overlay, args.wait, stop)
        while not stop.flag.is_set():
            result = _session(args, config, source, live=True, publish=(publish,), store=store).run(
                paced(call.frames(), SAMPLE_RATE))
            _self_view_to(overlay, result, config, recorded=store is not None)
            print(_summary(result, config, recorded=store is not None, verbose=args.verbose), flush=True)
            if not args.loop:
                break
            print("calmline: --loop: the call starts again (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if args.linger and not stop.flag.is_set():
            print(f"calmline: the overlay stays up {args.linger:g} s", file=sys.stderr, flush=True)
            stop.flag.wait(args.linger)
    finally:
        overlay.farewell(DEMO_ENDED)
        publish.stop()
        if store is not None:
            store.close()
    return 0


DEMO_WAIT_S = 60.0
"""How long `demo` run from a terminal waits for the first overlay before it starts anyway (--wait)."""
DEMO_ENDED = "The demo has ended. Run calmline demo again to watch another call."


def _wait_for_overlay(overlay, seconds: float, stop: Stop) -> None:
    """Hold the call until an overlay connects, saying so; after `seconds`, start anyway."""
    if seconds <= 0 or overlay.client_count:
        return
    print(f"calmline: waiting for the overlay: open {overlay.url} (the call starts when it connects, "
          f"or in {seconds:g} s anyway)", file=sys.stderr, flush=True)
    deadline = time.monotonic() + seconds
    while not overlay.client_count and not stop.flag.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"calmline: no overlay after {seconds:g} s; starting anyway", file=sys.stderr, flush=True)
            return
        stop.flag.wait(min(0.1, left))
    if overlay.client_count:
        print("calmline: overlay connected; the call starts", file=sys.stderr, flush=True)


def cmd_live(args) -> int:
    """Monitor a live call from capture devices until interrupted."""
    from audio.devices import CaptureOptions, DeviceCapture

    config = load_config(args.config)
    _agent_name(args, config, "")  # empty: the recorder stores the login name of whoever sits at the headset
    inputs = _inputs(args, config)
    capture = DeviceCapture(inputs, CaptureOptions())
    capture.start()  # a missing device is an error before anything is served
    if args.check:
        capture.stop()
        print("devices ready: " + ", ".join(f"{i.label}={i.device}:{i.channel}" for i in inputs))
        return 0
    try:
        hub = _publisher(args, config)
        overlay = _serve(args, config)
        publish = Publishers(overlay, hub)
        source = "live: " + ", ".join(f"{i.label}={i.device}:{i.channel}" for i in inputs)
        try:
            session = _session(args, config, source, live=True, publish=(publish,))
            _notes_from_hub(hub, overlay, session.store)
            result = session.run(capture.read())
            _self_view_to(overlay, result, config, recorded=session.store is not None)
        finally:
            publish.stop()
    finally:
        capture.stop()
    print(_summary(result, config, recorded=session.store is not None))
    return 0


def _inputs(args, config: Config) -> list:
    """Which device and channel carries each party: the options, else [devices] in config.toml."""
    from audio.devices import Input

    device = args.device or config.devices.device or None
    agent_dev = args.agent_device or config.devices.agent_device
    customer_dev = args.customer_device or config.devices.customer_device
    agent_ch = config.channels.agent if args.agent_channel is None else args.agent_channel
    customer_ch = config.channels.customer if args.customer_channel is None else args.customer_channel
    if args.device is not None and (args.agent_device or args.customer_device):
        raise UsageError("give either --device (one device, a channel per party) or --agent-device and --customer-device")
    if device is not None and not (args.agent_device or args.customer_device):
        if agent_ch == customer_ch:
            raise UsageError(f"agent and customer are both on channel {agent_ch}; they need a channel each")
        return [Input(_device(device), agent_ch, "agent"), Input(_device(device), customer_ch, "customer")]
    if agent_dev and customer_dev:
        return [Input(_device(agent_dev), args.agent_channel or 0, "agent"),
                Input(_device(customer_dev), args.customer_channel or 0, "customer")]
    raise UsageError("say where the call comes from: --agent-device D --customer-device D, or --device D, "
                     "or [devices] in config.toml (see `calmline devices`)")


def cmd_devices(args) -> int:
    """The input devices; when none can carry a softphone's audio, where to read how to route it."""
    from audio.devices import capture_hint, format_devices, list_devices

    devs = list_devices()
    print(format_devices(devs))
    hint = capture_hint(devs)
    if hint:
        print(hint)
    return 0


def cmd_server(args) -> int:
    """Run the whole web app in the foreground until SIGINT or SIGTERM (then exit 0)."""
    from .ingest.outputs import ingest_part
    from .web.app import LOOPBACK_NAMES, WebOptions, WebServer, build_app
    from .web.library import LibraryPart
    from .web.overlay import OverlayPart

    config = load_config(args.config)
    cfg = config.hub
    options = WebOptions(host=args.host or cfg.host, port=cfg.port if args.port is None else args.port,
                         allowed_hosts=list(cfg.allowed_hosts or []),
                         allowed_origins=list(cfg.allowed_origins or []),
                         tls_cert=cfg.tls_cert or None, tls_key=cfg.tls_key or None)
    store = _store(args, config)
    parts = []
    try:
        from .web.floor_part import FloorPart
    except ImportError:  # the floor is not part of this build: the library then answers loopback clients only
        parts += [OverlayPart(), LibraryPart(store, lambda request, call: request.client is not None
                                             and request.client.host in ("127.0.0.1", "::1"), config)]
    else:
        from .web.agent_overlay import AgentOverlayPart

        if not cfg.supervisors:
            print("calmline: warning: no supervisors in [hub.supervisors]; nobody can open the floor "
                  "(make a hash with `calmline hash-password`)", file=sys.stderr)
        floor = FloorPart.from_config(cfg, data_dir=store.dir, tls=bool(options.tls_cert),
                                      redis_url=args.redis or None, redact=config.redact,
                                      acknowledge=config.cues.acknowledge)
        # agents' overlays (signed in, their calls from the floor), not the loopback overlay of live/demo
        library = LibraryPart(store, floor.authorize, config)
        parts += [AgentOverlayPart(floor, library=library), floor, library]
    parts.append(ingest_part(config, store, parts))  # /ingest/audiohook, /ingest/twilio, /ingest/pcm
    if not options.tls_cert and options.host.strip("[]").lower() not in (*LOOPBACK_NAMES, "::1"):
        print(f"calmline: warning: listening on {options.host} without TLS: passwords, sessions and calls cross "
              "the network in clear (set [hub] tls_cert and tls_key)", file=sys.stderr)
    server = WebServer(build_app(options, parts), options)
    server.start()
    print(f"calmline: server at {server.url} (floor: {server.url}floor, calls: {server.url}calls, "
          f"monitors: {server.url.replace('http', 'ws', 1)}monitor)", file=sys.stderr, flush=True)
    stop = Stop.on_signals()
    try:
        stop.flag.wait(args.seconds)
    finally:
        server.stop()
        store.close()  # PostgreSQL: what the write-behind queue still holds is written first
    return 0


def cmd_hub(args) -> int:
    """`calmline hub`: the old name of `calmline server`."""
    print("calmline: warning: 'hub' is deprecated; use 'calmline server'", file=sys.stderr, flush=True)
    return cmd_server(args)


def cmd_hash_password(args) -> int:
    """Print a salted hash for [hub.supervisors]; the password is read without echo (or from stdin)."""

    from .web.auth import MIN_SECRET_CHARS, hash_password

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_SECRET_CHARS:
        raise UsageError(f"a password (supervisor's or agent's) must be at least {MIN_SECRET_CHARS} characters")
    print(hash_password(password))
    return 0


def _self_view_to(overlay, result, config: Config, recorded: bool) -> None:
    """After the call, the agent's self-view on this monitor's overlay (as the server's overlay shows it after
    a call recorded there; monitor/web/self_view.py), its replay a command here rather than a link."""
    from .web.self_view import self_view

    if overlay is None or not result.call_id:
        return
    try:
        view = self_view(result.call_id, result.events, config)
    except Exception as exc:  # noqa: BLE001 - a self-view is a nicety: never the end of the command
        print(f"calmline: warning: no self-view for this call ({exc})", file=sys.stderr)
        return
    view["replay"] = None
    view["command"] = f"calmline replay {result.call_id}" if recorded else None
    end = max((event.t for event in result.events), default=0.0)
    overlay.publish({"v": 1, "type": "self_view", "t": round(end, 3), "call_id": result.call_id, **view})


def _notes_from_hub(hub, overlay, store) -> None:
    """A supervisor's note, sent by the hub (monitor/web/notes.py): to this monitor's overlay, and into the
    call's recording here (a desktop monitor records its own calls)."""
    if hub is None:
        return
    from .events import Note
    from .web.notes import record_note

    def on_note(notice: dict) -> None:
        try:
            note = Note.from_dict(notice.get("event")).to_dict()
        except ValueError as exc:
            print(f"calmline: warning: the hub sent a note that is none ({exc})", file=sys.stderr, flush=True)
            return
        if overlay is not None:
            overlay.publish(note)
        if store is not None and isinstance(notice.get("call_id"), str):
            record_note(store, notice["call_id"], note)

    hub.on_note = on_note


def _publisher(args, config: Config):
    """The hub publisher for this monitor's calls, when a hub is configured."""
    url = args.hub or config.hub.url
    if not url:
        return None
    from .web.hub_client import HubPublisher

    token = args.token or config.hub.token
    if not token:
        raise UsageError("a hub needs this agent's token: --token T or [hub] token")
    # The token says who the agent is and the welcome names them ([store] agent_name, if set, is only a hint).
    publisher = HubPublisher(url, config.store.agent_name or None, token)
    publisher.start()
    if publisher.welcomed.wait(publisher.timeout) and not publisher.refused:
        if publisher.agent:
            config.store.agent_name = publisher.agent  # the call is recorded under the name the floor shows
    elif publisher.refused:
        print(f"calmline: warning: the hub at {url} refused this monitor ({publisher.refused}); the call is "
              "coached and recorded here only", file=sys.stderr, flush=True)
    else:
        print(f"calmline: warning: the hub at {url} does not answer yet; this call is recorded as "
              f"{config.store.agent_name or getpass.getuser()} (it is published when the hub answers)",
              file=sys.stderr, flush=True)
    return publisher


CALLS_HEADER = ("ID", "AGENT", "START", "DURATION", "CUES", "INTERRUPTIONS", "SCORE", "STATUS")


def cmd_calls(args) -> int:
    """The recorded calls, newest first, as a table with a header (or --json: the same rows), by agent and day."""
    from .web.library import LibraryPart, day_start

    config = load_config(args.config)
    try:
        since = day_start(args.since, "--since")
        until = day_start(args.until, "--until", after=1)  # --until names the last day listed
    except ValueError as error:
        raise UsageError(str(error)) from None
    store = _store(args, config)
    calls = LibraryPart(store, config=config).rows(args.agent, since, until)
    if args.json:
        print(json.dumps(calls, indent=2))
        return 0
    if not calls:
        print(f"no recorded calls in {store.dir}" + (" that match" if args.agent or since or until else ""))
        return 0
    rows = [CALLS_HEADER]
    for c in calls:
        score = c.get("score") or {}
        rows.append((c["id"], c["agent"] or "-", time.strftime("%Y-%m-%d %H:%M", time.localtime(c["started_at"] or 0)),
                     _clock(c["duration_s"] or 0), str(c.get("cues", "-")), str(c.get("interruptions", "-")),
                     str(score.get("score", "-")), c["status"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(CALLS_HEADER))]
    right = {"DURATION", "CUES", "INTERRUPTIONS", "SCORE"}
    for r in rows:
        print("  ".join(cell.rjust(w) if name in right else cell.ljust(w)
                        for cell, w, name in zip(r, widths, CALLS_HEADER)).rstrip())
    return 0


def cmd_report(args) -> int:
    """A recorded call's report: self-contained HTML (default) or JSON, with the scorecard (by the user's config)."""
    config = load_config(args.config)
    store = _store(args, config)
    call = store.call(args.call_id)
    events = store.events(call["id"])
    from .library.report_html import render_report
    from .library.scorecard import events_from_dicts, score_call

    if args.json:
        report = {"call": call, **build_report(events_from_dicts(events)), "scorecard": score_call(events, config)}
        text = json.dumps(report, indent=2)
    else:
        text = render_report(call, events, config)
    if args.out:
        out = _open_out(args.out)
        out.write(text)
        out.close()
        print(f"wrote {args.out}", file=sys.stderr)
    elif args.json:
        print(text)
    else:
        path = Path(f"calmline-report-{call['id']}.html")
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path.resolve()}: cannot write ({exc.strerror}); choose where with --out FILE") from None
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_replay(args) -> int:
    """Serve a recorded call's replay page until interrupted."""
    from .web.app import WebOptions
    from .web.library import serve_replay

    config = load_config(args.config)
    store = _store(args, config)
    server = serve_replay(store, args.call_id, WebOptions(host=args.host or config.server.host,
                                                          port=8767 if args.port is None else args.port), config)
    print(f"calmline: replay of call {server.call_id} at {server.url}", file=sys.stderr, flush=True)
    stop = Stop.on_signals()
    try:
        stop.flag.wait(args.seconds)
    finally:
        server.stop()
    return 0


def cmd_purge(args) -> int:
    config = load_config(args.config)
    days = config.store.retention_days if args.older_than is None else args.older_than
    removed = _store(args, config).purge(days)
    print(f"deleted {len(removed)} call(s) older than {days:g} days")
    return 0


def _store(args, config: Config | None = None) -> Store:
    config = config or load_config(args.config)
    return open_store(resolve_data_dir(args.data_dir, config.store.data_dir),
                      resolve_store_url(getattr(args, "store_url", None), config.store.url))


def _session(args, config: Config, source: str, **options) -> CallSession:
    """The call session of analyze, demo and live, from their common options."""
    if "store" not in options:
        options["store"] = _call_store(args, config)
    return CallSession(config, source, transcribe=False if args.no_transcribe else None,
                       events_path=args.events, stop=Stop.on_signals(), **options)


def _call_store(args, config: Config) -> Store | None:
    """Where to record the call, unless recording is off; a store that cannot open is a warning, not the end."""
    if args.no_record or not config.store.record:
        return None
    try:
        return _store(args, config)
    except UsageError as exc:
        print(f"calmline: warning: {exc}; this call is not recorded", file=sys.stderr)
        return None


def _device(text) -> int | str:
    return int(text) if str(text).isdigit() else text


def _serve(args, config: Config):
    """The agent's overlay, served on loopback (or --host) for live and demo."""
    from .web.app import WebOptions
    from .web.overlay import serve_overlay

    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    return serve_overlay(WebOptions(host=host, port=port))


def _open_out(path: str | None):
    if not path:
        return None
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None


class Progress:
    """Progress of a file's analysis on stderr: a tqdm bar at a terminal; piped or logged, a line every
    `every_s` seconds (and one at the start and the end), so a log never goes silent for minutes."""

    def __init__(self, total: float, every_s: float = 10.0, stream=None):
        self.total = max(total, 1e-9)
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._bar = None
        self._t = 0.0
        self._start = self._next = None

    def _begin(self) -> None:
        """Shown once the analysis runs (not before a user's mistake ends it in one line)."""
        self._start = time.monotonic()
        self._next = self._start + self.every_s
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=round(self.total, 1), unit="s", desc="analysing", file=self.stream, leave=False,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
                                        "[{elapsed}<{remaining}]")
        else:
            self._line(f"analysing {_clock(self.total)} (m:ss) of audio")

    def update(self, t: float) -> None:
        if self._start is None:
            self._begin()
        t = min(max(t, self._t), self.total)
        if self._bar is not None:
            self._bar.update(round(t - self._t, 3))
            self._t = t
            return
        self._t = t
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            self._line(self._text(now))

    def _text(self, now: float) -> str:
        done = self._t / self.total
        spent = now - self._start
        left = f", about {spent * (1 - done) / done:.0f} s left" if done > 0.01 else ""
        return f"analysing: {100 * done:3.0f}% ({self._t:.0f} of {self.total:.0f} s audio in {spent:.0f} s{left})"

    def _line(self, text: str) -> None:
        print(f"calmline: {text}", file=self.stream, flush=True)

    def done(self, finished: bool = True) -> None:
        """The bar goes; piped, a last line says how long it took (only when the analysis got to the end)."""
        if self._bar is not None:
            self._bar.close()
        elif self._start is not None and finished:
            spent = time.monotonic() - self._start
            self._line(f"analysed {self._t:.0f} of {self.total:.0f} s audio in {spent:.1f} s")


CALL_LOOPS = (cmd_analyze, cmd_demo, cmd_live, cmd_server, cmd_hub, cmd_replay)
"""Commands that run until stopped or done and end cleanly on SIGINT/SIGTERM; the others get Python's defaults."""

if __name__ == "__main__":
    sys.exit(main())
