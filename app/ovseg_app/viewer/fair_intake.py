"""Fair intake: each viser connection is read at a bounded rate and handled at a lower one, with
GUI updates coalesced per widget in between, so a flooding client is held back by TCP instead of
filling the server's one event loop.

viser 1.1.1 reads each connection in ``viser.infra._infra._message_consumer``: it decodes every
message as soon as it arrives and starts two handler tasks for it, with no limit per connection.
Every client shares that event loop (and the interpreter lock with the render threads), so one
client sending tens of thousands of cheap GUI updates a second kept it busy: a bystander tab's
orbit fell from ~45 to ~5 frames/s. Decoding a message costs ~6 us, handling it ~45 us (viser's
handlers, the tab's ``ClientInbox``). ``install`` replaces that one function (process-wide: every
viser server here gets it) with ``fair_consumer``, which per connection:

- reads at most ``READ_RATE`` messages/s (``READ_BURST`` at once): past that the connection is not
  read, its socket's receive buffer (kept at ``RECEIVE_BUFFER_BYTES``) fills and the sender's writes
  block, so a flood waits in the flooder; what it already sent drains at ``READ_RATE``;
- hands at most ``RATE`` messages/s (``BURST`` at once) to viser's handlers, one at a time (it
  yields to the loop after each, so their tasks run before the next); a message read while over
  that budget waits, and a newer one for the same widget (same properties) or a newer camera
  replaces it in place (last value wins). Anything else (a press, a click, an upload part) is a
  barrier: nothing after it is merged into what came before, so order is kept. At most
  ``MAX_WAITING`` wait; then reading stops until one is handled.

A browser sends a camera and a dragged slider at most once per animation frame, far below both
rates, so only a flood is ever delayed, and nothing is dropped but superseded values.

viser's internals are private, so ``install`` checks their shape first (the consumer's signature,
and that the connection handler calls it by its module-global name) and the version it was written
for; anything else logs one warning and keeps viser's own consumer (the viewer works, unthrottled).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ovseg.viewer")

VISER_VERSIONS = ("1.1.1",)
"""viser versions whose ``_message_consumer`` this replaces (checked by ``problem``)."""
RATE, BURST = 300.0, 300
"""Messages per second one connection's messages are handled at, and at once after a quiet spell."""
READ_RATE, READ_BURST = 20_000.0, 2000
"""Messages per second one connection is read at (decoding one costs ~6 us: ~12% of a core at this
rate), and at once. A flooder's socket buffers hold ~50,000 small messages: about 2.5 s of reading."""
MAX_WAITING, MAX_WAITING_BYTES = 64, 16 * 1024 * 1024
"""Messages (and their bytes) read but not handled yet, per connection; widgets and the camera
coalesce into one each. Past either, reading stops (one message is always let in)."""
MIN_SLEEP = 0.01
"""Shortest wait for tokens: the tokens saved meanwhile are used without a wake-up each."""
RECEIVE_BUFFER_BYTES = 256 * 1024
"""Kernel receive buffer of a connection: what a throttled flooder can have waiting here (Linux's
autotuning would let it grow to tens of megabytes)."""

_original: Callable[..., Any] | None = None


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; ``take`` says how long to wait for one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.t = float(burst), now

    def take(self, now: float) -> float:
        """Take a token; returns the seconds until it is there (0 when it already was)."""
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def coalesce_key(message: Any) -> tuple | None:
    """What a newer message replaces an older waiting one by: a widget's uuid and the properties
    it sets, or the camera; None for anything that must not be merged (presses, clicks, uploads).
    viser sends a button press as the update ``{"value": True}``: never merged (nor is a checkbox
    ticked, which is harmless)."""
    kind = type(message).__name__
    if kind == "GuiUpdateMessage" and message.updates != {"value": True}:
        return (kind, message.uuid, tuple(sorted(message.updates)))
    if kind == "ViewerCameraMessage":
        return (kind,)
    return None


