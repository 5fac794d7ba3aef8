"""The redactor on the lines Whisper writes: every form of a card or ID number and of an e-mail address
is redacted, in text and in word timings, and ordinary talk about numbers is left alone."""

import pytest

from monitor.analysis.redact import Redactor, is_label, luhn
from monitor.config import RedactConfig, load_config
from monitor.errors import UsageError
from monitor.events import Transcript

CARD = "4539 1488 0343 6467"  # passes the Luhn check


def line(text, party="customer", start=0.0, end=None, final=True, words=None):
    return Transcript(t=(end or start + 2), party=party, start=start, end=end or start + 2, text=text, final=final,
                      words=words or [])


def redact(*texts, cfg=None, gap=3.0):
    """Redact lines of one party `gap` seconds apart; their texts."""
    r = Redactor(cfg or RedactConfig())
    return [r(line(text, start=i * gap)).text for i, text in enumerate(texts)]


def test_luhn():
    assert luhn(CARD.replace(" ", "")) and luhn("4111111111111111") and luhn("79927398713")
    assert not luhn("4539148803436468") and not luhn("4532123456789012")


@pytest.mark.parametrize("said", [
    "4539 1488 0343 6467",
    "4539, 1488, 0343, 6467",
    "4539. 1488. 0343. 6467",
    "4539-1488-0343-6467",
    "4539148803436467",
    "4.5.3.9. 1.4.8.8. 0.3.4.3. 6.4.6.7",
    "four five three nine, one four double eight, oh three four three, six four six seven",
    "45 39 14 88 03 43 64 67",
    "forty five thirty nine fourteen eighty eight oh three forty three sixty four sixty seven",
])
def test_a_card_number_however_written_is_a_card(said):
    assert redact(f"My card number is {said} thanks") == ["My card number is [card] thanks"]


@pytest.mark.parametrize("said, redacted", [
    ("My account number is 1734 1256", "My account number is [number]"),
    ("It's 1 2 5 6.", "It's [number]."),
    ("7 to double 9", "[number]"),
    ("seven too double nine and that's it", "[number] and that's it"),
    ("722 double 9", "[number]"),
    ("The ID is 4532-1234 okay", "The ID is [number] okay"),
    ("my phone is oh seven seven one two, three four", "my phone is [number]"),
    ("My reference is AB1234567", "My reference is [number]"),
    ("4532 uh 1234", "[number]"),
])
def test_long_numbers_in_any_form_are_numbers(said, redacted):
    assert redact(said) == [redacted]


@pytest.mark.parametrize("said", [
    "I'll call you back in 2 minutes",
    "order 3 of 5",
    "I bought it in 2019, it was delivered in 2020.",
    "It was $49.99, then 49.99 and now 1200 dollars",
    "See you at 10:30, or 10.30, or at 3 pm.",
    "Open 9 to 5, the wait is 10 to 15 minutes",
    "That one, not the other one. Two of them.",
    "We're open from 8 to 6.",
    "look at example.com for details",
    "I'm at home, call me back",
    "Three.",
    "Yes, 2.",
])
def test_ordinary_numbers_stay(said):
    assert redact(said) == [said]


def test_a_number_read_across_turns_is_redacted_in_every_piece():
    assert redact("Account number 1734", "1 2 5 6", "7 to double 9") == [
        "Account number [number]", "[number]", "[number]"]
    # Short pieces: the run goes on across the party's lines within run_window_s.
    assert redact("My ID is 1 7", "3 5 please") == ["My ID is 1 7", "[number] please"]
    assert redact("My ID is 1 7", "3 5 please", gap=20.0) == ["My ID is 1 7", "3 5 please"]
    # A line that is nothing but a few digits is a piece of a number read in parts.
    assert redact("17.", "Okay, and 20.") == ["[number].", "Okay, and [number]."]


def test_a_card_read_in_groups_across_turns_is_a_card_once_its_digits_pass_luhn():
    assert redact("My card is 4539 1488", "0343", "6467.") == ["My card is [number]", "[number]", "[card]."]


def test_the_run_is_one_partys():
    r = Redactor(RedactConfig())
    r(line("My ID is 1 7", party="customer", start=0))
    assert r(line("3 5 please", party="agent", start=3)).text == "3 5 please"
    assert r(line("3 5 please", party="customer", start=3)).text == "[number] please"


def test_a_final_that_replaces_earlier_ones_is_read_alone():
    r = Redactor(RedactConfig())
    assert r(line("My ID is 1 7", start=0.0)).text == "My ID is 1 7"
    # The same phrase grown (same start): it replaces the first final, whose "1 7" must not count twice.
    assert r(line("My ID is 1 7 please", start=0.0, end=3.0)).text == "My ID is 1 7 please"
    assert r(line("3 5 please", start=4.0)).text == "3 5 please"


def test_an_interim_hides_a_number_it_may_be_cut_in_the_middle_of():
    r = Redactor(RedactConfig())
    assert r(line("My card is 45", final=False)).text == "My card is [number]"
    assert r(line("I'll call you back in 2", final=False)).text == "I'll call you back in [number]"
    assert r(line("I'll call you back in 2 minutes", final=False)).text == "I'll call you back in 2 minutes"


@pytest.mark.parametrize("said", [
    "My email is john dot smith at example dot com thanks",
    "My email is john.smith@example.com thanks",
    "My email is john.smith at example.com thanks",
    "My email is john.smith.example.com thanks",  # Whisper dropped the "at"
    "My email is john underscore smith at mail dot example dot co dot uk thanks",
])
def test_email_addresses_written_or_spoken(said):
    assert redact(said) == ["My email is [email] thanks"]


