"""Bare Starlette plaintext: the ceiling `make bench` holds every Redline page against.

``python -m bench.plaintext serve --port N --workers W`` is `redline serve` itself with
only the application swapped for this one: the command's own ``uvicorn.run`` call, so
the uvicorn options (event loop, HTTP parser, proxy headers, logging, workers) are
whatever Redline is served with, now and after any change to app/cli.py.
(``REDLINE_BENCH_ACCESS_LOG=0`` turns uvicorn's access log off, for reference only.)
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

IMPORT_STRING = "bench.plaintext:app"


async def plaintext(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, World!")


app = Starlette(routes=[Route("/", plaintext)])


def main() -> None:
    import uvicorn

    from app import cli

    served = uvicorn.run

    def run(_app: object, *args: object, **options: object) -> None:
        if os.environ.get("REDLINE_BENCH_ACCESS_LOG") == "0":
            # For reference only (bench.run's generator check): what the access log costs.
            options["access_log"] = False
        shown = ", ".join(f"{name}={value!r}" for name, value in options.items())
        print(f"plaintext ceiling: uvicorn.run({IMPORT_STRING!r}, {shown})", flush=True)
        served(IMPORT_STRING, *args, **options)

    uvicorn.run = run
    cli.main()


if __name__ == "__main__":
    main()
