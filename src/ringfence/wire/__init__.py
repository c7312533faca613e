"""The wire format, pure: how frames and events are written as JSON text (``json``),
and the frames of the real-time socket outside calls (``frames``). Call frames are in
``ringfence.calls.codec``. Nothing here imports the layers above it."""
