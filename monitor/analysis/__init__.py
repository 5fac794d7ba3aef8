"""The analysis of one call: per-party tracks, conversation, cue rules, pace, transcription."""
