"""Benchmark of recording upload and playback (prints figures; not a test).

Run: python bench/bench_recordings.py [--quick]

A real callbridge (``callbridge serve``, SQLite, local storage) runs in a process of its
own on a loopback port; this process is the client. The server's memory is read from
/proc/<pid>/status (VmRSS) by a sampling thread, so "memory" is the server's, not ours.

1. Upload: a 50 MB WAV sent with PUT in 1 MiB chunks (Content-Length given), several
   times; throughput is MB/s of body per upload (median and best), memory the server's
   RSS growth over its idle level while uploading (target: disk-bound, >= 200 MB/s,
   flat memory).
2. Time to first byte of playback: a signed-in GET of /monitor_link/{id}/audio, from
   sending the request to receiving the first body byte, one request at a time on a
   kept-alive connection; p50 and p99 for a first play (a range from byte 0, which is
   audit-logged) and for a seek (a range from the middle). Target: p50 <= 10 ms.
3. 100 concurrent Range readers: 100 connections each read a random 8 MiB range of the
   50 MB recording at once, in several rounds; the server's RSS before, at its peak and
   after each round (target: no growth from round to round).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MB = 1024 * 1024
PASSWORD = "bench password"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The peak RSS of a process while a block runs (sampled every 5 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.005)

    def __enter__(self) -> RssSampler:
        self.peak = rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_wav(path: Path, size: int) -> None:
    """A WAV file of ``size`` bytes: 8 kHz 16-bit mono, pseudo-random samples."""
    data_size = size - 44
    header = b"RIFF" + struct.pack("<I", size - 8) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    header += b"data" + struct.pack("<I", data_size)
    block = random.Random(1).randbytes(MB)
    with path.open("wb") as handle:
        handle.write(header)
        written = 0
        while written < data_size:
            chunk = block[: min(MB, data_size - written)]
            handle.write(chunk)
            written += len(chunk)


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(MB):
            yield chunk


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {
        **os.environ,
        "CALLBRIDGE_DATA_DIR": str(data_dir),
        "CALLBRIDGE_SECRET_KEY": "bench-secret-key-bench-secret-key",
    }
    env.pop("CALLBRIDGE_DATABASE_URL", None)
    cli = [sys.executable, "-m", "callbridge"]
    subprocess.run(
        [*cli, "users", "create", "--username", "bench", "--password", PASSWORD, "--role", "admin"],
        env=env,
        check=True,
        capture_output=True,
    )
    token = subprocess.run(
        [*cli, "tokens", "create", "--name", "bench", "--scope", "pbx"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("the callbridge server did not start")
        time.sleep(0.05)
    return server, base, token


def sign_in(client: httpx.Client) -> None:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/login", data={"username": "bench", "password": PASSWORD, "next": "/", "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text


def bench_upload(base: str, token: str, pid: int, wav: Path, rounds: int) -> None:
    size = wav.stat().st_size
    speeds = []
    growth = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for index in range(rounds):
            idle = rss_mb(pid)
            with RssSampler(pid) as sampler:
                started = time.perf_counter()
                answer = client.put(
                    f"/api/v1/calls/bench-{index % 2}/recording",
                    content=file_chunks(wav),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "audio/wav",
                        "Content-Length": str(size),
                    },
                )
                elapsed = time.perf_counter() - started
            assert answer.status_code in (200, 201), answer.text
            speeds.append(size / MB / elapsed)
            growth.append(sampler.peak - idle)
    print(
        f"upload of a {size / 1e6:.0f} MB file ({size / MB:.1f} MiB) x{rounds}: "
        f"median {statistics.median(speeds):.0f} MiB/s, best {max(speeds):.0f} MiB/s; "
        f"server RSS growth while uploading: max {max(growth):.1f} MiB "
        f"(idle {rss_mb(pid):.0f} MiB)"
    )


def bench_ttfb(base: str, requests: int) -> None:
    """Each request reads a whole 64 KiB range (what a player asks for first), so the
    kept-alive connection is reused and nothing is left streaming behind the timing."""
    with httpx.Client(base_url=base, timeout=30) as client:
        sign_in(client)
        for label, start in (
            ("first play (bytes=0-65535)", 0),
            ("seek (bytes=20000000-20065535)", 20_000_000),
        ):
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                first = None
                with client.stream(
                    "GET",
                    "/monitor_link/bench-0/audio",
                    headers={"Range": f"bytes={start}-{start + 65535}"},
                ) as answer:
                    for _chunk in answer.iter_raw():
                        first = first or time.perf_counter()
                    assert answer.status_code == 206
                assert first is not None
                samples.append((first - started) * 1000)
            samples.sort()
            p50 = statistics.median(samples)
            p99 = samples[int(len(samples) * 0.99) - 1]
            print(
                f"time to first byte, {label}, {requests} sequential: "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            )


async def _read_range(client: httpx.AsyncClient, size: int, span: int) -> int:
    start = random.randrange(0, size - span)
    received = 0
    async with client.stream(
        "GET", "/monitor_link/bench-0/audio", headers={"Range": f"bytes={start}-{start + span - 1}"}
    ) as answer:
        assert answer.status_code == 206
        async for chunk in answer.aiter_raw():
            received += len(chunk)
    return received


async def _readers_round(
    base: str, cookies: httpx.Cookies, size: int, readers: int, span: int
) -> float:
    limits = httpx.Limits(max_connections=readers, max_keepalive_connections=readers)
    async with httpx.AsyncClient(
        base_url=base, cookies=cookies, limits=limits, timeout=120
    ) as client:
        started = time.perf_counter()
        received = await asyncio.gather(*(_read_range(client, size, span) for _ in range(readers)))
        elapsed = time.perf_counter() - started
    assert all(total == span for total in received)
    return sum(received) / MB / elapsed


def bench_readers(base: str, pid: int, size: int, readers: int, rounds: int) -> None:
    with httpx.Client(base_url=base) as client:
        sign_in(client)
        cookies = client.cookies
    span = 8 * MB
    print(f"{readers} concurrent Range readers x {span // MB} MiB each, {rounds} rounds:")
    for index in range(rounds):
        before = rss_mb(pid)
        with RssSampler(pid) as sampler:
            throughput = asyncio.run(_readers_round(base, cookies, size, readers, span))
        print(
            f"  round {index + 1}: server RSS before {before:.0f} MiB, peak "
            f"{sampler.peak:.0f} MiB, after {rss_mb(pid):.0f} MiB; {throughput:.0f} MiB/s"
        )


def main() -> None:
    quick = "--quick" in sys.argv
    print(
        f"callbridge recordings benchmark — Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    work = Path(tempfile.mkdtemp(prefix="cb-bench-rec-"))
    try:
        wav = work / "fifty.wav"
        make_wav(wav, 50 * 1000 * 1000)
        server, base, token = start_server(work / "data", free_port())
        try:
            print(f"server pid {server.pid}, idle RSS {rss_mb(server.pid):.0f} MiB")
            bench_upload(base, token, server.pid, wav, 3 if quick else 6)
            bench_ttfb(base, 50 if quick else 300)
            bench_readers(base, server.pid, wav.stat().st_size, 100, 2 if quick else 3)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
