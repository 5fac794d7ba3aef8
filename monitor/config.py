"""Configuration: one dataclass per `config.toml` section; defaults here, documented in config.toml."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import UsageError


@dataclass
class ChannelsConfig:
    agent: int = 0
    customer: int = 1


@dataclass
class DevicesConfig:
    agent_device: str = ""
    customer_device: str = ""
    device: str = ""


@dataclass
class VadConfig:
    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech_s: float = 0.1
    min_silence_s: float = 0.3
    min_level_dbfs: float = -55.0
    noise_margin_db: float = 6.0
    bleed_margin_db: float = 15.0
    own_voice_margin_db: float = 8.0


@dataclass
class LoudnessConfig:
    short_term_s: float = 1.0
    baseline_tau_s: float = 60.0
    baseline_freeze_db: float = 4.0
    levels_every_s: float = 0.2
    stats_every_s: float = 1.0


@dataclass
class ConversationConfig:
    backchannel_max_s: float = 0.8
    interruption_overlap_s: float = 1.0
    min_overlap_s: float = 0.2
    resume_gap_s: float = 1.5


@dataclass
class WaitForPauseConfig:
    enabled: bool = True
    cooldown_s: float = 15.0


@dataclass
class SpeakSoftlyConfig:
    enabled: bool = True
    rise_db: float = 6.0
    hold_s: float = 0.6
    min_baseline_s: float = 4.0
    cooldown_s: float = 30.0


@dataclass
class DeadAirConfig:
    enabled: bool = True
    silence_s: float = 5.0
    cooldown_s: float = 20.0


@dataclass
class SlowDownConfig:
    enabled: bool = True
    ratio: float = 1.25
    min_wpm: float = 170.0
    min_talk_s: float = 8.0
    cooldown_s: float = 30.0


def _phrases(*items: str):
    return field(default_factory=lambda: list(items))


@dataclass
class OwnTheProblemConfig:
    enabled: bool = True
    # Patterns (monitor/analysis/phrases.py: stems, a word between, a|b, [optional], ..., {any order},
    # !innocent use, one misheard word).
    phrases: list = _phrases("it|that|this is [just] our|company|the policy",
                             "policy|rules say|states|requires", "policy|rules do|does|will not",
                             "per|against|under|to our|company|the policy", "company|strict|store policy",
                             "our policy", "!read|explain|check|send|show ... policy",
                             "!policy covers|includes|protects", "policy is policy", "rules are rules",
                             "not|nothing [much|anything|more|else] i|we can do",
                             "not something i|we can|handle|do|deal", "we do not handle|deal|do",
                             "you ... need|have to contact|call|ring|phone|take|speak|ask|go",
                             "you ... take it|that|this up with", "!not need|have to", "!thank you",
                             "!if you need|have",
                             "not able|allowed|authorised|authorized|permitted to do|help|change|give|offer|refund|make",
                             "can not do anything", "calm down",
                             "not my department|job|problem|responsibility|fault|call|decision",
                             "not up to me", "nothing to do with me|us", "out of my hands", "hands are tied",
                             "pay grade", "outside ... allowed|remit|control", "we|i are|am not responsible",
                             "system will|does not let|allow", "those|these are the rules",
                             "can not help [you] with", "no way for me|us to", "you ... get in touch",
                             "you must|should contact|call|ring|phone", "just how it works|is",
                             "not make [an] exception|exceptions")
    cooldown_s: float = 20.0


@dataclass
class AcknowledgeConfig:
    enabled: bool = True
    within_s: float = 10.0
    rise_db: float = 6.0
    hold_s: float = 1.0
    frustration: list = _phrases("ridiculous", "third time", "unacceptable", "frustrated", "frustrating",
                                 "fed up", "sick of", "waste of time", "terrible", "outrageous", "angry",
                                 "damn", "hell")
    acknowledgements: list = _phrases("sorry", "apologize", "apologise", "i understand", "understand how",
                                      "i hear you", "i see why", "that must be", "frustrating for you",
                                      "i can imagine", "thank you for your patience", "!understand but", "!sorry but")
    cooldown_s: float = 30.0


@dataclass
class LetThemTalkConfig:
    enabled: bool = True
    window_s: float = 60.0
    share: float = 0.65
    min_talk_s: float = 20.0
    upset_within_s: float = 120.0
    cooldown_s: float = 60.0


@dataclass
class PauseFirstConfig:
    enabled: bool = True
    gap_s: float = 0.15
    count: int = 3
    within_s: float = 60.0
    cooldown_s: float = 60.0


@dataclass
class CuesConfig:
    wait_for_pause: WaitForPauseConfig = field(default_factory=WaitForPauseConfig)
    speak_softly: SpeakSoftlyConfig = field(default_factory=SpeakSoftlyConfig)
    dead_air: DeadAirConfig = field(default_factory=DeadAirConfig)
    slow_down: SlowDownConfig = field(default_factory=SlowDownConfig)
    own_the_problem: OwnTheProblemConfig = field(default_factory=OwnTheProblemConfig)
    acknowledge: AcknowledgeConfig = field(default_factory=AcknowledgeConfig)
    let_them_talk: LetThemTalkConfig = field(default_factory=LetThemTalkConfig)
    pause_first: PauseFirstConfig = field(default_factory=PauseFirstConfig)
    clear_s: float = 1.0
    min_show_s: float = 2.0
    show_s: float = 6.0
    max_show_s: float = 30.0
    praise: bool = False


@dataclass
class TranscriptionConfig:
    enabled: bool = True
    model_dir: str = ""
    compute_type: str = "int8"
    threads: int = 2
    beam_size: int = 1
    partial_every_s: float = 1.0
    pace_window_s: float = 25.0
    hotwords: str = "Please calm down."


@dataclass
class SentimentConfig:
    enabled: bool = True
    every_s: float = 3.0
    trend_s: float = 15.0
    words_weight: float = 0.6
    pitch: bool = True
    level_full_db: float = 9.0
    pitch_full_st: float = 6.0
    baseline_s: float = 5.0


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765


@dataclass
class StoreConfig:
    record: bool = True
    data_dir: str = ""
    url: str = ""
    agent_name: str = ""
    mask_digits: bool = True  # deprecated: redaction is [redact] now; false here turns it off (with a warning)
    retention_days: float = 90.0
    redact_audio: bool = True
    redact_hold_s: float = 15.0


@dataclass
class RedactConfig:
    enabled: bool = True
    min_digits: int = 4
    run_window_s: float = 10.0
    emails: bool = True
    audio_pad_s: float = 0.25
    patterns: dict = field(default_factory=dict)

    def __post_init__(self):
        import re

        if self.min_digits < 1:
            raise UsageError(f"'redact.min_digits' must be at least 1, not {self.min_digits!r}")
        for name, rx in self.patterns.items():
            if not re.fullmatch(r"[a-z_]+", name):
                raise UsageError(f"'redact.patterns.{name}': a pattern's name is lower-case letters and _")
            try:
                re.compile(rx)
            except re.error as exc:
                raise UsageError(f"'redact.patterns.{name}' is not a regular expression ({exc})") from None


@dataclass
class HubConfig:
    url: str = ""
    token: str = ""
    host: str = "127.0.0.1"
    port: int = 8766
    redis_url: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    allowed_origins: list = field(default_factory=list)
    allowed_hosts: list = field(default_factory=list)
    max_connections_per_agent: int = 4
    max_calls_per_agent: int = 8
    tokens: dict = field(default_factory=dict)
    supervisors: dict = field(default_factory=dict)
    agents: dict = field(default_factory=dict)
    """Agent name -> password hash: the agent signs in to the server's overlay and their own calls."""


