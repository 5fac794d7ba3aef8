"""Word cues on synthesized agent lines: does "Own it, no policy talk" fire on deflections (said
plainly, paraphrased) and stay silent on near misses and innocent lines?

Each line is spoken by espeak-ng in two voices, run through the real pipeline (VAD, tiny.en, cue
rules) as a call of its own, and scored by whether an own_the_problem cue came out. The same lines
as text alone (the matcher, no speech) separate matcher errors from speech errors. Spoken three ways:
with the configured hot words ([transcription] hotwords, Whisper's prompt), with none, and with every
phrase as hot words; word error rate of each against the script, and the prompt's cost in model time.

Prints one JSON object. Usage: bench/word_cues.py [--quick] [--misses]
"""

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import jiwer  # noqa: E402
import numpy as np  # noqa: E402

from monitor.analysis import transcriber  # noqa: E402
from monitor.analysis.phrases import words  # noqa: E402
from monitor.analysis.phrases import phrase_set  # noqa: E402
from monitor.analysis.pipeline import run_channels  # noqa: E402
from monitor.config import Config  # noqa: E402
from synth import speak  # noqa: E402

DEFLECTIONS = [  # said as the default phrases say it
    "I'm sorry, but it's our policy.",
    "There is nothing I can do.",
    "Please calm down, sir.",
    "That's not my department.",
    "You'll have to call the billing department.",
    "That is company policy.",
    "It's not my job to chase the courier.",
    "That's not my problem.",
    "You will have to call them yourself.",
    "There's nothing I can do about it.",
]
PARAPHRASES = [  # the same deflections in other words
    "Our policy says the technician has to confirm first.",
    "That's just company policy, I can't change it.",
    "The policy doesn't allow me to do that.",
    "Unfortunately that is the policy of the company.",
    "That is not something we handle here, you need to contact the manufacturer.",
    "You need to contact your bank about that.",
    "You'll need to call them directly.",
    "I'm not able to do anything about that.",
    "There's really nothing more I can do for you.",
    "Ma'am, you need to calm down.",
    "That isn't my job.",
    "We don't handle returns here.",
    "That's not something I can help with.",
    "I can't do anything about the delay.",
    "Our policies don't allow refunds after thirty days.",
    "You'd have to take that up with the courier.",
    "I'm afraid there's nothing we can do.",
    "It's out of my hands.",
    "We're not responsible for the courier.",
    "Per our policy, we cannot refund opened items.",
    "You have to contact the store where you bought it.",
    "Calm down and let me finish.",
    "The system won't let me do that, it's policy.",
    "I'm not able to help you with that.",
]
NEAR_MISSES = [  # the same words, meaning the opposite or something harmless
    "Let me read you our delivery policy so you know your options.",
    "Let me explain our return policy, it works in your favour.",
    "I'll handle this for you myself.",
    "Let me contact the manufacturer for you.",
    "There is something I can do, let me check.",
    "I'll call the billing team for you and stay on the line.",
    "You don't need to contact anyone else.",
    "You won't have to call back, I'll email you.",
    "The technician will come down on Tuesday morning.",
    "The courier is responsible for the delay, and I will chase them for you.",
    "It's my job to fix this for you.",
    "This is my department, so I can help.",
    "That's not a problem at all.",
    "Good news, the policy covers accidental damage.",
    "I have updated your address, is there anything else I can do?",
    "There's a lot I can do to help.",
    "Let me check what our policy allows so I can get you the most.",
    "I'm able to issue a refund today.",
    "Nothing is wrong with your account.",
    "We handle this kind of problem every day, so you are in good hands.",
]
INNOCENT = [  # ordinary agent lines
    "Thank you for calling, how can I help you today?",
    "I understand, this is frustrating, let me fix it.",
    "The refund will reach your card in three days.",
    "I will take care of it personally.",
    "Take your time, there is no rush.",
    "I can see the order on my screen.",
    "I'm going to stay with you until this is sorted.",
    "Could you tell me the name on the account?",
    "I've sent a replacement by express delivery.",
    "Is there anything else I can help you with?",
    "Let me put you on a short hold while I check.",
    "I'm sorry about the delay, that should not have happened.",
]
LATER_DEFLECTIONS = [  # written after the default list was first tuned on the lines above (see LATER below)
    "Sorry, that's the rules, there's not much I can do.",
    "You're going to have to ring the supplier yourself.",
    "I don't deal with billing, you'd need to phone them.",
    "Company rules say I can't give you a discount.",
    "That falls outside what I'm allowed to do.",
    "You should really take it up with your bank.",
    "Honestly, my hands are tied.",
    "That's above my pay grade.",
    "We have a strict policy on that.",
    "There isn't anything I can do for you.",
    "I'm not authorised to change that.",
    "Policy is policy, I'm afraid.",
    "I'm afraid that's just how it works here.",
    "You'll want to get in touch with the courier directly.",
    "We can't make exceptions to the policy.",
    "That's something the warehouse deals with, not us.",
    "I really can't help you with that one.",
    "There's no way for me to do that.",
    "You must contact customer relations by email.",
    "That decision is not up to me.",
    "Unfortunately my system doesn't allow that.",
    "The rules don't let me refund it.",
    "I'm not permitted to give out that information.",
    "Please calm down so I can help you.",
]
LATER_INNOCENT = [
    "I'll ring the supplier for you right now.",
    "Let me see what I can do about that discount.",
    "I'm allowed to waive the fee this time.",
    "Our privacy policy protects your data.",
    "I can phone the bank with you on the line.",
    "Let me take this up with my manager for you.",
    "I'll come back to you within the hour.",
    "I've checked the rules and you are entitled to a refund.",
    "There's plenty we can do here.",
    "Our engineers handle this every day.",
    "You won't need to do anything else.",
    "I'm happy to stay on the line while we sort it.",
    "I'll get in touch with the courier for you.",
    "We made an exception for you this time.",
    "I can help you with that one.",
    "Here is a way for me to fix that today.",
    "Your contact details are up to date.",
    "The system allows me to refund it right away.",
    "Let me go over the policy with you so nothing surprises you.",
    "I'm permitted to offer you a voucher.",
    "It's up to you which option you prefer.",
    "I can see why you would want that.",
    "The warehouse deals with it and I'll follow up myself.",
    "Please hold on while I calm the system down and restart it.",
]
LATER = [(t, True, "later_deflection") for t in LATER_DEFLECTIONS] + [(t, False, "later_innocent") for t in LATER_INNOCENT]
"""Lines written in two rounds after the first list, each scored as text before the list was widened for
it: round one 0/12 deflections heard (0 of 12 innocent lines cued), round two 5/12 (0 of 12); the list
now hears 23 of 24. So these measure the list's reach less than the first lines did; a new phrasing
is still likely to be missed."""
LINES = ([(t, True, "deflection") for t in DEFLECTIONS] + [(t, True, "paraphrase") for t in PARAPHRASES]
         + [(t, False, "near_miss") for t in NEAR_MISSES] + [(t, False, "innocent") for t in INNOCENT] + LATER)
