"""The media the terminal client sends and records, measured from real frames."""

from __future__ import annotations

import asyncio
import math
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ringfence.client.media import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    ColourBarsTrack,
    ToneTrack,
    WavRecorder,
    dominant_frequency,
    wav_player,
)


def write_wav(
    path: Path, samples: np.ndarray, *, rate: int = SAMPLE_RATE, channels: int = 1
) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype(np.int16).tobytes())


def sine(frequency: float, seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 12000 * np.sin(2 * math.pi * frequency * t)


async def test_tone_frames_have_webrtc_shape_and_continuous_timestamps() -> None:
    track = ToneTrack(440, realtime=False)
    frames = [await track.recv() for _ in range(5)]
    for index, frame in enumerate(frames):
        assert frame.sample_rate == SAMPLE_RATE
        assert frame.samples == FRAME_SAMPLES == 960  # 20 ms
        assert frame.format.name == "s16"
        assert frame.layout.name == "mono"
        assert frame.time_base == Fraction(1, SAMPLE_RATE)
        assert frame.pts == index * FRAME_SAMPLES


@pytest.mark.parametrize("frequency", [220.0, 440.0, 1000.0, 3150.0])
async def test_tone_frequency_measured_from_generated_frames(frequency: float) -> None:
    track = ToneTrack(frequency, realtime=False)
    pcm = np.concatenate([(await track.recv()).to_ndarray().reshape(-1) for _ in range(50)])
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    peak_hz = int(np.argmax(spectrum)) * SAMPLE_RATE / pcm.size
    assert abs(peak_hz - frequency) <= SAMPLE_RATE / pcm.size  # within one 1 Hz bin


async def test_tone_phase_is_continuous_across_frames() -> None:
    """No click at frame boundaries: consecutive samples never jump more than a sine can."""
    track = ToneTrack(440, amplitude=0.5, realtime=False)
    pcm = np.concatenate([(await track.recv()).to_ndarray().reshape(-1) for _ in range(10)])
    max_step = 0.5 * 32767 * 2 * math.pi * 440 / SAMPLE_RATE
    assert np.max(np.abs(np.diff(pcm.astype(np.int32)))) <= max_step + 2


async def test_stopped_tone_ends_like_any_track() -> None:
    track = ToneTrack(440, realtime=False)
    await track.recv()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_tone_refuses_inaudible_or_aliased_frequencies() -> None:
    with pytest.raises(ValueError, match="frequency"):
        ToneTrack(0)
    with pytest.raises(ValueError, match="frequency"):
        ToneTrack(SAMPLE_RATE)


async def test_colour_bars_move() -> None:
    track = ColourBarsTrack(64, 48)
    first, second = await track.recv(), await track.recv()
    assert (first.width, first.height) == (64, 48)
    assert first.pts is not None
    assert second.pts is not None
    assert second.pts > first.pts
    assert not np.array_equal(first.to_ndarray(format="rgb24"), second.to_ndarray(format="rgb24"))
    track.stop()


@pytest.mark.parametrize("frequency", [100.0, 440.0, 1234.5, 5000.0])
def test_dominant_frequency_of_a_pure_tone(tmp_path: Path, frequency: float) -> None:
    path = tmp_path / "tone.wav"
    write_wav(path, sine(frequency, 1.0))
    assert dominant_frequency(path) == pytest.approx(frequency, abs=0.5)


def test_dominant_frequency_picks_the_loudest_of_two_and_mixes_stereo(tmp_path: Path) -> None:
    loud, quiet = sine(440, 0.5), 0.2 * sine(1500, 0.5)
    stereo = np.stack([loud, quiet], axis=1).reshape(-1)
    path = tmp_path / "stereo.wav"
    write_wav(path, stereo, channels=2)
    assert dominant_frequency(path) == pytest.approx(440, abs=1)


def test_dominant_frequency_of_nothing_is_an_error(tmp_path: Path) -> None:
    empty, silent = tmp_path / "empty.wav", tmp_path / "silent.wav"
    write_wav(empty, np.zeros(0))
    write_wav(silent, np.zeros(4800))
    with pytest.raises(ValueError, match="too few samples"):
        dominant_frequency(empty)
    with pytest.raises(ValueError, match="silent"):
        dominant_frequency(silent)


async def test_recorder_writes_what_a_track_plays(tmp_path: Path) -> None:
    """Tone track -> recorder -> WAV file -> FFT: the same frequency comes out."""
    out = tmp_path / "out.wav"
    recorder = WavRecorder(out)
    source = ToneTrack(660, realtime=False)
    recorder.add_track(_Limited(source, frames=50))
    await recorder.wait_finished()
    await recorder.stop()
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 48000)
        assert wav.getnframes() == 50 * FRAME_SAMPLES
    assert recorder.duration_s == pytest.approx(1.0)
    assert dominant_frequency(out) == pytest.approx(660, abs=1)


