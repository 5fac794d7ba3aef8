"""Memory of `calmline analyze` against the call's length: peak RSS of a real child process
(`analyze --no-transcribe`, recording on) for synthesized 5- and 60-minute stereo calls at 16 and
48 kHz, and the 60/5 ratio. Prints JSON. Target: ratio at most 1.3 (files are decoded as a stream,
state is bounded), where decoding whole files made it grow by about 0.9 GB an hour at 16 kHz.

    .venv/bin/python bench/memory.py [--minutes 5 60] [--rates 16000 48000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from rtf import ten_minute_call  # noqa: E402

BLOCK_MIN = 5


def write_call(path: Path, minutes: int, rate: int, block: np.ndarray) -> None:
    """`minutes` of call as a stereo FLAC, written block by block (the 5-minute block over and over)."""
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=2, format="FLAC", subtype="PCM_16") as out:
        for _ in range(minutes // BLOCK_MIN):
            out.write(block)


def peak_rss_mb(call: Path, data_dir: Path) -> tuple[float, float]:
    """Peak resident memory (MB) and wall time of one `calmline analyze` child, from its own rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "analyze", str(call), "--no-transcribe", "--json",
                             "--data-dir", str(data_dir)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"analyze failed ({proc.returncode}): {proc.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs=2, default=[5, 60])
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 48000])
    args = parser.parse_args()
    channels = ten_minute_call(BLOCK_MIN)
    stereo16 = np.stack([channels["agent"], channels["customer"]], axis=1)
    out = {"benchmark": "memory", "command": "analyze --no-transcribe (recording on)", "target_ratio": 1.3,
           "calls": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rate in args.rates:
            block = stereo16 if rate == 16000 else soxr.resample(stereo16, 16000, rate, quality="HQ")
            peaks = {}
            for minutes in args.minutes:
                call = tmp / f"call-{minutes}min-{rate}.flac"
                write_call(call, minutes, rate, block)
                rss, wall = peak_rss_mb(call, tmp / f"data-{minutes}-{rate}")
                peaks[minutes] = rss
                out["calls"].append({"minutes": minutes, "rate": rate, "peak_rss_mb": round(rss, 1),
                                     "wall_s": round(wall, 1), "file_mb": round(call.stat().st_size / 1e6, 1)})
                call.unlink()
            short, long = args.minutes
            out[f"ratio_{rate}"] = round(peaks[long] / peaks[short], 3)
    out["within_target"] = all(v <= out["target_ratio"] for k, v in out.items() if k.startswith("ratio_"))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
