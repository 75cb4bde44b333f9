"""A bare slack-bolt app on Socket Mode: the baseline of ``bench.slack``.

``python -m bench.bolt_app --api-url URL`` builds an ``AsyncApp`` with an
``AsyncSocketModeHandler``, with one pooled aiohttp session for the Web API
client and the ping interval it is given, as TechAssist's bridge does, and
bolt's defaults otherwise. Its only listener does nothing: bolt acks an event
before it runs the listener. Once
connected it freezes its start-up heap, as ``techassist serve`` does. The
tokens come from ``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN``. It prints
``bare bolt connected`` once the socket is open and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

READY = "bare bolt connected"


async def nothing() -> None:
    """Bolt acks an event before running its listener; there is nothing else to do."""


async def serve(api_url: str, ping_interval: float) -> int:
    # Taken out of the environment: AsyncApp would read it too, and warn that it goes unused.
    token = os.environ.pop("SLACK_BOT_TOKEN")
    client = AsyncWebClient(token=token, base_url=api_url, session=aiohttp.ClientSession())
    app = AsyncApp(client=client, logger=logging.getLogger("bench.bolt_app"))
    app.event("message")(nothing)
    handler = AsyncSocketModeHandler(
        app, os.environ["SLACK_APP_TOKEN"], web_client=client, ping_interval=ping_interval
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        # As `techassist serve` does after start-up (bot.app.settle_heap): full collections
        # then skip what start-up built, in both apps alike.
        gc.collect()
        gc.freeze()
        print(READY, flush=True)
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await client.session.close()  # type: ignore[union-attr]
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", required=True, help="the Web API base URL")
    parser.add_argument("--ping-interval", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(serve(args.api_url, args.ping_interval))


if __name__ == "__main__":
    sys.exit(main())
