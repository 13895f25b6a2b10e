"""What one client asked for, kept until its tab's render loop gets to it: the fairness seam
between tabs.

viser stores a GUI value as soon as its message arrives, then hands each callback to one thread
pool that every client shares, with an unbounded queue: a client sending thousands of updates a
second fills it, and every other tab's callbacks (its camera too) wait behind that backlog.
So a tab registers its callbacks as coroutines that only *record* here (they run on viser's event
loop in microseconds, never in the pool) and its render loop runs what was recorded once per
frame:

- a widget's update replaces that widget's pending one (last value wins: the callback reads the
  widget's newest value when it runs), so a flood of slider or prompt updates costs one
  callback per frame however fast it comes;
- events that are not a value (button presses, scene clicks) wait in a bounded queue; past
  ``MAX_PENDING_EVENTS`` the newest are dropped (said once per burst), never queued without end.
"""

from __future__ import annotations

import collections
import logging
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
        self._events: collections.deque[tuple[Callable[[Any], Any], Any]] = collections.deque()
        self.max_events = max_events
        self.received = 0
        """Updates and events recorded (the flood a client sent, coalesced or not)."""
        self.dropped = 0
        """Events refused because the queue was full."""
        self._dropping = False

    def latest(self, key: Any, fn: Callable[[Any], Any], event: Any) -> None:
        """Run ``fn(event)`` once at the next drain, replacing what ``key`` had pending."""
        with self._lock:
            self.received += 1
            self._latest[key] = (fn, event)
        self._wake()

    def event(self, fn: Callable[[Any], Any], event: Any) -> bool:
        """Queue ``fn(event)`` for the next drain; False (dropped) when the queue is full."""
        with self._lock:
            self.received += 1
            if len(self._events) >= self.max_events:
                self.dropped += 1
                first = not self._dropping
                self._dropping = True
            else:
                self._events.append((fn, event))
                self._dropping = False
                first = None
        if first:
            log.warning("%s sends events faster than its tab handles them; dropping the excess", self.name)
        self._wake()
        return first is None

    def pending(self) -> int:
        with self._lock:
            return len(self._latest) + len(self._events)

    def drain(self, run: Callable[[Callable[[Any], Any], Any], Any]) -> int:
        """Take everything pending and ``run(fn, event)`` each, in arrival order of kind (events
        first: a click sees the state it was made in as far as possible); returns how many ran."""
        with self._lock:
            events, self._events = list(self._events), collections.deque()
            latest, self._latest = list(self._latest.values()), {}
        for fn, event in (*events, *latest):
            run(fn, event)
        return len(events) + len(latest)
