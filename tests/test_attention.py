"""Attention that clears (issue 13, item 1): a call's reasons go when what raised them is resolved (the agent
acknowledged the customer, the customer calm for a while, the silence broken), the score ranks similar calls
by how long they have needed a supervisor, and alerts are resolved and acknowledged per supervisor. The
CallState is fed checked events as the floor feeds it; the alerts run on the real web app."""

from __future__ import annotations

import json

import pytest

from floor_server import PASSWORD, Floor, Monitor, call_start, cue, ev, form_login, start_hub
from monitor.events import parse_event
from monitor.web.auth import hash_password
from monitor.web.floor import ATTENTION, CALM_S, CallState


def feed(call: CallState, *events: dict) -> None:
    for raw in events:
        call.apply(parse_event(raw), raw, None)


def said(t: float, party: str, text: str) -> dict:
    return ev("transcript", t, party=party, start=t - 1.0, end=t, text=text, final=True, words=[])


def levels(t: float, talking=("agent",)) -> dict:
    return ev("levels", t, levels={"agent": -30.0, "customer": -30.0},
              talking={"agent": "agent" in talking, "customer": "customer" in talking})


def spurt(t: float, db: float, party: str = "customer") -> dict:
    return ev("talk_end", t, party=party, start=t - 2.0, loudness_dbfs=db)


def upset_call(call_id: str = "c1") -> CallState:
    call = CallState(call_id, "ann", "here", 0.0)
    feed(call, call_start(call_id), said(30.0, "customer", "This is ridiculous, the third time I call."),
         cue(40.0, "acknowledge", "Acknowledge how they feel"), levels(40.2, ("customer",)))
    return call


def test_the_agents_acknowledgement_clears_the_flag():
    call = upset_call()
    tile = call.tile()
    assert tile["needs_attention"] and tile["reasons"] == ["customer upset, not acknowledged"] and tile["upset"]
    feed(call, said(46.0, "agent", "I'm so sorry, I can see why that is frustrating."), levels(46.2))
    tile = call.tile()
    assert not tile["needs_attention"] and tile["reasons"] == ["customer upset, acknowledged"]
    assert tile["cues_1m"] == 0 and tile["cue"] is None  # the answered cue no longer counts, nor shows
    feed(call, said(50.0, "customer", "Okay, that works. Thank you."), levels(40.0 + CALM_S - 0.4))
    assert call.tile()["upset"]  # not yet calm for CALM_S since the last sign of it (the cue at 40 s)
    feed(call, levels(40.0 + CALM_S + 0.2))
    tile = call.tile()
    assert not tile["upset"] and tile["reasons"] == [] and tile["attention"] == 0


def test_a_new_cue_after_the_acknowledgement_flags_again():
    call = upset_call()
    feed(call, said(46.0, "agent", "I understand how annoying this is."))
    assert not call.tile()["needs_attention"]
    feed(call, said(55.0, "customer", "I am fed up with this."), cue(66.0, "acknowledge", "Acknowledge how they feel"))
    assert call.tile()["reasons"][0] == "customer upset, not acknowledged"


def test_an_apology_before_the_complaint_does_not_answer_it():
    call = CallState("c1", "ann", "here", 0.0)
    feed(call, call_start("c1"), said(5.0, "agent", "Sorry to keep you waiting."),
         said(30.0, "customer", "This is unacceptable."), cue(40.0, "acknowledge", "Acknowledge how they feel"))
    assert call.tile()["needs_attention"]


def test_a_calm_customer_clears_the_escalation_without_any_word():
    call = CallState("c1", "ann", "here", 0.0)
    feed(call, call_start("c1"), *[spurt(5.0 + 3 * i, -30.0) for i in range(4)])  # their own level
    assert not call.tile()["upset"]
    feed(call, spurt(25.0, -21.0))  # 9 dB over it: raised
    assert call.tile()["upset"] and not call.tile()["needs_attention"]  # upset, but no cue unanswered
    feed(call, spurt(30.0, -29.0), levels(25.0 + CALM_S + 0.2))
    assert not call.tile()["upset"]


def test_dead_air_clears_when_someone_talks():
    call = CallState("c1", "ann", "here", 0.0)
    feed(call, call_start("c1"), levels(5.0, ()), cue(10.0, "dead_air", "Keep them informed"), levels(16.0, ()))
    assert call.tile()["reasons"] == ["dead air 11 s"]
    feed(call, levels(16.2, ("agent",)))
    assert call.tile()["reasons"] == []


def test_of_three_similar_calls_the_one_escalated_longest_ranks_first():
    calls = []
    for i, since in enumerate((50.0, 20.0, 35.0)):  # the same escalation, begun at different times
        call = CallState(f"c{i}", f"agent{i}", "here", 0.0)
        feed(call, call_start(call.call_id), said(since, "customer", "This is ridiculous."),
             cue(since + 1.0, "acknowledge", "Acknowledge how they feel"))
        call.tile()  # the floor looks at a call on every change
        t = since + 10.0
        while t < 80.0:  # and the customer stays upset
            feed(call, said(t, "customer", "I am fed up with waiting."))
            call.tile()
            t += 10.0
        feed(call, levels(80.0, ("customer",)))
        calls.append(call)
    tiles = sorted((call.tile() for call in calls), key=lambda tile: -tile["attention"])
    assert [tile["call_id"] for tile in tiles] == ["c1", "c2", "c0"]
    assert all(tile["needs_attention"] for tile in tiles)
    assert tiles[0]["attention"] > tiles[1]["attention"] > tiles[2]["attention"] >= ATTENTION


