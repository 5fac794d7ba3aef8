"""The scorecard's 0-100 score and its evidence, on calls written as events: a calm call, one like the demo
call, the same mistakes repeated for twenty minutes, and each rule on its own (late apology, "I understand,
but ...", opening silence, repeats, weights)."""

import re

import pytest

from monitor.config import Config, load_config
from monitor.errors import UsageError
from monitor.library.scorecard import Finding, At, score_call


def spurt(party, start, end):
    return [{"v": 1, "type": "talk_start", "t": start, "party": party},
            {"v": 1, "type": "talk_end", "t": end, "party": party, "start": start, "loudness_dbfs": -24.0}]


def line(party, start, end, text):
    """What `party` said, as the pipeline gives it: the talk spurt and the final transcript line."""
    return spurt(party, start, end) + [{"v": 1, "type": "transcript", "t": end + 0.5, "party": party,
                                        "start": start, "end": end, "text": text, "final": True, "words": []}]


def silence(t, end, before, after):
    return [{"v": 1, "type": "silence", "t": t, "end": end, "before": before, "after": after}]


def cue(t, kind, reason=""):
    return [{"v": 1, "type": "cue", "t": t, "kind": kind, "text": kind, "reason": reason, "rank": 1}]


def cut(t):
    """The agent talking over the customer at `t`: the interruption and the cue it raised."""
    return [{"v": 1, "type": "interruption", "t": t, "by": "agent", "at": t + 1.0, "overlap_s": 1.0}] + \
        cue(t + 1.0, "wait_for_pause", f"agent talked over the customer at {t:.1f} s")


def call(*parts, duration):
    events = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": "x", "source": "", "parties": ["agent", "customer"],
               "started_at": 0.0}]
    for p in parts:
        events += p
    return sorted(events, key=lambda e: e["t"]) + [{"v": 1, "type": "call_end", "t": duration, "parties": {}}]


def items(card):
    return {i["item"]: i for i in card["items"]}


def calm(*extra):
    """A calm information request, well handled: greeting, the question, empathy at once, an offer with a
    time, a check, the customer's yes, thanks."""
    return call(line("agent", 0.5, 3.5, "Thank you for calling Northwind, this is Sam, how can I help you?"),
                line("customer", 4.3, 11.0, "Hi, my order arrived with a cracked screen and I would like it replaced."),
                line("agent", 11.8, 15.0, "I am sorry to hear that, that must be disappointing."),
                line("agent", 15.2, 17.0, "Would you prefer a new one or a refund?"),
                line("customer", 17.4, 18.6, "A new one please."),
                line("agent", 18.8, 20.0, "I will send you a new one today."),
                line("agent", 20.4, 22.0, "Does that work for you?"),
                line("customer", 22.8, 25.0, "Yes, that works, thank you."),
                line("agent", 25.8, 28.0, "Thank you for your patience, have a good day."), *extra, duration=29.0)


def mistakes(t0):
    """One round of the demo call's mistakes from `t0`: a complaint, 8 s of dead air, policy talk over the
    customer with a raised voice, and the cues they raised."""
    return [*line("customer", t0, t0 + 6.0, "Hello, are you still there? This is ridiculous, I have been waiting."),
            *silence(t0 + 6.0, t0 + 14.0, "customer", "agent"),
            *cue(t0 + 11.0, "dead_air", "no one has spoken for 5 s"),
            *cue(t0 + 16.0, "acknowledge", 'customer said "ridiculous", no acknowledgement for 10 s'),
            *line("customer", t0 + 14.5, t0 + 18.0, "I just want my laptop."),
            *line("agent", t0 + 16.0, t0 + 22.0, "Look, it is our policy, there is nothing I can do about it."),
            *cut(t0 + 16.0), *cue(t0 + 19.0, "speak_softly", "agent +10.9 dB over their own level"),
            *cue(t0 + 23.0, "own_the_problem", 'agent said "it is our policy"')]


