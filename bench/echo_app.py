"""A bare websocket echo on TechAssist's stack: the baseline of ``bench.ws``.

``python -m bench.echo_app [--host H] [--port P]`` serves one FastAPI websocket
route that sends back every text frame it receives, under uvicorn with exactly
TechAssist's settings (``bot.app.uvicorn_config``), and prints
``echo listening on ws://HOST:PORT/echo`` once it listens (port 0, the
default, picks a free one).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bot.app import run_announced, uvicorn_config

PATH = "/echo"

app = FastAPI(title="echo", docs_url=None, redoc_url=None)


@app.websocket(PATH)
async def echo(websocket: WebSocket) -> None:
    """Send every text frame back until the client leaves."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = uvicorn.Server(uvicorn_config(app, args.host, args.port))
    try:
        return asyncio.run(run_announced(server, "echo", PATH))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
