"""Telephony ingest: calls streamed in by a platform (Genesys AudioHook, Twilio Media Streams, stereo PCM).

Each protocol is a state machine that knows nothing of the web framework (bytes and messages in,
`actions` out): `audiohook` (with `signature` for its signed upgrade), `twilio`, `pcm`. `timeline`
places each party's audio at its position in the call and resamples it to 16 kHz; `callwork` is
one call's analysis, run by `pool` in worker processes (or by `workers` on threads) off the event loop; `routes` puts it all on the app's WebSocket routes, one
CallSession per call; `outputs` connects a call's events to the floor for `calmline server`.
"""
