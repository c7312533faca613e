"""What a terminal call sends and keeps: a WAV file, a tone or silence (plus colour
bars with ``--video``), and the other side's audio recorded to a WAV file. The options
are checked before anything touches the network."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ringfence.client.runner import EXIT_USAGE, CliError

if TYPE_CHECKING:  # media means aiortc, PyAV and numpy: loaded when a call needs them
    from aiortc.mediastreams import MediaStreamTrack

    from ringfence.client.media import MediaSink

__all__ = [
    "MediaOptions",
    "PlayOpt",
    "RecordOpt",
    "ToneOpt",
    "VideoOpt",
    "audio_tracks",
    "make_sink",
    "opened_media",
]

PlayOpt = Annotated[
    Path | None,
    typer.Option("--play", help="Send this WAV file as your audio.", dir_okay=False),
]
ToneOpt = Annotated[
    float | None,
    typer.Option("--tone", help="Send a sine tone of this frequency (Hz) as your audio."),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option(
        "--record", help="Record the other side's audio to this WAV file.", dir_okay=False
    ),
]
VideoOpt = Annotated[bool, typer.Option("--video", help="Send synthetic colour-bar video.")]


def audio_tracks(play: Path | None, tone: float | None, video: bool) -> list[MediaStreamTrack]:
    """What to send: a WAV file, a tone, or silence; plus colour bars with --video."""
    from aiortc.mediastreams import AudioStreamTrack

    from ringfence.client.media import ColourBarsTrack, ToneTrack, wav_player

    tracks: list[MediaStreamTrack] = []
    try:
        if play is not None:
            tracks.append(wav_player(play))
        elif tone is not None:
            tracks.append(ToneTrack(tone))
        else:
            tracks.append(AudioStreamTrack())  # silence, so the other side gets a stream
    except (OSError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if video:
        tracks.append(ColourBarsTrack())
    return tracks


def make_sink(record: Path | None) -> MediaSink:
    from ringfence.client.media import DiscardSink, WavRecorder

    return DiscardSink() if record is None else WavRecorder(record)


@dataclass(frozen=True, slots=True)
class MediaOptions:
    play: Path | None
    tone: float | None
    video: bool
    record: Path | None

    def check(self) -> None:
        """Refuse bad combinations before anything touches the network."""
        if self.play is not None and self.tone is not None:
            raise CliError("use either --play or --tone, not both", EXIT_USAGE)
        if self.play is not None and not self.play.is_file():
            raise CliError(f"{self.play} does not exist", EXIT_USAGE)
        if self.tone is not None and not 20 <= self.tone <= 20_000:
            raise CliError("--tone must be between 20 and 20000 Hz", EXIT_USAGE)
        if self.record is not None and not self.record.parent.is_dir():
            raise CliError(f"cannot record to {self.record}: no such directory", EXIT_USAGE)

    def open(self) -> tuple[list[MediaStreamTrack], MediaSink]:
        """Create the tracks and the sink (inside the event loop that will use them)."""
        return audio_tracks(self.play, self.tone, self.video), make_sink(self.record)


@contextlib.asynccontextmanager
async def opened_media(
    options: MediaOptions,
) -> AsyncIterator[tuple[list[MediaStreamTrack], MediaSink]]:
    """The tracks to send and the sink for what arrives, released on the way out
    (a call releases them when it ends; this covers the paths where none started)."""
    tracks, sink = options.open()
    try:
        yield tracks, sink
    finally:
        for track in tracks:
            track.stop()
        await sink.stop()
