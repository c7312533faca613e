"""Media for terminal calls: what to send (a tone, a WAV file, colour bars) and where
received media goes (a WAV file, or nowhere), plus the frequency analysis the tests use.

Sources are ordinary aiortc tracks paced in real time, so a call from the terminal
looks to the other side exactly like one from a browser. Sinks consume every remote
track they are given: an unread aiortc track buffers frames without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import wave
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av.audio.resampler import AudioResampler

__all__ = [
    "SAMPLE_RATE",
    "ColourBarsTrack",
    "DiscardSink",
    "MediaSink",
    "ToneTrack",
    "WavRecorder",
    "dominant_frequency",
    "wav_player",
]

SAMPLE_RATE = 48_000
FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms, WebRTC's usual packetisation
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class ToneTrack(MediaStreamTrack):
    """A sine tone: mono, 48 kHz, signed 16-bit, 20 ms frames with sample-count pts.

    With ``realtime`` (the default) frames come no faster than they would play, as a
    microphone's would; without it they come as fast as they are asked for.
    """

    kind = "audio"

    def __init__(
        self, frequency: float = 440.0, *, amplitude: float = 0.5, realtime: bool = True
    ) -> None:
        super().__init__()
        if not 0 < frequency < SAMPLE_RATE / 2:
            raise ValueError(f"frequency must be between 0 and {SAMPLE_RATE // 2} Hz")
        if not 0 < amplitude <= 1:
            raise ValueError("amplitude must be in (0, 1]")
        self.frequency = frequency
        self._peak = amplitude * 32767
        self._realtime = realtime
        self._next_sample = 0
        self._started_at: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        start = self._next_sample
        if self._realtime:
            loop = asyncio.get_running_loop()
            if self._started_at is None:
                self._started_at = loop.time()
            delay = self._started_at + start / SAMPLE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        t = (np.arange(FRAME_SAMPLES, dtype=np.float64) + start) / SAMPLE_RATE
        samples = np.round(self._peak * np.sin(2 * math.pi * self.frequency * t))
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        frame.time_base = AUDIO_TIME_BASE
        self._next_sample = start + FRAME_SAMPLES
        return frame


class ColourBarsTrack(VideoStreamTrack):
    """Synthetic video for ``--video``: colour bars with a white bar sweeping across,
    so a frozen picture is easy to tell from a moving one. 30 fps, real-time paced."""

    _COLOURS = np.array(
        [
            [192, 192, 192],
            [192, 192, 0],
            [0, 192, 192],
            [0, 192, 0],
            [192, 0, 192],
            [192, 0, 0],
            [0, 0, 192],
        ],
        dtype=np.uint8,
    )

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("width and height must be even and at least 16")
        columns = np.arange(width) * len(self._COLOURS) // width
        self._bars = np.broadcast_to(self._COLOURS[columns], (height, width, 3)).copy()
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = self._bars.copy()
        width = image.shape[1]
        x = (self._count * 4) % width
        image[:, x : x + 8] = 255
        self._count += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


def wav_player(path: Path) -> MediaStreamTrack:
    """A real-time paced audio track playing a WAV (or any audio file FFmpeg reads).
    The track ends when the file does."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    player = MediaPlayer(str(path))
    if player.audio is None:
        raise ValueError(f"{path} has no audio stream")
    track: MediaStreamTrack = player.audio
    return track


class MediaSink(Protocol):
    """Where a call's remote tracks go. ``add_track`` starts consuming at once;
    ``stop`` ends consumption and releases files."""

    def add_track(self, track: MediaStreamTrack) -> None: ...

    async def stop(self) -> None: ...


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


class DiscardSink:
    """Consumes remote tracks and throws the frames away."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def add_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(_drain(track)))

    async def stop(self) -> None:
        await _cancel(self._tasks)


class WavRecorder:
    """Writes the remote audio track to a 16-bit PCM WAV file (48 kHz, mono or
    stereo); any other track is consumed and discarded. The file is complete once
    :meth:`stop` returns, and exists (possibly empty) even if no audio ever came."""

    def __init__(self, path: Path, *, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.path = path
        self.channels = channels
        self.samples_written = 0
        self._wav: wave.Wave_write | None = None
        self._audio_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def duration_s(self) -> float:
        return self.samples_written / SAMPLE_RATE

    def add_track(self, track: MediaStreamTrack) -> None:
        """Record an audio track; a later one takes over from it (the call moved to a
        new connection), so the file goes on without the old track's tail."""
        loop = asyncio.get_running_loop()
        if track.kind == "audio":
            if self._audio_task is not None:
                self._audio_task.cancel()
            self._open()
            self._audio_task = loop.create_task(self._record(track))
            self._tasks.append(self._audio_task)
        else:
            self._tasks.append(loop.create_task(_drain(track)))

    def _open(self) -> wave.Wave_write:
        if self._wav is None:
            wav = wave.open(str(self.path), "wb")  # noqa: SIM115 (closed in stop())
            wav.setnchannels(self.channels)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            self._wav = wav
        return self._wav

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(
            format="s16", layout="mono" if self.channels == 1 else "stereo", rate=SAMPLE_RATE
        )
        wav = self._open()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in resampler.resample(frame):
                    data = out.to_ndarray()  # packed s16: shape (1, samples * channels)
                    wav.writeframes(data.astype(np.int16, copy=False).tobytes())
                    self.samples_written += out.samples

    async def wait_finished(self) -> None:
        """Wait until every track given so far has ended or was taken over from
        (the file stays open)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        await _cancel(self._tasks)
        self._open().close()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    tasks.clear()


def dominant_frequency(wav_path: Path, *, skip_s: float = 0.0) -> float:
    """The strongest frequency in a PCM WAV file, in Hz, to a fraction of a bin.

    Channels are averaged; ``skip_s`` ignores the start (a call's first packets).
    Raises ``ValueError`` for a file with no (remaining) samples or only silence.
    """
    with wave.open(str(wav_path), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        raw = wav.readframes(wav.getnframes())
    if width == 1:
        pcm = np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128
    elif width in (2, 4):
        pcm = np.frombuffer(raw, dtype=np.int16 if width == 2 else np.int32).astype(np.float64)
    else:
        raise ValueError(f"{width * 8}-bit WAV is not supported")
    signal = pcm.reshape(-1, channels).mean(axis=1)[int(skip_s * rate) :]
    if signal.size < 16:
        raise ValueError(f"{wav_path} has too few samples to analyse")
    signal = signal - signal.mean()
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    if spectrum[peak] == 0.0:
        raise ValueError(f"{wav_path} is silent")
    # Parabolic interpolation on the log magnitude around the peak bin.
    offset = 0.0
    if 0 < peak < spectrum.size - 1:
        left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        denominator = left - 2 * centre + right
        if denominator != 0:
            offset = 0.5 * (left - right) / denominator
    return float((peak + offset) * rate / signal.size)
