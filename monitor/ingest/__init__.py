"""Telephony ingest: calls streamed in by a platform (Genesys AudioHook, Twilio Media Streams, stereo PCM).

Each protocol is a state machine that knows nothing of the web framework (bytes and messages in,
messages and audio out); `routes` puts them on the app's WebSocket routes and runs each call.
"""
