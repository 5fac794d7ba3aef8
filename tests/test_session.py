"""One call session (monitor/session/session.py): a source through the pipeline into the recorder and
every output, as analyze, demo, live, bench/ and a server run it. Real files, a real store."""

import asyncio
import json

import pytest

from audio.sources import array_frames
from monitor.analysis.pipeline import run_channels
from monitor.analysis.speech import OnWorker, shared_worker
from monitor.analysis.transcriber import Worker
from monitor.config import Config
from monitor.errors import UsageError
from monitor.events import CallEnd, Levels, TalkEnd, TalkStart, Transcript
from monitor.library.report import build_report
from monitor.library.store import Store
from monitor.session.session import CallSession
from monitor.session.sinks import Collect
from monitor.session.stop import Stop
import synth
from conftest import run_async


@pytest.fixture(scope="module")
def channels():
    return synth.barge_in_call("My order never arrived and I have been waiting for three weeks now, it is not okay.")[0]


def session(**kw) -> CallSession:
    return CallSession(Config(), "test call", transcribe=False, **kw)


def test_a_session_reports_records_writes_and_publishes_the_same_events(channels, tmp_path):
    published = []
    store = Store(tmp_path / "data")
    result = session(store=store, events_path=str(tmp_path / "events.jsonl"), publish=(published.append,)).run(
        array_frames(channels))
    expected = run_channels(channels, transcribe=False)
    assert result.report == build_report(expected)
    assert [c["kind"] for c in result.report["cues"]] == ["wait_for_pause"]
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e.to_dict() for e in published] == written
    assert [e["type"] for e in written] == [e.type for e in expected]
    call = store.call(result.call_id)
    assert call["status"] == "ended" and call["source"] == "test call"
    assert [e["type"] for e in store.events(result.call_id)] == [e["type"] for e in written]
    assert not result.stopped


def test_a_stop_ends_the_call_as_a_call(channels, tmp_path):
    """The stop flag ends the call at once, but as a call: spurts closed, call_end sent and recorded."""
    stop = Stop()
    published = []

    def publish(event):
        published.append(event)
        if isinstance(event, TalkStart) and event.party == "customer":
            stop.flag.set()
    store = Store(tmp_path / "data")
    result = session(store=store, stop=stop, publish=(publish,)).run(array_frames(channels))
    assert result.stopped and isinstance(published[-1], CallEnd)
    assert result.report["duration_s"] == round(published[-1].t, 2) < len(channels["agent"]) / 16000 - 2.0
    starts = [e for e in published if isinstance(e, TalkStart)]
    ends = [e for e in published if isinstance(e, TalkEnd)]
    assert len(starts) == len(ends)
    assert store.call(result.call_id)["status"] == "ended"


def test_a_server_can_drive_a_session_frame_by_frame_from_asyncio(channels):
    """No signals, no terminal, no thread of its own: a telephony server's call is start/push/finish."""
    async def ingest():
        s = session()
        events = s.start(started_at=0.0)
        for frame in array_frames(channels, 320):  # 20 ms packets, as a telephony stream sends them
            events += s.push(frame)
            await asyncio.sleep(0)
        return events, s.finish()
    events, result = run_async(ingest())
    assert events[0].type == "call_start" and result.events[-1].type == "call_end"
    assert result.report == build_report(run_channels(channels, transcribe=False))


def test_an_error_in_the_callers_loop_closes_the_outputs_and_lets_the_error_through(channels, tmp_path):
    store = Store(tmp_path / "data")

    def frames():
        yield from array_frames({p: x[:3 * 16000] for p, x in channels.items()})
        raise OSError("the stream broke")
    s = session(store=store, events_path=str(tmp_path / "events.jsonl"))
    with pytest.raises(OSError, match="the stream broke"):
        s.run(frames())
    (call,) = store.calls()
    assert call["status"] != "recording" and call["id"] == s.call_id
    assert (tmp_path / "events.jsonl").read_text().startswith('{"v":1,"type":"call_start"')
    with pytest.raises(RuntimeError, match="one call"):
        s.start()


def test_an_unwritable_events_file_is_a_usage_error_before_anything_is_recorded(channels, tmp_path):
    store = Store(tmp_path / "data")
    with pytest.raises(UsageError, match="cannot write"):
        session(store=store, events_path=str(tmp_path / "no" / "dir" / "e.jsonl")).run(array_frames(channels))
    assert store.calls() == []


def test_collect_keeps_what_the_report_needs_and_stays_bounded_on_a_long_call(tmp_path):
    """An hour of meters (5 levels a second) and interim transcripts: none of them kept, all written."""
    out = open(tmp_path / "events.jsonl", "w")
    sink = Collect(out)
    hours = 1
    for k in range(hours * 3600 * 5):
        t = k / 5
        batch = [Levels(t=t, levels={"agent": -30.0, "customer": -40.0}, talking={"agent": True, "customer": False})]
        if k % 5 == 0:
            batch.append(Transcript(t=t, party="agent", start=t - 1, end=t, text="so what I", final=False))
        sink(batch)
    sink([TalkEnd(t=3.0, party="agent", start=1.0), Transcript(t=4.0, party="agent", start=1.0, end=3.0, text="hi"),
          CallEnd(t=hours * 3600.0)])
    sink.close()
    assert [e.type for e in sink.events] == ["talk_end", "transcript", "call_end"]
    with open(tmp_path / "events.jsonl") as written:
        assert sum(1 for _ in written) == hours * 3600 * 6 + 3
    report = build_report(sink.events)
    assert report["duration_s"] == hours * 3600 and report["transcript"][0]["text"] == "hi"


def test_the_transcription_worker_forgets_each_call_when_it_ends():
    """A long-lived server runs call after call on one worker: receivers do not pile up."""
    worker = Worker(engine=None)  # no job is submitted: only the registry is exercised
    try:
        for i in range(50):
            call = OnWorker(worker, f"call{i}")
            assert worker.calls == 1
            call.close()
        assert worker.calls == 0
        worker.unregister("never registered")  # harmless
    finally:
        worker.stop()


@pytest.mark.slow
def test_a_live_session_with_transcription_lets_go_of_the_shared_worker(channels):
    config = Config()
    worker = shared_worker(config.transcription)
    before = worker.calls
    result = CallSession(config, "live", live=True, transcribe=True).run(array_frames(channels))
    assert any(line["speaker"] == "customer" for line in result.report["transcript"])
    assert worker.calls == before
