"""The wire format, pure: every call frame in both directions (``calls``), the real-time
socket's own frames (``frames``), the one JSON encoder (``json``) and the client
call-state table (``call_states``). Nothing here imports the layers above it."""
