#!/usr/bin/env python3
"""Memory under large messages (issue 18, item 1): CLIENTS sessions each send one message of
SIZE_MIB MiB at the same moment (all open, EHLO/MAIL/RCPT/DATA done, then the bodies written
together) to a petrel delivering into a local Maildir. Reports the peak resident memory of the
petrel process (VmHWM) and the replies (250, 452 when the in-flight bound refuses). One run;
loopback only; bounded: CLIENTS messages, a 300 s timeout per socket.

    python3 bench/big_messages.py            # target/release/petrel
    CLIENTS=64 SIZE_MIB=16 EXTRA='max_data_memory = 0' python3 bench/big_messages.py
"""

import collections
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402

CLIENTS = int(os.environ.get("CLIENTS", "64"))
SIZE_MIB = int(os.environ.get("SIZE_MIB", "16"))
EXTRA = os.environ.get("EXTRA", "")


def reply(sock_file):
    line = sock_file.readline()
    while len(line) > 3 and line[3:4] == b"-":
        line = sock_file.readline()
    return line.decode(errors="replace").strip()


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    scratch = tempfile.mkdtemp(prefix="big-")
    server = bench.Petrel(scratch, extra=EXTRA)
    pid = server.process.pid
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (SIZE_MIB * 1024 * 1024 // len(line)) + b".\r\n"
    sessions = []
    for _ in range(CLIENTS):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=300)
        f = sock.makefile("rb")
        reply(f)
        for command in (b"EHLO client.bench.test", b"MAIL FROM:<bench@localhost>",
                        b"RCPT TO:<user@localhost>", b"DATA"):
            sock.sendall(command + b"\r\n")
            reply(f)
        sessions.append((sock, f))
    before = status_kib(pid, "VmRSS")
    replies = collections.Counter()
    lock = threading.Lock()

    def send(sock, f):
        sock.sendall(body)
        answer = reply(f)
        with lock:
            replies[answer[:9]] += 1
        sock.sendall(b"QUIT\r\n")
        sock.close()

    start = time.time()
    threads = [threading.Thread(target=send, args=s) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    peak = status_kib(pid, "VmHWM")
    server.process.terminate()
    server.process.wait(timeout=60)
    print(f"{CLIENTS} clients x {SIZE_MIB} MiB in {elapsed:.1f} s: replies {dict(replies)}; "
          f"RSS before the bodies {before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB "
          f"(extra: {EXTRA!r})")


if __name__ == "__main__":
    main()
