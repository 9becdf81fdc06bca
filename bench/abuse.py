#!/usr/bin/env python3
"""The server under unauthenticated abuse (docs/benchmarks.md, "Abuse"): a running server at
127.0.0.1:PORT (its CA at CA_PEM, its process PID). Two phases:

1. 16 connections at once, each declaring a 200 MB body to /v1/enroll and sending it as fast as
   it can: how long each waits for its answer (the status), and the server's RSS before and after.
2. N (500) connections each declaring a 100-byte body and sending one byte every 5 s, while
   /healthz is asked every 0.5 s over a fresh connection: how many of the slow connections the
   server closes (and when), and /healthz's latency meanwhile — measured twice: by probes in the
   abusing client's own event loop (their latency includes the time that loop spends opening
   and feeding the 500 connections) and by probes in a separate process with its own loop
   (what another client of the server sees).

usage: bench/abuse.py PORT CA_PEM PID [SLOW_CONNECTIONS] [SLOW_SECONDS]
"""
import asyncio
import multiprocessing
import ssl
import sys
import time

port, ca, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
slow_n = int(sys.argv[4]) if len(sys.argv) > 4 else 500
slow_secs = float(sys.argv[5]) if len(sys.argv) > 5 else 75
ctx = ssl.create_default_context(cafile=ca)


def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


async def connect():
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")


async def big_body():
    r, w = await connect()
    size = 200 << 20
    w.write(f"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
    start = time.time()
    chunk = b"a" * 65536
    status = None

    async def send():
        sent = 0
        try:
            while sent < size:
                w.write(chunk)
                await w.drain()
                sent += len(chunk)
        except (ConnectionError, ssl.SSLError):
            pass

    sender = asyncio.create_task(send())
    try:
        line = await asyncio.wait_for(r.readline(), 30)
        status = line.decode(errors="replace").strip()
    except Exception as e:  # noqa: BLE001 - reported as the answer
        status = f"no answer: {e!r}"
    took = time.time() - start
    sender.cancel()
    w.close()
    return status, took


async def healthz():
    start = time.time()
    r, w = await connect()
    w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await w.drain()
    await r.read()
    w.close()
    return time.time() - start


async def slow(closed, opened_at):
    try:
        r, w = await connect()
    except Exception:  # noqa: BLE001
        closed.append(("refused", 0.0))
        return
    w.write(b"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    await w.drain()
    start = time.time()
    reader = asyncio.create_task(r.read())
    while not reader.done() and time.time() - opened_at < slow_secs:
        try:
            w.write(b" ")
            await w.drain()
        except (ConnectionError, ssl.SSLError):
            break
        await asyncio.wait([reader], timeout=5)
    if reader.done():
        data = reader.result()
        closed.append((data.split(b"\r\n", 1)[0].decode(errors="replace"), time.time() - start))
    else:
        reader.cancel()
    w.close()


def probe_elsewhere(seconds, out):
    """/healthz every 0.5 s for `seconds`, from this separate process's own event loop."""
    async def run():
        lat = []
        start = time.time()
        while time.time() - start < seconds:
            try:
                lat.append(await healthz())
            except Exception:  # noqa: BLE001 - a failed probe counts as the whole wait
                lat.append(float("inf"))
            await asyncio.sleep(0.5)
        return lat
    out.put(asyncio.run(run()))


def summary(lat):
    lat = sorted(lat)
    return (f"{len(lat)} requests, median {lat[len(lat) // 2] * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms")


async def main():
    before = rss_kb()
    results = await asyncio.gather(*[big_body() for _ in range(16)])
    after = rss_kb()
    statuses = sorted({s for s, _ in results})
    print(f"16 declared 200 MB bodies: answers {statuses}, slowest {max(t for _, t in results):.2f} s, "
          f"RSS {before} KB -> {after} KB (+{(after - before) / 1024:.1f} MB)")
    closed = []
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    elsewhere = spawn.Process(target=probe_elsewhere, args=(slow_secs, results))
    elsewhere.start()
    opened_at = time.time()
    tasks = [asyncio.create_task(slow(closed, opened_at)) for _ in range(slow_n)]
    lat = []
    while time.time() - opened_at < slow_secs:
        lat.append(await healthz())
        await asyncio.sleep(0.5)
    await asyncio.gather(*tasks)
    other = results.get()
    elsewhere.join()
    answers = sorted({a for a, _ in closed})
    times = sorted(t for _, t in closed)
    print(f"{slow_n} slow bodies: {len(closed)} closed by the server within {slow_secs:.0f} s "
          f"(answers {answers}; after {times[0]:.1f}-{times[-1]:.1f} s)" if times else
          f"{slow_n} slow bodies: none closed within {slow_secs:.0f} s")
    print(f"/healthz meanwhile, from the abusing client's loop: {summary(lat)}")
    print(f"/healthz meanwhile, from another process: {summary(other)}; server RSS {rss_kb()} KB")


if __name__ == "__main__":
    asyncio.run(main())
