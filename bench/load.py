"""A closed-loop HTTP/1.1 load generator, like ``wrk -c N``, from the project's own packages.

Each of ``connections`` keep-alive connections sends a request, waits for the whole
answer, and sends the next at once; the requests are taken in turn from a list of
ready-made requests (so that, say, every vote comes from another voter). It runs on
asyncio with uvloop's event loop and parses answers with httptools: both are already
installed as uvicorn's extras. Requests answered during a warm-up are not counted;
then, for ``duration`` seconds, every answer counts: requests per second, latency
centiles (p50, p99, from the request being written to its answer being complete) and
answers that are not 2xx. At the end no new request is sent and the ones in flight are
waited for (not counted), so that the server is idle when the next measurement starts.

With ``processes`` above 1 the connections are shared among that many processes, all
measuring over the same seconds: if two processes get no more answers per second than
one, one was enough to keep the server busy (see docs/performance.md).

    .venv/bin/python -m bench.load http://127.0.0.1:8000/ -c 64 -d 10 -w 2
    .venv/bin/python -m bench.load http://127.0.0.1:8000/amendments/7/vote -X POST \\
        -H 'HX-Request: true' -H 'Content-Type: application/x-www-form-urlencoded' \\
        --data stance=support
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None


def request(
    method: str,
    path: str,
    host: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """One HTTP/1.1 request, ready to write to a keep-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Result:
    """What the measured seconds saw."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    # Connections that failed or were dropped with a request in flight, and timeouts.
    errors: int = 0
    received_bytes: int = 0
    # Requests still unanswered when the measured seconds ended, and the oldest's age.
    unfinished: int = 0
    oldest_unfinished: float = 0.0
    # CPU used over the measured seconds, in cores: by the generator, and by the server
    # process when its pid was given (Linux); a server near 1.0 with a generator well
    # below it means the server, not the generator, set the pace.
    generator_cpu: float = 0.0
    server_cpu: float | None = None
    # Whatever ``probe`` measured (CPU seconds so far, by name), as cores over those seconds.
    probed: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def centile(self, share: float) -> float:
        """Seconds within which ``share`` of the counted requests were answered (nan if none)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def p50(self) -> float:
        return self.centile(0.50)

    @property
    def p99(self) -> float:
        return self.centile(0.99)

    @property
    def stuck(self) -> bool:
        """Whether a request left unanswered at the end had waited longer than the p99."""
        return self.oldest_unfinished > max(0.5, 2 * (self.p99 if self.latencies else 0.0))

    def merge(self, other: Result) -> Result:
        return Result(
            seconds=max(self.seconds, other.seconds),
            latencies=self.latencies + other.latencies,
            statuses=self.statuses + other.statuses,
            errors=self.errors + other.errors,
            received_bytes=self.received_bytes + other.received_bytes,
            unfinished=self.unfinished + other.unfinished,
            oldest_unfinished=max(self.oldest_unfinished, other.oldest_unfinished),
            generator_cpu=self.generator_cpu + other.generator_cpu,
            server_cpu=self.server_cpu if self.server_cpu is not None else other.server_cpu,
            probed=self.probed or other.probed,
        )

    def line(self) -> str:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"{self.per_second:9.1f} req/s  p50 {self.p50 * 1000:8.1f} ms  "
            f"p99 {self.p99 * 1000:8.1f} ms  non-2xx {self.non_2xx}  errors {self.errors}"
            + (
                f"  oldest unanswered at the end {self.oldest_unfinished:.1f} s"
                if self.stuck
                else ""
            )
            + f"  CPU: generator {self.generator_cpu:.2f}"
            + (f", server {self.server_cpu:.2f}" if self.server_cpu is not None else "")
            + f"  ({statuses or 'no answers'})"
        )


class _Load:
    """The shared state of one process's connections."""

    def __init__(self, requests: Sequence[bytes], offset: int) -> None:
        self.requests = list(requests)
        self.next = offset
        self.counting = False
        self.stopping = False
        self.result = Result(seconds=0.0)
        self.clients: set[_Client] = set()

    def take(self) -> bytes:
        chosen = self.requests[self.next % len(self.requests)]
        self.next += 1
        return chosen


class _Client(asyncio.Protocol):
    """One keep-alive connection: request, whole answer, next request."""

    def __init__(self, load: _Load, lost: asyncio.Future) -> None:
        self.load = load
        self.lost = lost
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.in_flight = False
        self.size = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.load.clients.add(self)
        self.send()

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail()

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.clients.discard(self)
        if self.in_flight and self.load.counting:
            self.load.result.errors += 1
        self.in_flight = False
        if not self.lost.done():
            self.lost.set_result(None)

    # httptools callbacks
    def on_message_complete(self) -> None:
        now = time.perf_counter()
        self.in_flight = False
        load = self.load
        if load.counting:
            load.result.latencies.append(now - self.sent_at)
            load.result.statuses[self.parser.get_status_code()] += 1
            load.result.received_bytes += self.size
        self.size = 0
        if not self.parser.should_keep_alive():
            self.transport.close()
        else:
            self.send()

    def send(self) -> None:
        if self.load.stopping:
            self.transport.close()
            return
        self.in_flight = True
        self.sent_at = time.perf_counter()
        self.transport.write(self.load.take())

    def fail(self) -> None:
        if self.load.counting:
            self.load.result.errors += 1
        self.in_flight = False
        self.transport.close()


async def _connection(loop, load: _Load, host: str, port: int) -> None:
    """Keep one connection going until the load stops, reconnecting if the server closes it."""
    while not load.stopping:
        lost = loop.create_future()
        try:
            await loop.create_connection(lambda lost=lost: _Client(load, lost), host, port)
        except OSError:
            if load.counting:
                load.result.errors += 1
            await asyncio.sleep(0.05)
            continue
        await lost


