"""The `calmline` command line. User mistakes end in one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audio import SAMPLE_RATE
from audio.errors import AudioError
from audio.sources import array_frames, duration_s, load_monos, load_stereo

from .config import Config, load_config
from .errors import UsageError
from .pipeline import Pipeline
from .report import build_report, format_summary

DEMO_CALL = Path(__file__).parent / "samples" / "demo_call.flac"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
    analyze.set_defaults(handler=cmd_analyze)
    return parser


def _call_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call", nargs="?", metavar="CALL", help="stereo call file (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--agent", metavar="FILE", help="mono file of the agent (with --customer)")
    parser.add_argument("--customer", metavar="FILE", help="mono file of the customer (with --agent)")
    parser.add_argument("--agent-channel", type=int, metavar="N", help="channel index of the agent (default 0)")
    parser.add_argument("--customer-channel", type=int, metavar="N", help="channel index of the customer (default 1)")


def open_call(args, config: Config, default: Path | None = None):
    """The call's channels {'agent', 'customer'} and a name for its source, from the CLI arguments."""
    if args.agent or args.customer:
        if args.call or not (args.agent and args.customer):
            raise UsageError("give either one stereo CALL file or both --agent FILE and --customer FILE")
        return load_monos({"agent": args.agent, "customer": args.customer}), f"{args.agent} + {args.customer}"
    path = args.call or default
    if path is None:
        raise UsageError("no call given: pass a CALL file, or --agent FILE --customer FILE")
    picks = {
        "agent": config.channels.agent if args.agent_channel is None else args.agent_channel,
        "customer": config.channels.customer if args.customer_channel is None else args.customer_channel,
    }
    if picks["agent"] == picks["customer"]:
        raise UsageError(f"agent and customer are both on channel {picks['agent']}; they need a channel each")
    return load_stereo(path, picks), str(path)


def cmd_analyze(args) -> int:
    config = load_config(args.config)
    channels, source = open_call(args, config)
    events_out = _open_out(args.events) if args.events else None
    pipeline = Pipeline(config, source=source, transcribe=False if args.no_transcribe else None)
    total = duration_s(channels, SAMPLE_RATE)
    progress = Progress(total) if sys.stderr.isatty() and total > 60 else None
    events = []

    def emit(batch):
        events.extend(batch)
        if events_out:
            events_out.writelines(e.to_json() + "\n" for e in batch)

    emit(pipeline.start())
    for frame in array_frames(channels):
        emit(pipeline.push(frame))
        if progress:
            progress.update(pipeline.now)
    emit(pipeline.finish())
    if progress:
        progress.done()
    if events_out:
        events_out.close()
    report = build_report(events)
    print(json.dumps(report, indent=2) if args.json else format_summary(report))
    return 0


def _open_out(path: str):
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None


class Progress:
    """A one-line progress bar on stderr, for long files analysed at a terminal."""

    def __init__(self, total: float):
        self.total = total
        self._shown = -1

    def update(self, t: float) -> None:
        pct = int(100 * min(t, self.total) / self.total)
        if pct != self._shown:
            self._shown = pct
            bar = "#" * (pct // 4)
            print(f"\ranalysing [{bar:<25}] {pct:3d}%  {t:6.0f}/{self.total:.0f} s", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        print(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
