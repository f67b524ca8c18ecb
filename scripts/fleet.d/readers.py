"""Readers for scripts/fleet: WeChat's side of many conversations at once.

Each message comes from a reader of its own with a MsgId of its own (ISBN 9787121139512), signed
as WeChat signs it, and goes to the next gateway in turn, as a load balancer in front of the
gateways would send it: not to those listed in the DRAINING file (taken out of rotation before
they are stopped, as Kubernetes' preStop pause lets the ingress do), and a connection a gateway
refuses (it is restarting) goes to the next one. Every answer is read: the book (《浪潮之巅》)
or not. Prints one line of JSON at the end.

Usage: readers.py TOKEN SECONDS CONCURRENCY DRAINING GATEWAY_ADDR...
"""

import asyncio
import hashlib
import itertools
import json
import os
import random
import sys
import time

BOOK = "浪潮之巅".encode()


def signed_path(token):
    timestamp, nonce = str(int(time.time())), str(random.randrange(10**9))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return f"/wechat?signature={signature}&timestamp={timestamp}&nonce={nonce}"


def message(reader, msg_id):
    return (
        "<xml><ToUserName><![CDATA[gh_fleet]]></ToUserName>"
        f"<FromUserName><![CDATA[{reader}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[9787121139512]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


async def post(addr, path, body, timeout):
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, payload


async def main():
    token, seconds, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    draining_file, gateways = sys.argv[4], sys.argv[5:]
    turn = itertools.cycle(range(len(gateways)))
    draining = {"mtime": None, "addrs": set()}

    def next_gateway():
        try:
            mtime = os.stat(draining_file).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != draining["mtime"]:
            draining["mtime"] = mtime
            try:
                draining["addrs"] = set(open(draining_file).read().split())
            except FileNotFoundError:
                draining["addrs"] = set()
        for _ in gateways:
            addr = gateways[next(turn)]
            if addr not in draining["addrs"]:
                return addr
        return gateways[next(turn)]

    ids = itertools.count(int(time.time()) * 1000)
    stats = {"sent": 0, "book": 0, "not_book": 0, "http_errors": 0, "unanswered": 0, "examples": []}
    end = time.monotonic() + seconds

    async def one_reader(n):
        while time.monotonic() < end:
            msg_id = next(ids)
            body = message(f"oFleet{n:03d}x{msg_id}", msg_id)
            path = signed_path(token)
            stats["sent"] += 1
            answer = None
            # Refused connections (a gateway restarting) move on to the next gateway.
            for _ in range(len(gateways) * 3):
                try:
                    answer = await post(next_gateway(), path, body, 5.5)
                    break
                except (ConnectionError, OSError, asyncio.TimeoutError):
                    await asyncio.sleep(0.05)
            if answer is None:
                stats["unanswered"] += 1
            elif answer[0] != 200:
                stats["http_errors"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append(f"HTTP {answer[0]}: {answer[1][:200]!r}")
            elif BOOK in answer[1]:
                stats["book"] += 1
            else:
                stats["not_book"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append(answer[1].decode(errors="replace")[:300])

    await asyncio.gather(*(one_reader(n) for n in range(concurrency)))
    print(json.dumps(stats, ensure_ascii=False))


asyncio.run(main())