MIN_INGEST_SECRET = 16
"""Every ingest credential (API key, client secret, auth token, PCM token) is at least this long."""


@dataclass
class AudioHookIngestConfig:
    api_keys: dict = field(default_factory=dict)  # X-API-KEY -> base64 client secret ("" = unsigned upgrades)
    max_signature_age_s: float = 10.0

    def __post_init__(self):
        import base64
        import binascii

        for key, secret in self.api_keys.items():
            if len(key) < MIN_INGEST_SECRET:
                raise UsageError(f"'ingest.audiohook.api_keys': an API key must be at least "
                                 f"{MIN_INGEST_SECRET} characters")
            if secret:
                try:
                    base64.b64decode(secret, validate=True)
                except (binascii.Error, ValueError):
                    raise UsageError(f"'ingest.audiohook.api_keys': the client secret of key {key[:4]}... "
                                     "is not base64") from None
                if len(secret) < MIN_INGEST_SECRET:
                    raise UsageError(f"'ingest.audiohook.api_keys': a client secret must be at least "
                                     f"{MIN_INGEST_SECRET} characters")


@dataclass
class TwilioIngestConfig:
    auth_token: str = ""

    def __post_init__(self):
        if self.auth_token and len(self.auth_token) < MIN_INGEST_SECRET:
            raise UsageError(f"'ingest.twilio.auth_token' must be at least {MIN_INGEST_SECRET} characters")