def test_emails_can_be_left_alone():
    assert redact("mail john@example.com", cfg=RedactConfig(emails=False)) == ["mail john@example.com"]


def test_word_timings_are_kept_one_word_per_redacted_span():
    words = [["card", 1.0, 1.3], ["is", 1.3, 1.5], ["4", 1.5, 1.8], [".5", 1.8, 2.0], [".3", 2.0, 2.3],
             [".9.", 2.3, 2.6], ["1.4.8.8.", 2.7, 3.9], ["0343,", 4.0, 5.0], ["6467.", 5.0, 6.1], ["Right?", 6.3, 6.8]]
    text = "card is 4.5.3.9. 1.4.8.8. 0343, 6467. Right?"
    out = Redactor(RedactConfig())(line(text, start=1.0, end=6.8, words=words))
    assert out.text == "card is [card]. Right?"
    assert out.words == [["card", 1.0, 1.3], ["is", 1.3, 1.5], ["[card].", 1.5, 6.1], ["Right?", 6.3, 6.8]]
    assert is_label("[card].") and not is_label("card")


def test_patterns_from_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[redact.patterns]\npolicy = 'pol-[a-z]{2}\\d{2}'\n")
    cfg = load_config(path).redact
    assert redact("my policy is POL-ab12 thanks", cfg=cfg) == ["my policy is [policy] thanks"]


def test_bad_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[redact.patterns]\npolicy = '(unclosed'\n")
    with pytest.raises(UsageError, match="redact.patterns.policy"):
        load_config(path)
    path.write_text("[redact]\nmin_digits = 0\n")
    with pytest.raises(UsageError, match="min_digits"):
        load_config(path)


def test_store_mask_digits_is_read_as_redact_enabled(tmp_path, caplog):
    path = tmp_path / "c.toml"
    path.write_text("[store]\nmask_digits = false\n")
    assert load_config(path).redact.enabled is False
    assert "deprecated" in caplog.text
    path.write_text("[store]\nmask_digits = false\n[redact]\nenabled = true\n")
    assert load_config(path).redact.enabled is True
    assert redact("card 4539148803436467", cfg=RedactConfig(enabled=False)) == ["card 4539148803436467"]


def test_min_digits():
    assert redact("My ID is 123456", cfg=RedactConfig(min_digits=8)) == ["My ID is 123456"]
    assert redact("My PIN is 123", cfg=RedactConfig(min_digits=3)) == ["My PIN is [number]"]


def test_words_split_otherwise_than_the_text_are_redacted_all_the_same():
    r = Redactor(RedactConfig())
    out = r(line("write to john.smith@example.com now", words=[
        ["write", 0.0, 0.2], ["to", 0.2, 0.3], ["john.smith@", 0.3, 1.0], ["example.com", 1.0, 1.6], ["now", 1.7, 1.9]]))
    assert out.text == "write to [email] now"
    assert out.words == [["write", 0.0, 0.2], ["to", 0.2, 0.3], ["[email]", 0.3, 1.6], ["now", 1.7, 1.9]]
    # Words that disagree with the text (the text has a number the words do not): every word with a digit goes.
    out = r(line("code 4539 ok", start=30.0, words=[["code", 30.0, 30.2], ["4", 30.2, 30.4], ["ok", 30.7, 30.8]]))
    assert out.text == "code [number] ok"
    assert out.words == [["code", 30.0, 30.2], ["[number]", 30.2, 30.4], ["ok", 30.7, 30.8]]


def test_a_failing_redactor_redacts_bluntly_rather_than_letting_the_line_out(monkeypatch):
    def broken(*args):
        raise ValueError("a bug")

    monkeypatch.setattr(Redactor, "_numbers", broken)
    out = Redactor(RedactConfig())(line("card 4539 and four, mail j@x.com", words=[
        ["card", 0.0, 0.1], ["4539", 0.1, 0.2], ["and", 0.2, 0.3], ["four,", 0.3, 0.4], ["mail", 0.4, 0.5],
        ["j@x.com", 0.5, 0.6]]))
    assert out.text == "card [number] and [number], mail [email]"
    assert [w[0] for w in out.words] == ["card", "[number]", "and", "[number],", "mail", "[email]"]


TRICKY = ["4", "45", "4539", "4.5.3.9.", "four", "oh", "o", "double", "triple", "to", "too", "forty", "forty-five",
          "twelve", "uh", "and", "dot", "at", "@", "john", "example", "com", "example.com", "j@x.com", "-", ",", ".",
          "...", "1,500", "AB12345", "is", "my", "card", "the", "one", "two", "nine", "zero", "-4", ".5", "5-", "@@",
          "dot.", "x.y.z.com", "[card]"]


def test_any_jumble_of_tokens_is_redacted_without_failing_and_no_long_run_gets_out():
    import random

    from leaks import digit_runs

    rng, r = random.Random(7), Redactor(RedactConfig())
    for i in range(3000):
        tokens = [rng.choice(TRICKY) for _ in range(rng.randint(0, 12))]
        words = [[t, i + k * 0.1, i + k * 0.1 + 0.1] for k, t in enumerate(tokens)] if i % 3 else []
        out = r(line(" ".join(tokens), party=rng.choice(["agent", "customer"]), start=float(i), final=i % 5 > 0,
                     words=words))
        for text in [out.text] + [w[0] for w in out.words]:
            assert all(len(run) < 13 for run in digit_runs(text)), (tokens, out)
