"""What one client asked for, kept until its tab's render loop gets to it: the fairness seam
between tabs.

viser stores a GUI value as soon as its message arrives, then hands each callback to one thread
pool that every client shares, with an unbounded queue: a client sending thousands of updates a
second fills it, and every other tab's callbacks (its camera too) wait behind that backlog.
So a tab registers its callbacks as coroutines that only *record* here (they run on viser's event
loop in microseconds, never in the pool):

- a widget's update replaces that widget's pending one (last value wins: the callback reads the
  widget's newest value when it runs); the tab's render loop runs them once per frame, so a flood
  of slider or prompt updates costs one callback per frame however fast it comes;
- events that are not a value (button presses, scene clicks) wait in a bounded queue that the
  tab's own event thread works through (a video or an export does not stop the tab's frames);
  past ``MAX_PENDING_EVENTS`` the newest are dropped (said once per burst), never queued without end.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ovseg.viewer")

MAX_PENDING_EVENTS = 16
"""Button presses and clicks one client may have waiting; more are dropped until its tab catches up."""


class ClientInbox:
    """One tab's pending callbacks: coalesced widget updates and a bounded queue of events."""

    def __init__(self, name: str, wake: Callable[[], Any], max_events: int = MAX_PENDING_EVENTS) -> None:
        self.name = name
        self._wake = wake
        self._lock = threading.Lock()
        self._latest: dict[Any, tuple[Callable[[Any], Any], Any]] = {}
        self._events: queue.Queue[tuple[Callable[[Any], Any], Any]] = queue.Queue(max_events)
        self.received = 0
        """Updates and events recorded (the flood a client sent, coalesced or not)."""
        self.dropped = 0
        """Events refused because the queue was full."""
        self._dropping = False

    def latest(self, key: Any, fn: Callable[[Any], Any], event: Any) -> None:
        """Run ``fn(event)`` once at the next ``drain``, replacing what ``key`` had pending."""
        with self._lock:
            self.received += 1
            first = not self._latest
            self._latest[key] = (fn, event)
        if first:  # the loop drains all that is pending: waking it once per batch spares a flood's thread switches
            self._wake()

    def event(self, fn: Callable[[Any], Any], event: Any) -> bool:
        """Queue ``fn(event)`` for ``run_events``; False (dropped) when the queue is full."""
        with self._lock:
            self.received += 1
            try:
                self._events.put_nowait((fn, event))
            except queue.Full:
                self.dropped += 1
                first, self._dropping = not self._dropping, True
                if first:
                    log.warning("%s sends events faster than its tab handles them; dropping the excess", self.name)
                return False
            self._dropping = False
            return True

    def pending(self) -> int:
        with self._lock:
            return len(self._latest) + self._events.qsize()

    def drain(self) -> int:
        """Run every pending widget update (the newest per widget); returns how many ran."""
        with self._lock:
            latest, self._latest = list(self._latest.values()), {}
        for fn, event in latest:
            fn(event)
        return len(latest)

    def run_events(self, alive: Callable[[], bool]) -> None:
        """Run queued events in arrival order while ``alive()`` (the tab's event thread)."""
        while alive():
            try:
                fn, event = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            if alive():
                fn(event)