class Waiting:
    """Messages read but not handled yet, oldest first; a coalescable one replaces the waiting one
    with its key unless a barrier (a message with no key) came in between."""

    def __init__(self) -> None:
        self.queue: collections.deque[list] = collections.deque()  # [key, message, size]
        self._since_barrier: dict[tuple, list] = {}
        self.bytes = 0
        self.merged = 0
        """Messages replaced by a newer one before they were handled."""

    def __len__(self) -> int:
        return len(self.queue)

    def full(self) -> bool:
        return len(self.queue) >= MAX_WAITING or self.bytes >= MAX_WAITING_BYTES

    def put(self, message: Any, size: int) -> None:
        key = coalesce_key(message)
        if key is None:
            self._since_barrier.clear()
        elif (entry := self._since_barrier.get(key)) is not None:
            self.bytes += size - entry[2]
            entry[1:] = [message, size]
            self.merged += 1
            return
        entry = [key, message, size]
        self.queue.append(entry)
        self.bytes += size
        if key is not None:
            self._since_barrier[key] = entry

    def take(self) -> Any:
        entry = self.queue.popleft()
        self.bytes -= entry[2]
        if self._since_barrier.get(entry[0]) is entry:
            del self._since_barrier[entry[0]]
        return entry[1]


async def fair_consumer(websocket: Any, handle_message: Callable[[Any], None], message_class: type) -> None:
    """viser's ``_message_consumer`` (same signature: ``handle_message`` starts viser's handler
    tasks for one decoded message), throttled per connection as the module says."""
    _shrink_receive_buffer(websocket)
    now = time.monotonic()
    reads, handles = TokenBucket(READ_RATE, READ_BURST, now), TokenBucket(RATE, BURST, now)
    waiting = Waiting()
    arrived, room = asyncio.Event(), asyncio.Event()

    async def handle() -> None:
        while True:
            while not waiting:
                arrived.clear()
                await arrived.wait()
            wait = handles.take(time.monotonic())
            if wait > 0:
                await asyncio.sleep(max(wait, MIN_SLEEP))
            handle_message(waiting.take())
            room.set()
            await asyncio.sleep(0)  # the handler tasks just started run before the next one

    handler = asyncio.create_task(handle())
    try:
        while True:
            wait = reads.take(time.monotonic())
            if wait > 0:
                await asyncio.sleep(max(wait, MIN_SLEEP))
            while waiting.full():
                room.clear()
                await room.wait()
            raw = await websocket.recv()
            assert isinstance(raw, bytes)
            waiting.put(message_class.deserialize(raw), len(raw))
            arrived.set()
            if handler.done():  # a handler raised (viser's own would have ended the connection too)
                handler.result()
    finally:
        handler.cancel()


def _shrink_receive_buffer(websocket: Any) -> None:
    sock = websocket.transport.get_extra_info("socket") if websocket.transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # a smaller buffer only shortens a flood's backlog
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)


def problem() -> str | None:
    """Why ``fair_consumer`` cannot replace this viser's consumer, or None when it can."""
    import viser
    from viser.infra import _infra

    if viser.__version__ not in VISER_VERSIONS:
        return f"viser {viser.__version__} is not one of {', '.join(VISER_VERSIONS)}"
    consumer = _original or getattr(_infra, "_message_consumer", None)
    if consumer is None or not inspect.iscoroutinefunction(consumer):
        return "viser.infra._infra has no coroutine _message_consumer"
    if list(inspect.signature(consumer).parameters) != ["websocket", "handle_message", "message_class"]:
        return f"viser's _message_consumer takes {list(inspect.signature(consumer).parameters)}"
    worker = getattr(getattr(_infra, "WebsockServer", None), "_background_worker", None)
    handler = next(
        (
            c
            for c in getattr(getattr(worker, "__code__", None), "co_consts", ())
            if getattr(c, "co_name", "") == "ws_handler"
        ),
        None,
    )
    if handler is None or "_message_consumer" not in handler.co_names:
        return "viser's connection handler no longer calls _message_consumer by its module-global name"
    return None


def install() -> bool:
    """Make every viser server in this process read its connections through ``fair_consumer``
    (idempotent). False, with one warning, when this viser is not the shape it was written for."""
    global _original
    from viser.infra import _infra

    if _original is not None:
        return True
    why = problem()
    if why is not None:
        log.warning("fair intake not installed (%s): a client flooding the viewer can slow the other tabs", why)
        return False
    _original = _infra._message_consumer
    _infra._message_consumer = fair_consumer
    return True


def uninstall() -> None:
    """Give connections made from now on viser's own consumer again (the benchmark's baseline)."""
    global _original
    from viser.infra import _infra

    if _original is not None:
        _infra._message_consumer, _original = _original, None


def installed() -> bool:
    from viser.infra import _infra

    return _infra._message_consumer is fair_consumer