@dataclass
class PcmIngestConfig:
    token: str = ""

    def __post_init__(self):
        if self.token and len(self.token) < MIN_INGEST_SECRET:
            raise UsageError(f"'ingest.pcm.token' must be at least {MIN_INGEST_SECRET} characters")


@dataclass
class IngestConfig:
    public_url: str = ""
    idle_timeout_s: float = 10.0
    flood_budget_s: float = 2.0
    reconnect_grace_s: float = 10.0
    processes: int = -1  # worker processes for the calls' analysis: -1 one per core (none when transcribing),
    # 0 or 1 none (threads)
    audiohook: AudioHookIngestConfig = field(default_factory=AudioHookIngestConfig)
    twilio: TwilioIngestConfig = field(default_factory=TwilioIngestConfig)
    pcm: PcmIngestConfig = field(default_factory=PcmIngestConfig)

    def __post_init__(self):
        from urllib.parse import urlsplit

        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("https", "wss", "http", "ws") or not parts.netloc or parts.query:
                raise UsageError(f"'ingest.public_url' must be a URL like wss://calls.example.com, "
                                 f"not {self.public_url!r}")
        if self.idle_timeout_s <= 0 or self.flood_budget_s <= 0:
            raise UsageError("'ingest.idle_timeout_s' and 'ingest.flood_budget_s' must be more than 0")


@dataclass
class ScorecardWeightsConfig:
    """How much each RESOLVED item weighs in the 0-100 score (relative; 0 leaves an item out)."""

    respond: float = 1.5
    empathize: float = 1.5
    seek_to_solve: float = 1.5
    open_mind: float = 0.5
    listen: float = 2.0
    verify: float = 0.5
    execute: float = 1.0
    document: float = 0.5
    thank: float = 0.5


@dataclass
class ScorecardCostsConfig:
    """What one occurrence of a behaviour takes off its item's credit (out of 1)."""

    policy: float = 0.4
    dead_air: float = 0.35
    interruption: float = 0.3
    raised_voice: float = 0.3
    held_floor: float = 0.2
    unacknowledged: float = 0.3
    talk_share: float = 0.3


@dataclass
class ScorecardConfig:
    repeat_exponent: float = 0.5
    apology_within_s: float = 10.0
    apology_late_s: float = 30.0
    late_apology_credit: float = 0.4
    undo_words: list = _phrases("policy", "procedure", "rules", "can't", "cannot", "can not", "unable",
                                "not able", "nothing", "not allowed", "you have to", "you'll have to",
                                "you will have to", "has to", "have to wait")
    weights: ScorecardWeightsConfig = field(default_factory=ScorecardWeightsConfig)
    costs: ScorecardCostsConfig = field(default_factory=ScorecardCostsConfig)

    def __post_init__(self):
        if sum(getattr(self.weights, f.name) for f in fields(self.weights)) <= 0:
            raise UsageError("[scorecard.weights]: at least one item must weigh more than 0")


