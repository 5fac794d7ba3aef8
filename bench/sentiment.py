"""CPU cost of the customer's sentiment (monitor/analysis/sentiment.py) per second of customer audio, one core:
the voice part (librosa.yin over each talk spurt, plus the baseline) and the text part (VADER over each
final transcript), on the real recordings of ../shared/data/real (LibriVox reader: 24.7 s, five
utterances with their reference transcripts; the pyannote phone call's two speakers, by their RTTM
turns). Also what loading librosa costs once per process (time, resident memory), and the
acoustic pipeline's CPU per audio second with sentiment on and off (a 2-minute synthesized call), and
librosa.pyin's cost for comparison (why yin).

Prints JSON. Targets: voice part <= 0.005 CPU s per audio s (0.5% of a core), text part <= 0.0005.

    .venv/bin/python bench/sentiment.py [--repeat 5]
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import numpy as np  # noqa: E402

from audio import SAMPLE_RATE  # noqa: E402
from audio.decode import read_audio  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def utterances() -> list[tuple[np.ndarray, str]]:
    """Real speech cut into talk spurts with their words: LibriVox's five clips, the pyannote call's turns."""
    out = []
    refs = {}
    for line in (REAL / "librivox" / "transcription").read_text().splitlines():
        words, ident = line.rsplit("(", 1)
        refs[ident.strip(" )")] = words.replace("<s>", "").replace("</s>", "").strip()
    for wav in sorted((REAL / "librivox").glob("*.wav")):
        out.append((read_audio(wav)[:, 0], refs.get(wav.stem, "")))
    audio = read_audio(REAL / "pyannote" / "sample.wav")[:, 0]
    for line in (REAL / "pyannote" / "sample.stm").read_text().splitlines():
        f = line.split(maxsplit=5)
        a, b = int(float(f[3]) * SAMPLE_RATE), int(float(f[4]) * SAMPLE_RATE)
        out.append((audio[a:b], f[5] if len(f) > 5 else ""))
    return out


def cpu_of(fn, repeat: int) -> float:
    """Least CPU seconds of `repeat` runs (the others were disturbed by the machine's other work)."""
    best = float("inf")
    for _ in range(repeat):
        cpu = time.process_time()
        fn()
        best = min(best, time.process_time() - cpu)
    return best


def pipeline_cpu(sentiment_on: bool, repeat: int) -> tuple[float, float]:
    from monitor.analysis.pipeline import run_channels
    from monitor.config import Config
    from rtf import ten_minute_call

    channels = ten_minute_call(2.0)
    config = Config()
    config.transcription.enabled = False
    config.sentiment.enabled = sentiment_on
    run_channels({k: v[: SAMPLE_RATE * 5] for k, v in channels.items()}, config, transcribe=False)  # warm
    return cpu_of(lambda: run_channels(channels, config, transcribe=False), repeat), len(channels["agent"]) / SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from monitor.analysis import sentiment

    spurts = utterances()
    audio_s = sum(len(a) for a, _ in spurts) / SAMPLE_RATE

    before, start = rss_mb(), time.perf_counter()
    sentiment._load_librosa()
    load_s, load_mb = time.perf_counter() - start, rss_mb() - before
    sentiment.words_score("warm up")

    voice = cpu_of(lambda: [sentiment.median_pitch(a) for a, _ in spurts], args.repeat)
    text = cpu_of(lambda: [sentiment.words_score(t) for _, t in spurts], args.repeat)
    pitches = [sentiment.median_pitch(a) for a, _ in spurts]
    few = spurts[:3]  # pyin, for comparison: far slower, so on three utterances once
    librosa = sentiment._librosa
    librosa.pyin(few[0][0][:8000], fmin=sentiment.FMIN, fmax=sentiment.FMAX, sr=SAMPLE_RATE)  # compile
    pyin = cpu_of(lambda: [librosa.pyin(a, fmin=sentiment.FMIN, fmax=sentiment.FMAX, sr=SAMPLE_RATE,
                                        frame_length=sentiment.FRAME, hop_length=sentiment.HOP) for a, _ in few], 1)
    on, call_s = pipeline_cpu(True, max(1, args.repeat // 2))
    off, _ = pipeline_cpu(False, max(1, args.repeat // 2))
    print(json.dumps({
        "audio_s": round(audio_s, 1),
        "utterances": len(spurts),
        "voice_cpu_per_audio_s": round(voice / audio_s, 5),
        "text_cpu_per_audio_s": round(text / audio_s, 6),
        "pyin_cpu_per_audio_s": round(pyin / (sum(len(a) for a, _ in few) / SAMPLE_RATE), 4),
        "pitch_tracked": sum(p is not None for p in pitches),
        "pitch_hz_median": round(float(np.median([p for p in pitches if p])), 1),
        "librosa_load_s": round(load_s, 2),
        "librosa_load_rss_mb": round(load_mb),
        "pipeline_call_s": round(call_s),
        "pipeline_cpu_per_audio_s": {"sentiment_on": round(on / call_s, 5), "sentiment_off": round(off / call_s, 5)},
        "targets": {"voice_cpu_per_audio_s": 0.005, "text_cpu_per_audio_s": 0.0005},
    }, indent=2))


if __name__ == "__main__":
    main()
