"""One Store per worker thread: the service's connection handling.

A :class:`~fleet.store.Store` is not thread-safe (and an SQLite connection may only be used
by the thread that opened it), while FastAPI runs every synchronous endpoint in a thread
pool. :class:`ThreadStores` opens a Store lazily for each pool thread and keeps it; the
pool's size bounds the connections of one worker process. A Store is only ever used inside
one synchronous call on its own thread. A store whose connection broke is dropped and the
next call opens a new one.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import IntegrityViolation, StoreBusy, StoreError
from ..store import Store

StoreOpener = Callable[[], Store]


class ThreadStores:
    def __init__(self, opener: StoreOpener) -> None:
        self._opener = opener
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Store] = []

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._opener()
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def discard(self) -> None:
        store = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None:
            with self._lock:
                if store in self._all:
                    self._all.remove(store)
            try:
                store.close()
            except Exception:   # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                pass

    @contextmanager
    def using(self) -> Iterator[Store]:
        """This thread's store; dropped if a storage error other than a refused write or a busy retry occurs."""
        store = self.get()
        try:
            yield store
        except (IntegrityViolation, StoreBusy):
            raise
        except StoreError:
            self.discard()
            raise

    def close(self) -> None:
        with self._lock:
            stores, self._all = self._all, []
        for s in stores:
            try:
                s.close()
            except Exception:   # noqa: BLE001 - closing at shutdown; nothing to do about a failure
                pass