def test_a_repeated_cue_weighs_more_each_time():
    once, thrice = CallState("a", "a", "here", 0.0), CallState("b", "b", "here", 0.0)
    feed(once, call_start("a"), cue(1.0, "slow_down", "Slow down"), cue(2.0, "slow_down", "Slow down"))
    feed(thrice, call_start("b"), *[cue(1.0 + i, "slow_down", "Slow down") for i in range(4)])
    assert once.tile()["reasons"] == ["repeated: Slow down ×2"]
    assert thrice.tile()["attention"] > once.tile()["attention"]


# ---- alerts on the real server ----

@pytest.fixture
def hub():
    server = start_hub(supervisors={"sup": hash_password(PASSWORD), "sue": hash_password(PASSWORD)})
    yield server
    server.stop()


def cookie(hub, user: str) -> str:
    return form_login(hub, user=user).getheader("Set-Cookie").split(";")[0]


def test_alerts_resolve_and_are_acknowledged_per_supervisor(hub):
    sup = Floor(hub, cookie(hub, "sup"))
    sue = Floor(hub, cookie(hub, "sue"))
    mon = Monitor(hub, "agent01")
    for raw in (call_start(mon.call_id), said(30.0, "customer", "This is ridiculous."),
                cue(40.0, "acknowledge", "Acknowledge how they feel")):
        mon.send(raw)
    alert = sup.wait(lambda: next((a for a in sup.alerts if a["kind"] == "acknowledge"), None), "the alert")
    assert alert["call_id"] == mon.call_id and not alert["resolved"]

    sup.ws.send(json.dumps({"type": "ack", "ids": [alert["id"]]}))
    acked = sup.wait(lambda: [m for _, m in sup.received if m["type"] == "acked"], "acked")
    assert acked[0]["ids"] == [alert["id"]]
    again = Floor(hub, cookie(hub, "sup"))  # a reload: the server kept it, for sup only
    again.pump(1)
    assert [a["acked"] for a in again.alerts if a["id"] == alert["id"]] == [True]
    late = Floor(hub, cookie(hub, "sue"))
    late.pump(1)
    assert [a["acked"] for a in late.alerts if a["id"] == alert["id"]] == [False]
    sue.pump(0.3)
    assert not [m for _, m in sue.received if m["type"] == "acked"]

    mon.send(said(46.0, "agent", "I'm so sorry about this."))  # the agent acknowledges: the alert resolves
    resolved = sue.wait(lambda: [m for _, m in sue.received if m["type"] == "resolved"], "resolved")
    assert alert["id"] in resolved[0]["ids"]
    sue.wait(lambda: sue.tiles[mon.call_id]["needs_attention"] is False, "the flag cleared")

    sue.ws.send(json.dumps({"type": "ack", "all": True}))
    assert alert["id"] in sue.wait(lambda: [m for _, m in sue.received if m["type"] == "acked"], "all")[0]["ids"]
    for floor in (sup, sue, again, late):
        floor.close()
    mon.ws.close()


def test_the_customers_sentiment_weighs_in_and_its_recovery_clears_it():
    call = CallState("c1", "ann", "here", 0.0)

    def mood(t: float, trend: float) -> dict:
        return ev("sentiment", t, party="customer", trend=trend, recent=trend, talk_s=3.0)

    feed(call, call_start("c1"), mood(10.0, -0.1))
    assert not call.tile()["upset"] and call.tile()["sentiment"] == -0.1
    feed(call, mood(13.0, -0.6))
    tile = call.tile()
    assert tile["upset"] and tile["reasons"] == ["customer sentiment -0.6", "customer upset"]
    assert tile["needs_attention"]  # clearly upset: worth a look before the cue comes
    feed(call, cue(14.0, "acknowledge", "Acknowledge how they feel"))
    worse = call.tile()["attention"]
    assert worse > 3.0 and call.tile()["reasons"][0] == "customer upset, not acknowledged"
    feed(call, said(18.0, "agent", "I'm sorry about that."), mood(21.0, -0.2), levels(14.0 + CALM_S + 0.2))
    tile = call.tile()
    assert not tile["upset"] and tile["reasons"] == [] and tile["sentiment"] == -0.2


def test_the_users_phrases_decide_what_acknowledges():
    from monitor.config import AcknowledgeConfig

    own = AcknowledgeConfig(acknowledgements=["my apologies"], frustration=["not happy"])
    call = CallState("c1", "ann", "here", 0.0, own)
    feed(call, call_start("c1"), said(10.0, "customer", "I am not happy at all."),
         cue(12.0, "acknowledge", "Acknowledge how they feel"), said(14.0, "agent", "I'm sorry."))
    assert call.tile()["needs_attention"]  # "sorry" is not among this user's acknowledgements
    feed(call, said(16.0, "agent", "My apologies for that."))
    assert call.tile()["reasons"] == ["customer upset, acknowledged"]
