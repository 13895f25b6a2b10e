"""How big a tab's frames are while its camera moves, and where a frame's time goes.

A moving frame is worth more soon than sharp: its size follows the measured cost of the last
moving frames so that they keep up with a dragged camera (a frame rate target) on whatever
scene and machine, between a quarter and half of the still frame's height. Still frames are
always full size.
"""

from __future__ import annotations

import collections
import math

import numpy as np

MOVING_FRAME_S = 0.026
"""Target time of one moving frame (render + encode + queue): ~30 frames/s with the loop's overhead."""
MIN_MOVING_SCALE, MAX_MOVING_SCALE = 0.25, 0.5
"""Moving frames' height as a share of the still frame's height."""
MOVING_JPEG_QUALITY = 75
"""Moving frames are encoded at most at this quality: smaller messages, quicker to decode."""
STAGES = ("wait", "render", "encode_send", "total")
"""Stages of a frame: camera change -> render start, render, JPEG encode + queue for the socket, all."""


class MovingScale:
    """The moving frames' height scale, steered by the time the last moving frames took."""

    def __init__(self, target_s: float = MOVING_FRAME_S) -> None:
        self.target_s = target_s
        self.scale = MAX_MOVING_SCALE

    def update(self, seconds: float) -> None:
        """One moving frame took ``seconds``: the next is smaller when it was slow, larger when
        it had time to spare (time ~ pixels ~ scale squared; steps bounded to avoid see-sawing)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        step = min(max(math.sqrt(self.target_s / seconds), 0.85), 1.08)
        self.scale = min(max(self.scale * step, MIN_MOVING_SCALE), MAX_MOVING_SCALE)

    def height(self, still_height: int, minimum: int) -> int:
        return max(minimum, int(still_height * self.scale))


class FrameProfile:
    """Seconds per stage of a tab's recent frames, moving and still apart."""

    def __init__(self, keep: int = 240) -> None:
        self.frames: dict[bool, collections.deque] = {
            True: collections.deque(maxlen=keep),
            False: collections.deque(maxlen=keep),
        }

    def add(self, moving: bool, **stages: float) -> None:
        self.frames[moving].append(stages)

    def clear(self) -> None:
        for d in self.frames.values():
            d.clear()

    def summary(self, moving: bool = True) -> dict[str, float]:
        """Median milliseconds per stage (and the frames counted) of the kept frames."""
        rows = list(self.frames[moving])
        out = {f"{k}_ms": round(1000 * float(np.median([r[k] for r in rows])), 2) for k in STAGES if rows}
        out["frames"] = len(rows)
        if rows and "pixels" in rows[-1]:
            out["pixels_median"] = float(np.median([r["pixels"] for r in rows]))
        return out


def frame_unsent(client: object) -> bool:
    """True while a background image queued for ``client`` has not yet been taken for sending:
    the client (or the socket to it) is behind, and a newer frame would only replace that one in
    viser's queue, so rendering it now is wasted work. Reads viser's per-client buffer (not a public
    API: any other viser answers False, i.e. frames are rendered as before)."""
    try:
        buffer = client._websock_connection.get_message_buffer()  # type: ignore[attr-defined]
        with buffer.buffer_lock:
            return any(type(m).__name__ == "BackgroundImageMessage" for m in buffer.message_from_id.values())
    except AttributeError:
        return False
