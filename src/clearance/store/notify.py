"""Cross-replica notifications: "this shared state changed, re-read it", within milliseconds.

::

    from clearance.store.notify import Notice, notifier_for

    notifier = notifier_for(store)          # LISTEN/NOTIFY on PostgreSQL, in-process on SQLite

    def on_halt(notice: Notice) -> None:    # runs on the listener thread: keep it short
        killswitch.reload()                 # re-read the store; never trust the payload alone

    notifier.subscribe("clearance.killswitch", on_halt)
    killswitch.reload()                     # subscribe first, then read: no change can slip between
    ...
    with store.transaction():               # on PostgreSQL the NOTIFY is sent on commit only
        store.kv_put("control", "halt", {...}, now)
        notifier.notify("clearance.killswitch", "halt")

What is guaranteed, and what is not:

* A notification is a hint that shared state changed; the state itself is in the store. Payloads
  are short strings (PostgreSQL limits them to 8000 bytes) and carry no authority.
* Delivery is at most once per connection. When the listener (re)connects, every subscriber
  receives a ``Notice`` with ``resync=True``: notifications may have been missed while it was
  disconnected, so the state must be re-read. A subscriber that re-reads on every notice is
  therefore never stale for longer than the outage plus one reconnect delay (at most
  ``max_reconnect_delay``, 1 s by default). Callers that must never act on stale state (the kill
  switch) also check the store on every decision; notifications only make the common case fast.
* Callbacks run on the listener thread, one at a time, in arrival order. An exception in a
  callback is logged and does not stop the listener.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from clearance.errors import StoreError

_log = logging.getLogger(__name__)

CHANNEL = re.compile(r"^[a-z_][a-z0-9_.]{0,62}$")
"""Channel names: lowercase identifiers (PostgreSQL allows 63 bytes), dots allowed."""

MAX_PAYLOAD_BYTES = 7999


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification, or (``resync=True``, empty payload) a reminder to re-read everything."""

    channel: str
    payload: str
    resync: bool = False


Callback = Callable[[Notice], None]


def check_channel(channel: str, payload: str = "") -> None:
    """Raise ``StoreError`` unless ``channel`` and ``payload`` can be sent by every backend."""
    if not CHANNEL.match(channel):
        raise StoreError(
            f"invalid notification channel `{channel}`",
            hint="use lowercase letters, digits, `_` and `.`, at most 63 characters",
        )
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise StoreError(f"a notification payload must be at most {MAX_PAYLOAD_BYTES} bytes")


class Listener(Protocol):
    """One connection that receives notifications (``PostgresStore.open_listener``)."""

    def listen(self, channel: str) -> None:
        """Start receiving ``channel``."""
        ...

    def poll(self, timeout: float) -> list[tuple[str, str]]:
        """Notifications received within ``timeout`` seconds, as ``(channel, payload)``."""
        ...

    def heartbeat(self) -> None:
        """A round trip; raises ``StoreError`` when the connection is dead."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@runtime_checkable
class ListenSource(Protocol):
    """A store that can send notifications and open listener connections (PostgreSQL)."""

    def open_listener(self) -> Listener:
        """A new listening connection."""
        ...

    def notify(self, channel: str, payload: str) -> None:
        """Send a notification (on commit, when inside a transaction)."""
        ...


class Notifier(Protocol):
    """Publish/subscribe across every replica sharing a store."""

    def subscribe(self, channel: str, callback: Callback) -> None:
        """Call ``callback`` for every notice on ``channel`` from now on."""
        ...

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        ...

    def notify(self, channel: str, payload: str = "") -> None:
        """Tell every subscriber on every replica (including this one)."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


class _Subscribers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_channel: dict[str, list[Callback]] = {}

    def add(self, channel: str, callback: Callback) -> bool:
        """Register; True when the channel is new."""
        with self._lock:
            callbacks = self._by_channel.setdefault(channel, [])
            callbacks.append(callback)
            return len(callbacks) == 1

    def remove(self, channel: str, callback: Callback) -> None:
        with self._lock:
            callbacks = self._by_channel.get(channel, [])
            if callback in callbacks:
                callbacks.remove(callback)

    def channels(self) -> list[str]:
        with self._lock:
            return sorted(self._by_channel)

    def dispatch(self, notice: Notice) -> None:
        with self._lock:
            callbacks = list(self._by_channel.get(notice.channel, ()))
        for callback in callbacks:
            try:
                callback(notice)
            except Exception:  # noqa: BLE001 - subscriber code must not stop delivery to others
                _log.exception("notification callback failed on channel %s", notice.channel)