@dataclass
class Config:
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    loudness: LoudnessConfig = field(default_factory=LoudnessConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    cues: CuesConfig = field(default_factory=CuesConfig)
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    sentiment: SentimentConfig = field(default_factory=SentimentConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    redact: RedactConfig = field(default_factory=RedactConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    scorecard: ScorecardConfig = field(default_factory=ScorecardConfig)


RANGES: dict[str, tuple[float, float]] = {
    # Every number in config.toml, with the closed range it must lie in (documented there beside the
    # key). One table, checked in one place (_check): a key added without a range fails its test.
    "channels.agent": (0, 63), "channels.customer": (0, 63),
    "vad.threshold": (0, 1), "vad.neg_threshold": (0, 1),
    "vad.min_speech_s": (0, 5), "vad.min_silence_s": (0, 5),
    "vad.min_level_dbfs": (-120, 0), "vad.noise_margin_db": (0, 60),
    "vad.bleed_margin_db": (0, 60), "vad.own_voice_margin_db": (0, 60),
    "loudness.short_term_s": (0.1, 30), "loudness.baseline_tau_s": (1, 3600),
    "loudness.baseline_freeze_db": (0, 60), "loudness.levels_every_s": (0.05, 10),
    "loudness.stats_every_s": (0.1, 60),
    "cues.clear_s": (0, 30), "cues.min_show_s": (0, 30), "cues.show_s": (0.5, 120), "cues.max_show_s": (1, 3600),
    "conversation.backchannel_max_s": (0, 10), "conversation.interruption_overlap_s": (0, 10),
    "conversation.min_overlap_s": (0, 10), "conversation.resume_gap_s": (0, 10),
    "cues.wait_for_pause.cooldown_s": (0, 3600),
    "cues.speak_softly.rise_db": (0.5, 60), "cues.speak_softly.hold_s": (0.05, 60),
    "cues.speak_softly.min_baseline_s": (0, 600), "cues.speak_softly.cooldown_s": (0, 3600),
    "cues.dead_air.silence_s": (0.5, 600), "cues.dead_air.cooldown_s": (0, 3600),
    "cues.slow_down.ratio": (1, 10), "cues.slow_down.min_wpm": (0, 1000),
    "cues.slow_down.min_talk_s": (0, 600), "cues.slow_down.cooldown_s": (0, 3600),
    "cues.own_the_problem.cooldown_s": (0, 3600),
    "cues.acknowledge.within_s": (0.5, 600), "cues.acknowledge.rise_db": (0.5, 60),
    "cues.acknowledge.hold_s": (0.05, 60), "cues.acknowledge.cooldown_s": (0, 3600),
    "cues.let_them_talk.window_s": (1, 3600), "cues.let_them_talk.share": (0.5, 1),
    "cues.let_them_talk.min_talk_s": (0, 3600), "cues.let_them_talk.upset_within_s": (0, 3600),
    "cues.let_them_talk.cooldown_s": (0, 3600),
    "cues.pause_first.gap_s": (0, 5), "cues.pause_first.count": (1, 100),
    "cues.pause_first.within_s": (1, 3600), "cues.pause_first.cooldown_s": (0, 3600),
    "transcription.threads": (1, 64), "transcription.beam_size": (1, 20),
    "transcription.partial_every_s": (0.1, 60), "transcription.pace_window_s": (1, 600),
    "sentiment.every_s": (0.5, 600), "sentiment.trend_s": (1, 3600), "sentiment.words_weight": (0, 1),
    "sentiment.level_full_db": (2, 60), "sentiment.pitch_full_st": (1, 24), "sentiment.baseline_s": (0, 600),
    "server.port": (0, 65535), "hub.port": (0, 65535),
    "store.retention_days": (0, 36500), "store.redact_hold_s": (0, 3600),
    "redact.min_digits": (1, 64), "redact.run_window_s": (0, 600), "redact.audio_pad_s": (0, 5),
    "hub.max_connections_per_agent": (1, 1000), "hub.max_calls_per_agent": (1, 1000),
    "ingest.idle_timeout_s": (0.1, 3600), "ingest.flood_budget_s": (0.1, 60),
    "ingest.reconnect_grace_s": (0, 3600), "ingest.processes": (-1, 64), "ingest.audiohook.max_signature_age_s": (1, 3600),
    "scorecard.repeat_exponent": (0, 1), "scorecard.apology_within_s": (0, 600),
    "scorecard.apology_late_s": (0, 3600), "scorecard.late_apology_credit": (0, 1),
    **{f"scorecard.weights.{k}": (0, 10) for k in ("respond", "empathize", "seek_to_solve", "open_mind", "listen",
                                                   "verify", "execute", "document", "thank")},
    **{f"scorecard.costs.{k}": (0, 1) for k in ("policy", "dead_air", "interruption", "raised_voice", "held_floor",
                                                "unacknowledged", "talk_share")},
}
NONEMPTY = {"cues.own_the_problem.phrases", "cues.acknowledge.frustration", "cues.acknowledge.acknowledgements"}
"""Lists a cue rule needs: an empty one would silently turn the rule off (use `enabled = false` for that)."""


def default_config_path() -> Path | None:
    """$CALMLINE_CONFIG, else ./config.toml when present, else none (built-in defaults)."""
    env = os.environ.get("CALMLINE_CONFIG")
    if env:
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file; every problem is a UsageError naming the key."""
    path = Path(path) if path else default_config_path()
    if path is None:
        return Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read config ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML ({exc})") from None
    config = _build(Config, data, str(path), "")
    _deprecated_mask_digits(config, data, str(path))
    return config


def _deprecated_mask_digits(config: Config, data: dict, path: str) -> None:
    """`[store] mask_digits` (the store's own masking) became `[redact] enabled`: still read, with a warning."""
    if "mask_digits" not in data.get("store", {}):
        return
    import logging

    logging.getLogger("calmline.config").warning(
        "%s: 'store.mask_digits' is deprecated; use 'redact.enabled' (transcripts are redacted in the pipeline)", path)
    if "enabled" not in data.get("redact", {}):
        config.redact.enabled = config.store.mask_digits


def _build(cls, data: dict, path: str, prefix: str):
    if not isinstance(data, dict):
        raise UsageError(f"{path}: [{prefix.rstrip('.')}] must be a table")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in data.items():
        name = prefix + key
        if key not in known:
            raise UsageError(f"{path}: unknown key '{name}'")
        default = getattr(cls(), key)
        if hasattr(default, "__dataclass_fields__"):
            values[key] = _build(type(default), value, path, name + ".")
        else:
            values[key] = _check(default, value, path, name)
    return cls(**values)


def _check(default, value, path: str, name: str):
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is list:
        ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
    elif kind is dict:
        ok = isinstance(value, dict) and all(isinstance(x, str) for x in value.values())
    else:
        ok = isinstance(value, kind)
    if not ok:
        want = {bool: "true or false", float: "a number", int: "an integer", str: "a string",
                list: "a list of strings", dict: "a table of strings"}.get(kind, kind.__name__)
        raise UsageError(f"{path}: '{name}' must be {want}, not {value!r}")
    section, _, key = name.rpartition(".")
    if kind in (int, float) and name in RANGES:
        lo, hi = RANGES[name]
        if not (math.isfinite(value) and lo <= value <= hi):  # NaN fails every comparison: refused too
            raise UsageError(f"{path}: [{section}] {key} = {value!r} is out of range {lo:g}..{hi:g}")
    elif kind in (int, float) and value < 0 and not name.endswith("dbfs"):
        raise UsageError(f"{path}: '{name}' must not be negative, not {value!r}")
    if name in NONEMPTY and not [x for x in value if x.strip()]:
        raise UsageError(f"{path}: [{section}] {key} must not be empty (the rule needs it; "
                         f"set enabled = false to turn it off)")
    if name in NONEMPTY:
        from .analysis.phrases import check

        if problem := check(value):
            raise UsageError(f"{path}: [{section}] {key}: {problem}")
    return value
