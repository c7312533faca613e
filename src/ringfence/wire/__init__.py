"""The wire format, pure: every call frame in both directions (``calls``), the real-time
socket's own frames (``frames``) and events (``events``), the public shapes of users,
messages and the rest (``models``), the HTTP API's request bodies (``requests``) and
response envelopes (``responses``), the text rules they apply (``text``), the one JSON
encoder (``json``) and the client call-state table (``call_states``). Nothing here
imports the layers above it (tests/unit/wire/test_pure.py)."""