async def _watch_timeouts(load: _Load, timeout: float) -> None:
    while not load.stopping:
        await asyncio.sleep(min(1.0, timeout / 4))
        now = time.perf_counter()
        for client in list(load.clients):
            if client.in_flight and now - client.sent_at > timeout:
                client.fail()


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User and system CPU seconds of process ``pid`` so far (None where /proc is missing).

    With ``children``, also those of its children that have exited and been waited for.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3; utime, stime, cutime and cstime are 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (not idle or waiting for I/O) so far."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(n) for n in stat.readline().split()[1:]]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is within user)
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


async def _run(
    host: str,
    port: int,
    requests: Sequence[bytes],
    connections: int,
    duration: float,
    warmup: float,
    start_at: float,
    offset: int,
    timeout: float,
    drain: float,
    server_pid: int | None,
    probe: Callable[[], dict[str, float]] | None,
) -> Result:
    loop = asyncio.get_running_loop()
    load = _Load(requests, offset)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    tasks = [asyncio.ensure_future(_connection(loop, load, host, port)) for _ in range(connections)]
    watcher = asyncio.ensure_future(_watch_timeouts(load, timeout))
    await asyncio.sleep(warmup)
    load.counting = True
    began, cpu = time.perf_counter(), time.process_time()
    server = cpu_seconds(server_pid) if server_pid else None
    probed = probe() if probe else {}
    await asyncio.sleep(duration)
    load.counting = False
    ended = time.perf_counter()
    seconds = load.result.seconds = ended - began
    load.result.generator_cpu = (time.process_time() - cpu) / seconds
    if server is not None:
        server = (cpu_seconds(server_pid) or server) - server
        load.result.server_cpu = server / seconds
    if probe:
        after = probe()
        load.result.probed = {name: (after[name] - probed[name]) / seconds for name in probed}
    in_flight = [c for c in load.clients if c.in_flight]
    load.result.unfinished = len(in_flight)
    load.result.oldest_unfinished = max((ended - c.sent_at for c in in_flight), default=0.0)
    # No new requests; let the ones in flight finish so the server is idle afterwards.
    load.stopping = True
    for client in list(load.clients):
        if not client.in_flight:
            client.transport.close()
    _, pending = await asyncio.wait(tasks, timeout=drain)
    for client in list(load.clients):
        client.transport.close()
    for task in pending:
        task.cancel()
    watcher.cancel()
    await asyncio.gather(*tasks, watcher, return_exceptions=True)
    return load.result


def _one_process(args: tuple) -> Result:
    gc.disable()
    if uvloop is not None:
        return uvloop.run(_run(*args))
    return asyncio.run(_run(*args))


def _default_signals() -> None:
    """A generator process ends on SIGTERM (the pool's terminate) whatever its parent set.

    bench.run turns SIGTERM into SystemExit; a forked worker inherited that, and one that
    swallowed the exception went on waiting for work while the pool waited for it to end.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run(
    url: str,
    requests: Sequence[bytes],
    connections: int = 64,
    duration: float = 10.0,
    warmup: float = 2.0,
    processes: int = 1,
    timeout: float = 60.0,
    drain: float = 120.0,
    server_pid: int | None = None,
    probe: Callable[[], dict[str, float]] | None = None,
) -> Result:
    """Load the server at ``url`` (scheme, host and port are used) with ``requests`` in turn.

    With ``server_pid``, the result also says how busy that process was (in cores);
    ``probe`` is called as the measured seconds begin and end (CPU seconds by name).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    processes = max(1, min(processes, connections))
    start_at = time.time() + (0.5 if processes > 1 else 0.0)
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    jobs = [
        (
            host,
            port,
            requests,
            share,
            duration,
            warmup,
            start_at,
            i * 7919,
            timeout,
            drain,
            server_pid if i == 0 else None,
            probe if i == 0 else None,
        )
        for i, share in enumerate(shares)
    ]
    if processes == 1:
        return _one_process(jobs[0])
    with multiprocessing.get_context("fork").Pool(processes, _default_signals) as pool:
        results = pool.map(_one_process, jobs)
    merged = results[0]
    for other in results[1:]:
        merged = merged.merge(other)
    return merged


def once(url: str, raw: bytes, timeout: float = 120.0) -> tuple[int, float, int]:
    """Send one request on a new connection: (status, seconds to the whole answer, bytes)."""

    async def go() -> tuple[int, float, int]:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        done = asyncio.Event()

        class Answer:
            def on_message_complete(self) -> None:
                done.set()

        parser = httptools.HttpResponseParser(Answer())
        size = 0
        started = time.perf_counter()
        writer.write(raw)
        while not done.is_set():
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                break
            size += len(data)
            parser.feed_data(data)
        seconds = time.perf_counter() - started
        writer.close()
        return parser.get_status_code(), seconds, size

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("-w", "--warmup", type=float, default=2.0, help="seconds not counted")
    parser.add_argument("-p", "--processes", type=int, default=1, help="generator processes")
    parser.add_argument("-X", "--method", default="GET")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--data", default="", help="request body")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--server-pid", type=int, help="report this process's CPU use")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {name.strip(): value.strip() for name, value in headers.items()}
    one = request(args.method, path, parts.netloc, headers, args.data.encode())
    result = run(
        args.url,
        [one],
        args.connections,
        args.duration,
        args.warmup,
        args.processes,
        args.timeout,
        server_pid=args.server_pid,
    )
    print(
        f"{args.connections} connections, {args.processes} process(es), "
        f"{result.seconds:.1f} s measured after {args.warmup:g} s warm-up"
    )
    print(result.line())


if __name__ == "__main__":
    main()
