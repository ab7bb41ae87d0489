"""Cross-replica notifications: in-process for SQLite, LISTEN/NOTIFY between stores on PostgreSQL."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clearance.errors import StoreError, StoreUnavailableError
from clearance.store.notify import LocalNotifier, Notice, PostgresNotifier, notifier_for
from clearance.store.sqlite import SQLiteStore


class Inbox:
    """A callback that queues what it receives."""

    def __init__(self) -> None:
        self.q: queue.Queue[Notice] = queue.Queue()

    def __call__(self, notice: Notice) -> None:
        self.q.put(notice)

    def next(self, timeout: float = 1.0, *, skip_resync: bool = True) -> Notice:
        deadline = time.monotonic() + timeout
        while True:
            notice = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            if not (skip_resync and notice.resync):
                return notice

    def empty_for(self, seconds: float) -> bool:
        try:
            notice = self.q.get(timeout=seconds)
        except queue.Empty:
            return True
        return bool(notice.resync) and self.empty_for(seconds)


# in-process -------------------------------------------------------------------------------------
def test_local_notifier_delivers_to_subscribers_of_the_channel() -> None:
    notifier = LocalNotifier()
    halt, policy = Inbox(), Inbox()
    notifier.subscribe("clearance.killswitch", halt)
    notifier.subscribe("clearance.policy", policy)
    notifier.notify("clearance.killswitch", "halt")
    assert halt.next() == Notice("clearance.killswitch", "halt")
    assert policy.q.empty()
    notifier.unsubscribe("clearance.killswitch", halt)
    notifier.notify("clearance.killswitch", "resume")
    assert halt.q.empty()


def test_a_failing_callback_does_not_stop_the_others() -> None:
    notifier = LocalNotifier()
    inbox = Inbox()

    def broken(notice: Notice) -> None:
        raise RuntimeError("subscriber bug")

    notifier.subscribe("c", broken)
    notifier.subscribe("c", inbox)
    notifier.notify("c", "x")
    assert inbox.next().payload == "x"


@pytest.mark.parametrize("channel", ["", "Upper", "has space", "x" * 64, "semi;colon"])
def test_bad_channels_are_refused(channel: str) -> None:
    with pytest.raises(StoreError):
        LocalNotifier().subscribe(channel, Inbox())


def test_oversized_payloads_are_refused() -> None:
    with pytest.raises(StoreError):
        LocalNotifier().notify("c", "x" * 8000)


def test_sqlite_store_gets_the_local_notifier(tmp_path: Any) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    assert isinstance(notifier_for(store), LocalNotifier)
    store.close()


# PostgreSQL -------------------------------------------------------------------------------------
@pytest.fixture
def replicas(pg_schema_url: str) -> Iterator[Callable[[], tuple[Any, PostgresNotifier]]]:
    """Make (store, notifier) pairs on one database, as separate replicas would have."""
    from clearance.store.postgres import PostgresStore

    made: list[tuple[Any, PostgresNotifier]] = []

    def make() -> tuple[Any, PostgresNotifier]:
        app = f"clearance-test-{uuid.uuid4().hex[:8]}"
        store = PostgresStore(pg_schema_url, application_name=app)
        store.migrate()
        notifier = notifier_for(store)
        assert isinstance(notifier, PostgresNotifier)
        made.append((store, notifier))
        return store, notifier

    yield make
    for store, notifier in made:
        notifier.close()
        store.close()


@pytest.mark.postgres
def test_a_notification_reaches_every_replica_within_a_second(replicas: Any) -> None:
    stores = [replicas() for _ in range(3)]
    inboxes = [Inbox() for _ in stores]
    for (_, notifier), inbox in zip(stores, inboxes, strict=True):
        notifier.subscribe("clearance.killswitch", inbox)
    started = time.monotonic()
    stores[0][1].notify("clearance.killswitch", "halt agent-7")
    for inbox in inboxes:  # the sender's own replica hears it too
        assert inbox.next(timeout=1.0) == Notice("clearance.killswitch", "halt agent-7")
    assert time.monotonic() - started < 1.0


@pytest.mark.postgres
def test_first_connection_sends_a_resync_notice(replicas: Any) -> None:
    _, notifier = replicas()
    inbox = Inbox()
    notifier.subscribe("c", inbox)
    assert inbox.next(skip_resync=False) == Notice("c", "", resync=True)


@pytest.mark.postgres
def test_notify_inside_a_transaction_is_sent_on_commit_only(replicas: Any) -> None:
    store_a, notifier_a = replicas()
    _, notifier_b = replicas()
    inbox = Inbox()
    notifier_b.subscribe("clearance.policy", inbox)

    class Abort(Exception):
        pass

    def rolled_back() -> None:
        with store_a.transaction():
            store_a.kv_put("control", "policy", {"digest": "sha256:1"}, "t")
            notifier_a.notify("clearance.policy", "rolled back")
            raise Abort

    with pytest.raises(Abort):
        rolled_back()
    with store_a.transaction():
        store_a.kv_put("control", "policy", {"digest": "sha256:2"}, "t")
        notifier_a.notify("clearance.policy", "committed")
        assert inbox.empty_for(0.3)  # not before the commit
    assert inbox.next().payload == "committed"
    assert inbox.empty_for(0.3)


@pytest.mark.postgres
def test_the_listener_reconnects_and_asks_for_a_resync(replicas: Any, pg_admin: Any) -> None:
    _, notifier_a = replicas()
    store_b, notifier_b = replicas()
    inbox = Inbox()
    notifier_b.subscribe("clearance.killswitch", inbox)
    inbox.next(skip_resync=False)  # the first resync
    app_b = store_b._connect_kwargs["application_name"]
    killed = pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (app_b,),
    )
    assert killed
    # a change made while B was disconnected is covered by the resync notice
    assert inbox.next(timeout=2.0, skip_resync=False) == Notice(
        "clearance.killswitch", "", resync=True
    )
    assert notifier_b.reconnects == 1
    notifier_a.notify("clearance.killswitch", "after reconnect")
    assert inbox.next(timeout=1.0).payload == "after reconnect"


@pytest.mark.postgres
def test_notify_with_the_database_down_is_store_unavailable(pg_admin: Any) -> None:
    import socket

    from clearance.store.postgres import PostgresStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test")
    notifier = PostgresNotifier(store, subscribe_timeout=0.3)
    try:
        inbox = Inbox()
        notifier.subscribe("c", inbox)  # returns after the timeout; resync comes on connection
        assert not notifier.connected
        with pytest.raises(StoreUnavailableError):
            notifier.notify("c", "x")
    finally:
        notifier.close()
        store.close()