def demo_like(rounds=1, gap=60.0):
    """The demo call's story: greeting, complaint, `rounds` rounds of mistakes, then a late apology and a
    good ending (the apology comes after the last round)."""
    t = 14.0 + rounds * gap
    return call(line("agent", 0.5, 3.5, "Thank you for calling Northwind support, how can I help you today?"),
                line("customer", 4.3, 11.0, "I ordered a laptop three weeks ago and this is the third time I call."),
                line("agent", 11.5, 13.5, "I see, let me look up your order."),
                *(mistakes(14.0 + i * gap) for i in range(rounds)),
                line("agent", t, t + 4.0, "I am sorry, I understand how frustrating this is, what would work best?"),
                line("customer", t + 4.5, t + 6.0, "Just send me the laptop please."),
                line("agent", t + 6.5, t + 11.0, "I will send the replacement today. Does that work for you?"),
                line("customer", t + 11.5, t + 13.0, "Okay, that works, thank you."),
                line("agent", t + 13.5, t + 15.0, "Thank you for your patience."), duration=t + 16.0)


def test_a_calm_well_handled_call_scores_at_least_85_and_a_talk_over_costs_a_little():
    card = score_call(calm())
    assert card["score"] >= 85 and card["met"] == 9, [i["evidence"] for i in card["items"] if not i["met"]]
    over = score_call(calm(cut(9.0)))
    assert 85 <= over["score"] < card["score"]
    listen = items(over)["listen"]
    assert not listen["met"] and 0 < listen["credit"] < 1
    assert "talked over the customer once: 0:09" in listen["evidence"]  # the interruption and its cue: once


def test_a_call_like_the_demo_scores_at_most_60_with_every_mistake_in_its_item():
    card = score_call(demo_like())
    assert card["score"] <= 60, card["score"]
    got = items(card)
    assert 'talked policy or passed the buck 2 times: 0:30 "it is our policy", 0:37 "our policy"' not in \
        got["seek_to_solve"]["evidence"]  # one line, one occurrence (its cue is that line too)
    assert 'talked policy or passed the buck once: 0:30 "it is our policy"' in got["seek_to_solve"]["evidence"]
    assert "left the customer in silence once: 0:20 (8 s)" in got["respond"]["evidence"]
    assert "talked policy or passed the buck once" in got["execute"]["evidence"]
    assert "left the customer in silence once" in got["execute"]["evidence"]
    assert "talked over the customer once: 0:30" in got["listen"]["evidence"]
    assert "raised their voice once: 0:33 (+11 dB)" in got["listen"]["evidence"]
    empathize = got["empathize"]
    assert "late:" in empathize["evidence"] and 0 < empathize["credit"] < 1
    for key in ("respond", "empathize", "seek_to_solve", "listen", "execute"):
        assert not got[key]["met"] and got[key]["credit"] < 1, key
    for key in ("open_mind", "verify", "document", "thank"):
        assert got[key]["met"], key


def test_twenty_minutes_of_the_same_mistakes_score_far_lower_and_list_every_time():
    once, again = score_call(demo_like(1)), score_call(demo_like(18, gap=62.0))
    assert once["score"] - again["score"] >= 20, (once["score"], again["score"])
    assert again["score"] <= 25
    listen = items(again)["listen"]
    talk_over = next(n for n in listen["notes"] if n["what"] == "talked over the customer")
    assert talk_over["count"] == 18 and len(talk_over["at"]) == 18
    assert talk_over["text"].startswith("talked over the customer 18 times: 0:30, 1:32, 2:34, ")
    assert listen["evidence"].count(":") >= 2 * 18  # every time, in the words too
    assert [a["t"] for a in talk_over["at"]] == [30.0 + 62.0 * i for i in range(18)]
    policy = next(n for n in items(again)["seek_to_solve"]["notes"] if n["what"] == "talked policy or passed the buck")
    assert policy["detail"] == '"it is our policy"' and policy["at"][17] == {"t": 30.0 + 62.0 * 17, "detail": policy["detail"]}
    assert policy["text"].startswith('talked policy or passed the buck 18 times ("it is our policy"): 0:30, 1:32, 2:34')
    assert policy["text"].count("policy") == 2  # the phrase once, not at each of the 18 times
    one = next(n for n in items(once)["listen"]["notes"] if n["what"] == "talked over the customer")
    assert talk_over["cost"] > 2 * one["cost"]


