"""A fast HTTP/1.1 request engine for the probe's hot path (asyncio Protocols and httptools)."""

from loadprobe.fasthttp.sender import FastHttpSender, new_event_loop

__all__ = ["FastHttpSender", "new_event_loop"]
