"""asyncio servers on one background thread, for the scripted SMTP labs (start, stop, `with`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

READY_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


class LoopServers:
    """Runs the servers a subclass starts in `_start_all` until stopped; every wait bounded."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _start_all(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        """Start every server; return once all listen (bounded by READY_TIMEOUT)."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start_all(), self._loop)
        try:
            future.result(timeout=READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server and session (bounded)."""
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._stop_all(), self._loop)
            with contextlib.suppress(Exception):
                future.result(timeout=STOP_TIMEOUT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=STOP_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    async def _stop_all(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_TIMEOUT)
        for server in self._servers:
            await server.wait_closed()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