def test_each_repeat_costs_less_than_the_one_before_yet_many_cost_far_more_than_one():
    def cost(n, exponent=0.5):
        return Finding("x", [At(float(i)) for i in range(n)], cost=0.05).total(exponent)
    steps = [cost(n + 1) - cost(n) for n in range(1, 18)]
    assert all(a > b > 0 for a, b in zip(steps, steps[1:]))
    assert cost(18) >= 4 * cost(1)
    assert cost(18, exponent=1.0) == pytest.approx(18 * cost(1))
    assert cost(18, exponent=0.0) == cost(1)
    assert Finding("x", [At(float(i)) for i in range(100)], cost=0.4).total(0.5) == 1.0  # an item goes no lower than 0


@pytest.mark.parametrize("delay, credit", [(3.0, 1.0), (20.0, 0.7), (45.0, 0.4)])
def test_an_apology_long_after_the_complaint_is_partial_credit(delay, credit):
    end = 6.0 + delay
    events = call(line("customer", 0.5, 6.0, "This is the third time I am calling, it is ridiculous."),
                  line("agent", end, end + 3.0, "I am so sorry about that."), duration=end + 4.0)
    item = items(score_call(events))["empathize"]
    assert item["credit"] == pytest.approx(credit, abs=0.01)
    assert item["met"] == (credit == 1.0)
    assert f"({delay:.1f} s after the customer's complaint at 0:00)" in item["evidence"]


def test_i_understand_but_policy_is_not_empathy_and_counts_as_policy_talk():
    complaint = line("customer", 0.5, 6.0, "This is ridiculous, the technician never came.")
    but = line("agent", 7.0, 12.0, "I understand, but our policy says the technician has to confirm first.")
    card = items(score_call(call(complaint, but, duration=13.0)))
    assert card["empathize"]["credit"] == 0.0
    assert 'said "I understand, but ..." (not empathy) once: 0:07 "... but policy"' in card["empathize"]["evidence"]
    assert "talked policy or passed the buck once: 0:07" in card["seek_to_solve"]["evidence"]
    fine = line("agent", 7.0, 12.0, "I am sorry, but I will send the technician back today.")
    card = items(score_call(call(complaint, fine, duration=13.0)))
    assert card["empathize"]["met"] and card["seek_to_solve"]["met"] and card["execute"]["met"]


def test_a_calls_opening_silence_is_not_dead_air_but_a_later_one_is():
    opening = [*silence(0.0, 9.0, None, "agent"), *cue(5.0, "dead_air", "no one has spoken for 5 s")]
    card = items(score_call(calm(opening)))
    assert card["respond"]["notes"] == [] and "silence" not in card["execute"]["evidence"]
    later = [*silence(12.5, 19.0, "agent", "agent"), *cue(17.5, "dead_air", "no one has spoken for 5 s")]
    card = items(score_call(calm(later)))  # one silence and its cue: one occurrence
    assert card["respond"]["evidence"].endswith("left the customer in silence once: 0:12 (6 s)")
    assert [n["at"] for n in card["respond"]["notes"]] == [[{"t": 12.5, "detail": "(6 s)"}]]
    cued = [*cue(17.5, "dead_air", "no one has spoken for 5 s")]  # a cue alone (the silence was never closed)
    assert "left the customer in silence once: 0:17" in items(score_call(calm(cued)))["respond"]["evidence"]


def test_weights_costs_and_repeats_come_from_config():
    events = demo_like(3)
    default = score_call(events)["score"]
    config = Config()
    config.scorecard.weights.listen = 0.0
    config.scorecard.weights.execute = 0.0
    assert score_call(events, config)["score"] > default
    config = Config()
    config.scorecard.repeat_exponent = 0.0  # only the first of each behaviour counts
    assert score_call(events, config)["score"] > default
    config = Config()
    config.scorecard.costs.policy = 0.0
    assert items(score_call(events, config))["seek_to_solve"]["met"]


def test_a_config_that_weighs_nothing_is_refused_in_one_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[scorecard.weights]\n" + "".join(f"{k} = 0\n" for k in (
        "respond", "empathize", "seek_to_solve", "open_mind", "listen", "verify", "execute", "document", "thank")))
    with pytest.raises(UsageError, match=r"^\[scorecard.weights\]: at least one item must weigh more than 0$"):
        load_config(path)
    path.write_text("[scorecard]\nrepeat_exponent = 2\n")
    with pytest.raises(UsageError, match=r"\[scorecard\] repeat_exponent = 2(\.0)? is out of range 0\.\.1$"):
        load_config(path)


