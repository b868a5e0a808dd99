"""A userspace TCP relay that puts a WAN between a client and its servers on loopback.

The kernel here has no netem qdisc, so the bench harness adds delay itself: every byte read from
one side is written to the other side DELAY/2 later (in order), in both directions, so a request
and its answer cost DELAY more than on plain loopback. Opening a connection costs one round trip
too: the relay connects to the server DELAY after accepting the client (TCP's SYN, SYN-ACK). The
relay never limits bandwidth; it only shifts bytes in time, as a long fat pipe with deep buffers.

Usage:
  wan_relay.py --rtt-ms 30 --map FILE       FILE: lines "LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT".
                                            Prints "ready N" once the N listeners are up, then
                                            relays until stdin closes (or it is killed).
  wan_relay.py --rtt-ms 30 --ping N         Self-check: an echo server behind the relay, N one-byte
                                            round trips through it and N directly; prints JSON with
                                            the medians (how the delay was checked).
"""

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time

CHUNK = 1 << 18


async def pump(reader, writer, half_rtt):
    """Copy reader to writer, each chunk written half_rtt after it was read."""
    queue = asyncio.Queue()

    async def read_side():
        try:
            while True:
                data = await reader.read(CHUNK)
                queue.put_nowait((time.monotonic() + half_rtt, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((time.monotonic(), b""))

    reading = asyncio.ensure_future(read_side())
    try:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()


async def relay(client_r, client_w, target, rtt):
    # Accepting here is instant on loopback; a WAN connect costs one round trip first.
    await asyncio.sleep(rtt)
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    for w in (client_w, server_w):
        sock = w.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.gather(
        pump(client_r, server_w, rtt / 2), pump(server_r, client_w, rtt / 2), return_exceptions=True
    )
    for w in (client_w, server_w):
        w.close()


async def serve(map_file, rtt):
    servers = []
    for line in open(map_file):
        if not line.strip():
            continue
        lip, lport, tip, tport = line.split()
        target = (tip, int(tport))
        servers.append(
            await asyncio.start_server(
                lambda r, w, t=target: relay(r, w, t, rtt), lip, int(lport), backlog=1024
            )
        )
    print(f"ready {len(servers)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def ping(n, rtt):
    async def echo(r, w):
        while data := await r.read(CHUNK):
            w.write(data)
            await w.drain()
        w.close()

    echo_srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    eport = echo_srv.sockets[0].getsockname()[1]
    relay_srv = await asyncio.start_server(
        lambda r, w: relay(r, w, ("127.0.0.1", eport), rtt), "127.0.0.1", 0
    )
    rport = relay_srv.sockets[0].getsockname()[1]

    async def round_trips(port):
        t0 = time.monotonic()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        await r.readexactly(1)
        first = time.monotonic() - t0  # connect + first exchange
        times = []
        for _ in range(n):
            t = time.monotonic()
            w.write(b"x")
            await w.drain()
            await r.readexactly(1)
            times.append(time.monotonic() - t)
        w.close()
        await w.wait_closed()
        # Let the relay and the echo server see the end before the loop stops.
        await asyncio.sleep(rtt * 2 + 0.1)
        return first, times

    d_first, direct = await round_trips(eport)
    r_first, relayed = await round_trips(rport)
    print(
        json.dumps(
            {
                "rtt_ms_asked": rtt * 1000,
                "direct_median_ms": statistics.median(direct) * 1000,
                "relayed_median_ms": statistics.median(relayed) * 1000,
                "relayed_min_ms": min(relayed) * 1000,
                "relayed_max_ms": max(relayed) * 1000,
                "relayed_connect_and_first_ms": r_first * 1000,
                "direct_connect_and_first_ms": d_first * 1000,
                "round_trips": n,
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rtt-ms", type=float, required=True)
    p.add_argument("--map")
    p.add_argument("--ping", type=int)
    a = p.parse_args()
    # One descriptor per listener and two per relayed connection: raise this process's own limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rtt = a.rtt_ms / 1000
    if a.ping:
        asyncio.run(ping(a.ping, rtt))
    elif a.map:
        asyncio.run(serve(a.map, rtt))
    else:
        p.error("--map or --ping")


if __name__ == "__main__":
    main()