async def test_recorder_converts_stereo_opus_like_frames(tmp_path: Path) -> None:
    """aiortc's Opus decoder yields stereo s16 frames; a mono recording averages them."""
    stereo = _StereoTone(880, frames=25)
    out = tmp_path / "mono.wav"
    recorder = WavRecorder(out, channels=1)
    recorder.add_track(stereo)
    await recorder.wait_finished()
    await recorder.stop()
    assert recorder.duration_s == pytest.approx(0.5, abs=0.03)
    assert dominant_frequency(out) == pytest.approx(880, abs=2)


async def test_a_later_audio_track_takes_over_the_recording(tmp_path: Path) -> None:
    """When a call moves to a new connection, its new audio track goes on in the file."""
    out = tmp_path / "moved.wav"
    recorder = WavRecorder(out)
    recorder.add_track(ToneTrack(440))  # paced in real time: it yields to the loop
    while recorder.samples_written < 10 * FRAME_SAMPLES:
        await asyncio.sleep(0)
    recorder.add_track(_Limited(ToneTrack(660, realtime=False), frames=100))
    await recorder.wait_finished()
    await recorder.stop()
    assert recorder.samples_written >= 110 * FRAME_SAMPLES
    assert dominant_frequency(out) == pytest.approx(660, abs=2)


async def test_recorder_without_audio_leaves_a_valid_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "none.wav"
    recorder = WavRecorder(out)
    await recorder.stop()
    with wave.open(str(out), "rb") as wav:
        assert wav.getnframes() == 0


async def test_wav_player_plays_a_file(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    write_wav(path, sine(523.25, 0.3))
    track = wav_player(path)
    try:
        frame = await track.recv()
        assert isinstance(frame, av.AudioFrame)
        assert frame.sample_rate == SAMPLE_RATE
    finally:
        track.stop()


def test_wav_player_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        wav_player(tmp_path / "missing.wav")


class _Limited(MediaStreamTrack):
    """A track that ends after ``frames`` frames of its source."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, frames: int) -> None:
        super().__init__()
        self._source, self._left = source, frames

    async def recv(self) -> av.AudioFrame:
        if self._left == 0:
            self.stop()
            raise MediaStreamError
        self._left -= 1
        frame = await self._source.recv()
        assert isinstance(frame, av.AudioFrame)
        return frame


class _StereoTone(MediaStreamTrack):
    kind = "audio"

    def __init__(self, frequency: float, frames: int) -> None:
        super().__init__()
        self._frequency, self._left, self._pts = frequency, frames, 0

    async def recv(self) -> av.AudioFrame:
        if self._left == 0:
            self.stop()
            raise MediaStreamError
        self._left -= 1
        t = (np.arange(FRAME_SAMPLES) + self._pts) / SAMPLE_RATE
        mono = (8000 * np.sin(2 * math.pi * self._frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = SAMPLE_RATE, self._pts
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self._pts += FRAME_SAMPLES
        return frame