def test_the_html_report_shows_the_score_partial_credit_and_links_every_time_into_the_replay():
    from monitor.library.report_html import render_report

    events = demo_like(2)
    card = score_call(events)
    html = render_report({"id": "c1"}, events)
    assert f"score {card['score']} of 100 · {card['met']} of 9 met" in html
    listen = items(card)["listen"]
    assert f'data-item="listen" data-met="false" data-credit="{listen["credit"]:g}"' in html
    assert f'<span class="badge partial">Partial {100 * items(card)["empathize"]["credit"]:.0f}%</span>' in html
    assert ('<span class="finding" data-count="2">talked over the customer 2 times: '
            '<a href="./#t=30">0:30</a>, <a href="./#t=90">1:30</a></span>') in html
    assert 'raised their voice 2 times (+11 dB): <a href="./#t=33">0:33</a>, <a href="./#t=93">1:33</a>' in html
    assert 'in silence 2 times (8 s): <a href="./#t=20">0:20</a>, <a href="./#t=80">1:20</a>' in html


def test_an_announced_short_hold_is_not_dead_air_but_an_unannounced_or_endless_one_is():
    def with_wait(text, length):
        return calm(line("agent", 20.2, 22.0, text), silence(22.0, 22.0 + length, "agent", "agent"))
    held = items(score_call(with_wait("Please bear with me a moment while I check the stock.", 12.0)))
    assert held["respond"]["notes"] == [] and held["respond"]["met"]
    quiet = items(score_call(with_wait("I see your order here.", 12.0)))
    assert "left the customer in silence once: 0:22 (12 s)" in quiet["respond"]["evidence"]
    endless = items(score_call(with_wait("Please bear with me a moment while I check the stock.", 90.0)))
    assert "left the customer in silence once: 0:22 (90 s)" in endless["respond"]["evidence"]


def test_a_calm_information_request_needs_no_apology_and_has_nothing_to_solve():
    events = call(line("agent", 0.5, 3.0, "Thank you for calling Northwind, how can I help you?"),
                  line("customer", 3.8, 6.5, "Hi, what time do you close on Saturdays?"),
                  line("agent", 7.0, 9.5, "We are open until six on Saturdays."),
                  line("customer", 10.0, 11.5, "Great, thanks."),
                  line("agent", 12.0, 13.5, "Thank you for calling, have a good weekend."), duration=14.5)
    card = score_call(events)
    assert card["score"] >= 85 and card["met"] == 9, [i["evidence"] for i in card["items"]]
    got = items(card)
    assert got["empathize"]["evidence"].startswith("the customer did not sound upset")
    for key in ("seek_to_solve", "open_mind", "verify", "execute", "document"):
        assert got[key]["evidence"].startswith("not needed: a calm call with nothing to put right"), key
    # the same calm voice naming a problem the agent leaves alone is not "nothing to solve"
    events = call(line("agent", 0.5, 3.0, "Thank you for calling Northwind, how can I help you?"),
                  line("customer", 3.8, 6.5, "Hi, my router stopped working this morning."),
                  line("agent", 7.0, 9.5, "Routers do that sometimes."),
                  line("agent", 12.0, 13.5, "Thank you for calling, have a good weekend."), duration=14.5)
    got = items(score_call(events))
    assert got["empathize"]["met"]  # calm: nothing to acknowledge
    for key in ("seek_to_solve", "verify", "execute", "document"):
        assert not got[key]["met"], key


def test_sorry_but_followed_by_an_action_is_still_empathy():
    complaint = line("customer", 0.5, 6.0, "This is ridiculous, I still do not know my options.")
    fine = line("agent", 7.0, 12.0, "I am sorry, but let me read you our delivery policy so you know your options.")
    got = items(score_call(call(complaint, fine, duration=13.0)))
    assert got["empathize"]["met"] and "not empathy" not in got["empathize"]["evidence"]