VOICES = ["en-us", "en-gb"]


def score(rows) -> dict:
    """Precision and recall of `fired` against `expected`, and the errors by kind of line."""
    tp = sum(r["fired"] and r["expected"] for r in rows)
    fp = sum(r["fired"] and not r["expected"] for r in rows)
    fn = sum(not r["fired"] and r["expected"] for r in rows)
    by_kind = {}
    for r in rows:
        kind = by_kind.setdefault(r["kind"], {"n": 0, "wrong": 0})
        kind["n"] += 1
        kind["wrong"] += r["fired"] != r["expected"]
    return {"n": len(rows), "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None, "false_positives": fp, "misses": fn,
            "by_kind": by_kind}


def text_only(config: Config) -> list[dict]:
    phrases = phrase_set(tuple(config.cues.own_the_problem.phrases))
    return [{"text": t, "expected": e, "kind": k, "fired": phrases.find(t) is not None} for t, e, k in LINES]


def spoken(config: Config, lines, voices) -> tuple[list[dict], dict]:
    """Every line in every voice through the real pipeline, one call each; rows and the model's cost."""
    timing = {"runs": 0, "seconds": 0.0}
    engine = transcriber.load_engine(config.transcription.model_dir, config.transcription.compute_type,
                                     config.transcription.threads, config.transcription.beam_size,
                                     config.transcription.hotwords)
    real = engine.transcribe

    def timed(jobs):  # the same call, timed: the cost of the prompt shows here
        t0 = time.perf_counter()
        try:
            return real(jobs)
        finally:
            timing["runs"] += 1
            timing["seconds"] += time.perf_counter() - t0

    engine.transcribe = timed
    rows = []
    try:
        for text, expected, kind in lines:
            for voice in voices:
                audio = speak(text, 160, voice, -24.0)
                pad = np.zeros(8000, np.float32)
                agent = np.concatenate([pad, audio, pad, pad, pad])
                events = run_channels({"agent": agent, "customer": np.zeros_like(agent)}, config)
                heard = " ".join(e.text for e in events if e.type == "transcript" and e.final)
                cues = [e for e in events if e.type == "cue" and e.kind == "own_the_problem"]
                rows.append({"text": text, "voice": voice, "heard": heard, "expected": expected, "kind": kind,
                             "fired": bool(cues), "reason": cues[0].reason if cues else None})
    finally:
        del engine.transcribe
    cost = {"model_runs": timing["runs"],
            "model_ms_per_line": round(1000 * timing["seconds"] / max(1, timing["runs"]), 1)}
    return rows, cost


