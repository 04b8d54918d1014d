"""Upstream peers for the proxy tests (tests/e2e/test_3xx_proxy*.py): TLS servers
that stand in for a controller's console and web UI. Run as a script:

  proxy_peer.py echo|bulk|http PORT CERT KEY

echo: says "hello\\n" first, then echoes every byte (a websocket-like stream).
bulk: reads a 16-byte header (up, down lengths), then `up` bytes; replies with
      `down` random bytes, their SHA-256, and the SHA-256 of what it received.
http: HTTP/1.1 keep-alive; "/" redirects to https://<its own address>/login.
sum:  reads until the client half-closes, then sends the SHA-256 of it all
      (a blocking server: it must keep writing after the peer's close_notify).
Prints "ready" once listening."""
import asyncio
import hashlib
import os
import ssl
import struct
import sys


async def echo(reader, writer):
    try:
        writer.write(b"hello\n")
        await writer.drain()
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def bulk(reader, writer):
    try:
        hdr = await reader.readexactly(16)
        up, down = struct.unpack("!QQ", hdr)
        h = hashlib.sha256()
        left = up
        while left:
            data = await reader.read(min(left, 65536))
            if not data:
                return
            h.update(data)
            left -= len(data)
        out = hashlib.sha256()
        left = down
        while left:
            chunk = os.urandom(min(left, 65536))
            out.update(chunk)
            writer.write(chunk)
            await writer.drain()
            left -= len(chunk)
        writer.write(out.digest() + h.digest())
        await writer.drain()
    finally:
        writer.close()


def http_handler(port):
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                if path == b"/":
                    writer.write(b"HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:%d/login\r\n"
                                 b"Content-Length: 0\r\n\r\n" % port)
                elif path == b"/other":
                    writer.write(b"HTTP/1.1 302 Found\r\nLocation: https://elsewhere.test/x\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                else:
                    body = b"login page at https://127.0.0.1:%d/login\n" % port
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()
    return handle


def sum_server(port, cert, key):
    import socket
    import threading
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)

    def serve(conn):
        try:
            with ctx.wrap_socket(conn, server_side=True) as t:
                h = hashlib.sha256()
                while True:
                    data = t.recv(65536)
                    if not data:
                        break
                    h.update(data)
                t.sendall(h.digest())
        except (OSError, ssl.SSLError):
            pass

    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


async def main():
    mode, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    handler = {"echo": echo, "bulk": bulk}.get(mode) or http_handler(port)
    server = await asyncio.start_server(handler, "127.0.0.1", port, ssl=ctx, backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "sum":
        sum_server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        asyncio.run(main())
