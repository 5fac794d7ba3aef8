"""Outbox: what a slow client's queue keeps, drops, coalesces and gives up on."""

from __future__ import annotations

import asyncio

from monitor.web.outbox import Outbox
from conftest import run_async


def drain(box: Outbox) -> list[str]:
    async def take_all():
        out = []
        while len(box):
            out.append(await box.take())
        return out
    return run_async(take_all())


def test_when_full_the_oldest_levels_go_first_and_nothing_else():
    box = Outbox(size=4)
    for text in ["L1", "C1", "L2", "L3"]:
        assert box.put("levels" if text[0] == "L" else "cue", text)
    assert box.put("cue", "C2")        # full: the oldest levels (L1) makes room
    assert box.put("levels", "L4")     # full again: L2 goes
    assert drain(box) == ["C1", "L3", "C2", "L4"]
    assert box.dropped == 2


def test_a_new_levels_is_dropped_when_only_undroppable_messages_wait():
    box = Outbox(size=2)
    box.put("cue", "C1")
    box.put("transcript", "T1")
    assert box.put("levels", "L1")
    assert box.dropped == 1
    assert drain(box) == ["C1", "T1"]


def test_undroppable_messages_queue_past_size_until_hopeless():
    box = Outbox(size=3, hopeless=4)
    assert all(box.put("cue", f"C{i}") for i in range(12))
    assert not box.put("cue", "C12")   # 4 x size waiting: the caller closes this client
    assert drain(box) == [f"C{i}" for i in range(12)]


def test_a_keyed_message_replaces_the_waiting_one_in_its_place():
    box = Outbox(size=2)
    box.put("tile", "a1", key="a")
    box.put("cue", "C1")
    box.put("tile", "b1", key="b")
    box.put("tile", "a2", key="a")
    assert box.backlog == 1            # tiles are bounded by their keys, not counted against size
    assert drain(box) == ["a2", "C1", "b1"]
    box.put("tile", "a3", key="a")     # once sent, the key queues anew
    assert drain(box) == ["a3"]


def test_batches_join_waiting_messages_up_to_the_byte_limit():
    box = Outbox(batch_bytes=10)
    for text in ["aaaa", "bbbb", "cccc", "dddd"]:
        box.put("cue", text)
    assert drain(box) == ["aaaa\nbbbb\ncccc", "dddd"]


def test_pump_sends_in_order_and_ends_when_the_client_is_gone():
    async def scenario():
        box, sent = Outbox(), []

        async def send(text):
            if text == "bye":
                raise OSError("gone")
            sent.append(text)

        task = asyncio.create_task(box.pump(send))
        for text in ["one", "two", "bye", "never"]:
            box.put("cue", text)
        await asyncio.wait_for(task, 5)
        return sent
    assert run_async(scenario()) == ["one", "two"]
