"""The call: pipeline, conversation state, cue rules, events, report and the command line."""

PARTIES = ("agent", "customer")