def prompt_cost(config: Config, rounds: int = 3) -> dict:
    """The model's time per line with no prompt, the configured hot words and every phrase as hot words:
    the same 12 lines, transcribed by each in turn, `rounds` times (interleaved, so that other load on
    the machine falls on all three alike); medians."""
    from monitor.analysis.transcriber import Engine, Job

    tc = config.transcription
    model = transcriber.load_model(tc.model_dir, tc.compute_type, tc.threads)
    every = phrase_set(tuple(config.cues.own_the_problem.phrases)).hotwords()
    prompts = {"none": "", "configured": tc.hotwords, "all_phrases": every}
    engines = {name: Engine(model, tc.beam_size, text) for name, text in prompts.items()}
    pad = np.zeros(4800, np.float32)
    jobs = [Job(("bench", "agent"), 0.0, 3.0, np.concatenate([pad, speak(t, 160, "en-us", -24.0), pad]))
            for t, _, _ in LINES[::6]]
    times = {name: [] for name in engines}
    cpu = {name: [] for name in engines}
    for _ in range(rounds):
        for job in jobs:
            for name, engine in engines.items():
                t0, c0 = time.perf_counter(), time.process_time()
                engine.transcribe([job])
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    ms = {name: round(1000 * float(np.median(t)), 1) for name, t in times.items()}
    cpu_ms = {name: round(1000 * float(np.median(t)), 1) for name, t in cpu.items()}
    return {"ms_per_line": ms, "cpu_ms_per_line": cpu_ms,
            "prompt_tokens": {n: len(e.prompt) - len(engines["none"].prompt) for n, e in engines.items()},
            "ratio_to_none": {n: round(ms[n] / ms["none"], 3) for n in ms},
            "cpu_ratio_to_none": {n: round(cpu_ms[n] / cpu_ms["none"], 3) for n in cpu_ms},
            "lines": len(jobs), "rounds": rounds, "load_average": round(os.getloadavg()[0], 1)}


def wer(rows) -> float:
    ref = [" ".join(words(r["text"])) for r in rows]
    hyp = [" ".join(words(r["heard"])) or "-" for r in rows]
    return round(jiwer.wer(ref, hyp), 3)


def main(argv):
    quick, show = "--quick" in argv, "--misses" in argv
    base = Config()
    lines = LINES[::4] if quick else LINES
    voices = VOICES[:1] if quick else VOICES
    out = {"benchmark": "word_cues", "lines": len(lines), "voices": voices,
           "utterances": len(lines) * len(voices),
           "text_only": score(text_only(base)),
           "text_only_later_lines": score([r for r in text_only(base) if r["kind"].startswith("later")]),
           "hotwords": base.transcription.hotwords}
    transcriber.load_model(base.transcription.model_dir, base.transcription.compute_type, base.transcription.threads)
    every = phrase_set(tuple(base.cues.own_the_problem.phrases)).hotwords()
    for name, hot in (("speech_hotwords", base.transcription.hotwords), ("speech_no_prompt", ""),
                      ("speech_all_phrases_prompt", every)):
        config = replace(base, transcription=replace(base.transcription, hotwords=hot))
        rows, cost = spoken(config, lines, voices)
        out[name] = {**score(rows), "wer": wer(rows), **cost}
        if show:
            out[name]["wrong"] = [{k: r[k] for k in ("text", "voice", "heard", "reason")}
                                  for r in rows if r["fired"] != r["expected"]]
    if show:
        out["text_only"]["wrong"] = [r["text"] for r in text_only(base) if r["fired"] != r["expected"]]
    out["prompt_cost"] = prompt_cost(base)
    out["target"] = {"recall": 0.9, "precision": 0.9}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
