"""The server inside another program (``flywheel demo``, notebooks): uvicorn on a background thread.

    with EmbeddedServer(Settings(data_dir=out, auth=False)) as server:
        ...  # server.url; robots and clients talk to it over HTTP as to any other server

Production runs ``flywheel serve run`` (its own process); this is for one-machine use.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

from serving.settings import Settings


class EmbeddedServer:
    def __init__(self, settings: Settings | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        from serving.app import create_app

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="flywheel-server", daemon=True)

    def start(self, timeout_s: float = 30.0) -> EmbeddedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
