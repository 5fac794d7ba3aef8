"""The call library and after the call: the store, reports and the scorecard."""
