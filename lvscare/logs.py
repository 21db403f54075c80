"""structlog set-up: JSON lines for machines (kubelet collects stderr), colours for people.

Libraries that log through the standard `logging` module (asyncio, aiohttp, pyroute2) go
through the same renderer, so stderr stays one JSON object per line.
"""

from __future__ import annotations

import logging
import sys

import structlog

FORMATS = ("json", "console")


def configure(*, debug: bool = False, fmt: str | None = None) -> None:
    """`fmt` is json or console; by default json unless stderr is a terminal."""
    tty = sys.stderr.isatty()
    if fmt is None:
        fmt = "console" if tty else "json"
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use json or console")
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=tty)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.INFO
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO if debug else logging.WARNING)
