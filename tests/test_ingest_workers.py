"""The ingest workers (monitor/ingest/workers.py): each call's items in order, calls served in turn."""

import threading
import time

from monitor.ingest.workers import Workers


def test_items_of_one_actor_run_in_order_and_one_at_a_time():
    workers = Workers(threads=3, budget_s=0.001)
    seen, busy, overlaps = [], [], []
    done = threading.Event()

    def handle(item):
        if busy:
            overlaps.append(item)
        busy.append(item)
        time.sleep(0.0005)
        seen.append(item)
        busy.pop()
        if item == 199:
            done.set()
            return True
        return False

    actor = workers.actor(handle)
    for i in range(200):
        actor.post(i)
    assert done.wait(10)
    actor.post(999)  # after the end: ignored
    time.sleep(0.05)
    workers.stop()
    assert seen == list(range(200)) and not overlaps


def test_a_busy_call_does_not_hold_up_another():
    """With one worker, a call with a long backlog is handed back after its budget, so another call's
    single item is handled long before the backlog is through."""
    workers = Workers(threads=1, budget_s=0.01)
    order = []
    quick_done = threading.Event()

    def slow(item):
        time.sleep(0.005)
        order.append(("slow", item))
        return False

    def quick(item):
        order.append(("quick", item))
        quick_done.set()
        return True

    busy, other = workers.actor(slow), workers.actor(quick)
    for i in range(100):
        busy.post(i)
    other.post(0)
    assert quick_done.wait(10)
    position = order.index(("quick", 0))
    workers.stop()
    assert position < 20  # not after all 100 slow items
