"""Word cues' phrase patterns: paraphrases, inflections, a misheard word, innocent uses; config errors;
and a few spoken lines through the real model and pipeline (slow)."""

import numpy as np
import pytest

from monitor.analysis.cues import find_phrase
from monitor.analysis.phrases import PhraseSet, check, find, parse, sounds_like, words
from monitor.config import Config, load_config
from monitor.errors import UsageError

DEFAULT = Config().cues
DEFLECTIONS = DEFAULT.own_the_problem.phrases


def fires(text: str, phrases=DEFLECTIONS) -> bool:
    return find(text, phrases) is not None


@pytest.mark.parametrize("line", [
    "I'm sorry, but it's our policy.",
    "Our policy says the technician has to confirm first.",  # the miss: no "it's our policy" in it
    "That is not something we handle here, you need to contact the manufacturer.",
    "I'm not able to do anything about that.",
    "There is nothing I can do.",
    "There's really nothing more I can do for you.",
    "Our policies don't allow refunds after thirty days.",
    "You'll need to call them directly.",
    "That isn't my job.",
    "Ma'am, you need to calm down.",
    "There isn't anything I can do for you.",
    "You're going to have to ring the supplier yourself.",
    "We can't make exceptions to the policy.",
    "There is nothing I can do, you will have to call the career yourself.",  # "do, you will have" is no question
])
def test_default_deflections_hear_paraphrases(line):
    assert fires(line)


@pytest.mark.parametrize("line", [
    "Let me read you our delivery policy so you know your options.",  # the innocent use
    "Let me explain our return policy, it works in your favour.",
    "Good news, the policy covers accidental damage.",
    "There is something I can do, let me check.",
    "You won't have to call back, I'll email you.",
    "You don't need to contact anyone else.",
    "Let me contact the manufacturer for you.",
    "That's not a problem at all.",
    "I'm able to issue a refund today.",
    "Thank you, I need to call the warehouse and I will ring you back.",
    "Let me take this up with my manager for you.",
])
def test_default_deflections_leave_innocent_lines_alone(line):
    assert not fires(line)


def test_a_word_between_inflections_contractions_and_order():
    ps = PhraseSet(["our policy", "handle|deal [with] returns", "there is nothing i can do"])
    assert ps.find("that's our company policy").heard == "our company policy"  # one word between
    assert ps.find("that's our old company policy") is None  # two are too many
    assert ps.find("we never handled returns").phrase == "handle|deal [with] returns"  # a stem; [with] may be missing
    assert ps.find("There's nothing I can do").heard == "there's nothing i can do"  # said as said
    assert ps.find("policy our") is None  # order matters unless {...} says otherwise
    assert PhraseSet(["{policy company}"]).find("that is the policy of our company") is None
    assert PhraseSet(["policy ... company"]).find("that is the policy of our company")
    assert PhraseSet(["{policy company}"]).find("policy of company") and PhraseSet(["{policy company}"]).find(
        "company policy")
    assert PhraseSet(["not [really] able"]).find("not able") and PhraseSet(["not [really] able"]).find(
        "not really able")


def test_one_misheard_word_is_tolerated():
    ps = PhraseSet(["calm down", "no refunds", "nothing i can do"])
    match = ps.find("Please come down, sir.")  # what tiny.en hears for "calm down"
    assert (match.phrase, match.heard, match.misheard) == ("calm down", "come down", "calm")
    assert str(match) == "come down (calm?)"
    assert ps.find("there are no references").misheard == "refunds"  # "refund" heard as "reference"
    assert ps.find("come town") is None  # two misheard words are not the phrase
    assert ps.find("something i can do") is None  # another first sound: another word
    assert PhraseSet(["hell"]).find("hello there") is None  # a phrase of one word is heard exactly
    assert PhraseSet(["it is our policy"]).find("it is are policy") is None  # short words are heard exactly
    assert sounds_like("come", "calm") and not sounds_like("tell", "help")


def test_innocent_uses_silence_only_the_words_they_share():
    ps = PhraseSet(["our policy", "calm down", "!read ... policy"])
    assert ps.find("let me read you our delivery policy") is None
    assert ps.find("let me read you our policy, and please calm down").phrase == "calm down"
    assert ps.find("it is our policy, read it").phrase == "our policy"  # "read" comes after: no innocent match
    # an innocent use is heard as written: "exceptions" is not a misheard "explain"
    assert PhraseSet(["make exceptions", "!explain ... policy"]).find("we can't make exceptions to the policy")


