"""A private PulseAudio server for live-capture tests: a null sink to play a call into, its monitor to capture.

The server runs in the foreground as our own child (so teardown kills exactly it), with its runtime,
config and state in a temp dir: nothing of the user's HOME or session server is touched. Clients in
this process (sounddevice through ALSA's `pulse` device, pactl, paplay) reach it through the env vars
set here; PULSE_SOURCE makes the `pulse` device record the sink's monitor.

    with pulse_server() as pulse:          # or the `pulse` session fixture
        pulse.play("call.wav")             # paplay --device=callsink
        DeviceCapture([Input("pulse", 0, "agent"), Input("pulse", 1, "customer")])
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

SINK = "callsink"


@dataclass
class Pulse:
    dir: Path
    env: dict[str, str]  # what clients need; already in os.environ while the server runs
    channels: int
    proc: subprocess.Popen

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=10)
        if done.returncode:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def play(self, path: str | Path) -> subprocess.Popen:
        """Start playing a file into the sink; the caller waits for (or kills) the process."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(path)], env={**os.environ, **self.env})

    def load_sink(self) -> None:
        """(Re)create the null sink: to the `pulse` capture device, its monitor comes back."""
        self.pactl("load-module", "module-null-sink", f"sink_name={SINK}", f"channels={self.channels}")

    def unload_sink(self) -> None:
        """Remove the null sink and its monitor: a capture from it loses its device."""
        self.pactl("unload-module", "module-null-sink")

    def freeze(self) -> None:
        """Stop the server process (SIGSTOP): clients block on it, as with a hung sound server."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@contextmanager
def pulse_server(channels: int = 2) -> Iterator[Pulse]:
    """Start a private PulseAudio server with a `callsink` null sink of `channels` channels."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: install the Debian packages pulseaudio and pulseaudio-utils")
    run = Path(tempfile.mkdtemp(prefix="calmline-pulse-"))
    client = {"XDG_RUNTIME_DIR": str(run), "PULSE_SERVER": f"unix:{run}/pulse/native",
              "PULSE_SOURCE": f"{SINK}.monitor"}
    # HOME and XDG_CONFIG_HOME only for the server: no daemon.conf or cookie of the user's is read or written.
    server_env = {**os.environ, **client, "HOME": str(run), "XDG_CONFIG_HOME": str(run / "config")}
    server_env.pop("PULSE_SERVER")
    log = open(run / "pulseaudio.log", "w")
    # As root pulseaudio only warns ("not intended to be run as root") and works in per-user mode.
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--system=false",
         "--log-target=stderr", "--load=module-native-protocol-unix auth-anonymous=1",
         f"--load=module-null-sink sink_name={SINK} channels={channels}"],
        env=server_env, stdout=log, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in client}
    os.environ.update(client)
    pulse = Pulse(run, client, channels, proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                pulse.pactl("info")
                break
            except RuntimeError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"private PulseAudio did not start:\n{(run / 'pulseaudio.log').read_text()}")
                time.sleep(0.1)
        yield pulse
    finally:
        if proc.poll() is None:
            pulse.thaw()  # a stopped process would not act on SIGTERM
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture(scope="session")
def pulse() -> Iterator[Pulse]:
    """The session's private PulseAudio server (import this fixture into a test module)."""
    with pulse_server() as server:
        yield server