class LocalNotifier:
    """Notifications within one process: the embedded (SQLite, single node) deployment.

    ``notify`` calls the subscribers synchronously on the caller's thread.
    """

    def __init__(self) -> None:
        self._subscribers = _Subscribers()

    def subscribe(self, channel: str, callback: Callback) -> None:
        """Call ``callback`` for every notice on ``channel`` from now on."""
        check_channel(channel)
        self._subscribers.add(channel, callback)

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        """Stop calling ``callback``."""
        self._subscribers.remove(channel, callback)

    def notify(self, channel: str, payload: str = "") -> None:
        """Deliver to this process's subscribers."""
        check_channel(channel, payload)
        self._subscribers.dispatch(Notice(channel, payload))

    def close(self) -> None:
        """Nothing to release."""


class PostgresNotifier:
    """LISTEN/NOTIFY on a dedicated connection, with a background thread that reconnects.

    The thread starts with the first subscription. It polls every ``poll_interval`` seconds so that
    new subscriptions and ``close`` take effect promptly, sends a heartbeat after
    ``heartbeat_interval`` idle seconds so that a silently dropped connection is noticed, and
    reconnects with a delay doubling from 0.05 s up to ``max_reconnect_delay``.
    """

    def __init__(
        self,
        source: ListenSource,
        *,
        poll_interval: float = 0.1,
        heartbeat_interval: float = 5.0,
        max_reconnect_delay: float = 1.0,
        subscribe_timeout: float = 2.0,
    ) -> None:
        self._source = source
        self._poll = poll_interval
        self._idle_polls_per_heartbeat = max(1, round(heartbeat_interval / poll_interval))
        self._max_delay = max_reconnect_delay
        self._subscribe_timeout = subscribe_timeout
        self._subscribers = _Subscribers()
        self._stop = threading.Event()
        self._state = threading.Condition()
        self._listening: set[str] = set()
        self._connected = False
        self._thread: threading.Thread | None = None
        self.reconnects = 0
        """How many times the listener connection was re-established (for tests and metrics)."""

    @property
    def connected(self) -> bool:
        """Whether the listener connection is up right now."""
        with self._state:
            return self._connected

    def subscribe(self, channel: str, callback: Callback) -> None:
        """Call ``callback`` for every notice on ``channel`` from now on.

        Returns once the listener is receiving ``channel`` (or, if the database is unreachable,
        after ``subscribe_timeout``: the callback then gets a ``resync`` notice on connection).
        """
        check_channel(channel)
        self._subscribers.add(channel, callback)
        self._ensure_thread()
        with self._state:
            self._state.wait_for(
                lambda: channel in self._listening or self._stop.is_set(),
                timeout=self._subscribe_timeout,
            )

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        """Stop calling ``callback`` (the connection keeps listening; that is harmless)."""
        self._subscribers.remove(channel, callback)

    def notify(self, channel: str, payload: str = "") -> None:
        """NOTIFY every replica; ``StoreUnavailableError`` when the database is unreachable."""
        check_channel(channel, payload)
        self._source.notify(channel, payload)

    def close(self) -> None:
        """Stop the listener thread and close its connection."""
        self._stop.set()
        with self._state:
            self._state.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # the listener thread --------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._state:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="clearance-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        delay = 0.05
        first = True
        while not self._stop.is_set():
            try:
                listener = self._source.open_listener()
            except StoreError as exc:
                _log.warning("notification listener cannot connect: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            delay = 0.05
            if not first:
                self.reconnects += 1
            first = False
            try:
                self._serve(listener)
            except StoreError as exc:
                _log.warning("notification listener lost its connection: %s", exc)
            finally:
                with self._state:
                    self._connected = False
                    self._listening.clear()
                listener.close()

    def _serve(self, listener: Listener) -> None:
        self._listen_new(listener)
        with self._state:
            self._connected = True
        # Anything may have changed while no connection was listening.
        for channel in self._subscribers.channels():
            self._subscribers.dispatch(Notice(channel, "", resync=True))
        idle = 0
        while not self._stop.is_set():
            for channel in self._listen_new(listener):
                # subscribed while connected: nothing was missed since the subscriber's own read
                _log.debug("listening on %s", channel)
            received = listener.poll(self._poll)
            for channel, payload in received:
                self._subscribers.dispatch(Notice(channel, payload))
            idle = 0 if received else idle + 1
            if idle >= self._idle_polls_per_heartbeat:
                listener.heartbeat()
                idle = 0

    def _listen_new(self, listener: Listener) -> list[str]:
        added: list[str] = []
        for channel in self._subscribers.channels():
            with self._state:
                if channel in self._listening:
                    continue
            listener.listen(channel)
            with self._state:
                self._listening.add(channel)
                self._state.notify_all()
            added.append(channel)
        return added


def notifier_for(store: object) -> Notifier:
    """A PostgreSQL notifier for a store that can listen, an in-process one otherwise."""
    if isinstance(store, ListenSource):
        return PostgresNotifier(store)
    return LocalNotifier()