def test_acknowledgement_then_but_is_no_acknowledgement():
    thanks = DEFAULT.acknowledge.acknowledgements
    assert find_phrase("I understand how you feel", thanks) == "i understand"
    assert find_phrase("I understand, but our policy says the technician has to confirm first", thanks) is None
    assert find_phrase("I'm sorry, but that is how it works", thanks) is None
    assert find_phrase("I'm so sorry about that", thanks) == "sorry"


def test_find_phrase_tells_what_was_said():
    assert find_phrase("Well, it\u2019s our POLICY.", DEFLECTIONS) == "it's our policy"
    assert find_phrase("the weather is fine", DEFLECTIONS) is None
    assert words("There's a lot we can't do") == ["there", "is", "a", "lot", "we", "can", "not", "do"]


@pytest.mark.parametrize("phrase, problem", [
    ("[maybe]", "needs at least one word that is not [optional]"),
    ("our {policy", "unbalanced brackets"),
    ("{policy}", "{...} needs 2 to 4 words"),
    ("can't|cannot do", "is not a word (or one-word choices joined by |)"),
    ("our | policy", "is not a word"),
])
def test_bad_patterns_are_named(phrase, problem):
    assert problem in check([phrase])
    with pytest.raises(ValueError):
        parse(phrase)


def test_a_bad_pattern_in_config_is_one_line_naming_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[cues.own_the_problem]\nphrases = ["calm down", "our {policy"]\n')
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert str(err.value) == f'{path}: [cues.own_the_problem] phrases: phrase "our {{policy": unbalanced brackets'
    path.write_text('[cues.own_the_problem]\nphrases = ["calm down", "our ... policy"]\n')
    assert load_config(path).cues.own_the_problem.phrases == ["calm down", "our ... policy"]


def test_a_user_adds_a_phrase(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[cues.own_the_problem]\nphrases = ["not [really] my area", "!my area of expertise"]\n')
    phrases = load_config(path).cues.own_the_problem.phrases
    assert fires("Sorry, billing isn't really my area.", phrases)
    assert not fires("Billing is my area of expertise.", phrases)


def test_hotwords_are_the_phrases_in_plain_words():
    assert PhraseSet(["it|that is [just] our policy", "{policy company}", "!read ... policy"]).hotwords() == \
        "it is our policy, policy company"
    assert PhraseSet(DEFLECTIONS).hotwords()  # the default list gives a prompt


def test_the_rules_hear_paraphrases_and_say_what_was_heard():
    from monitor.analysis.cues import Frustration, OwnTheProblem
    from monitor.analysis.view import CallView, PartyView
    from monitor.events import Transcript

    def heard(party, text):
        line = Transcript(t=6.5, party=party, start=4.0, end=6.0, text=text, final=True)
        return CallView(t=6.5, parties={"agent": PartyView(), "customer": PartyView()}, silence_start=None,
                        events=[line])

    rule = OwnTheProblem(DEFAULT.own_the_problem)
    assert rule.check(heard("agent", "Please come down, sir.")) == 'agent said "come down (calm?)"'
    assert rule.check(heard("agent", "Our policies say the technician has to confirm.")) == \
        'agent said "policies say"'
    assert rule.check(heard("agent", "Let me read you our delivery policy.")) is None
    assert Frustration(DEFAULT.acknowledge).step(heard("customer", "I am so frustrated")) == \
        (6.0, 'customer said "frustrated"')


# --- spoken, through the real model (slow) --------------------------------------------------------

SPOKEN = [("Please calm down, sir.", True),  # tiny.en tends to hear "come down"
          ("Our policy says the technician has to confirm first.", True),
          ("That is not something we handle here, you need to contact the manufacturer.", True),
          ("Let me read you our delivery policy so you know your options.", False),
          ("I will take care of it personally.", False)]


def test_spoken_lines_cue_through_the_real_pipeline():
    from monitor.analysis.pipeline import run_channels
    from synth import speak

    pad = np.zeros(8000, np.float32)
    for text, deflects in SPOKEN:
        agent = np.concatenate([pad, speak(text), pad, pad, pad])
        events = run_channels({"agent": agent, "customer": np.zeros_like(agent)}, Config())
        heard = [e.text for e in events if e.type == "transcript" and e.final]
        cues = [e for e in events if e.type == "cue" and e.kind == "own_the_problem"]
        assert heard, text
        assert bool(cues) == deflects, (text, heard, [c.reason for c in cues])
