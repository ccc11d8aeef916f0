#!/usr/bin/env python3
"""Start-up with a large queue (issue 20, item 6). One run:

1. A petrel relaying everything to [127.0.0.1]:PORT, where nothing listens yet, with
   `retry = ["15s"]`, receives COUNT (100,000) messages of 1 KiB from smtp-source (20
   clients); each is deferred (connection refused).
2. It is stopped cleanly (SIGTERM: what the journal held becomes files), and the script waits
   until every message's next attempt (15 s after its last one) is due.
3. Postfix's smtp-sink starts on PORT; petrel starts again. Measured from the start of the
   process: when it greets on SMTP, when the first message arrives at the sink (counted by
   petrel's own petrel_recipient_deliveries_total on /metrics), and when all have.

    python3 bench/startup.py           # COUNT=100000; target/release/petrel
Loopback only; bounded in count and time (every wait has a timeout).
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402

COUNT = int(os.environ.get("COUNT", "100000"))


def delivered(http_port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read()
    except OSError:
        return -1
    total = 0
    for line in text.decode().splitlines():
        if line.startswith("petrel_recipient_deliveries_total{") and 'result="delivered"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def greeting(port, deadline):
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.makefile("rb").readline().startswith(b"220"):
                    return time.time()
        except OSError:
            time.sleep(0.01)
    raise SystemExit("petrel never greeted")


def main():
    scratch = tempfile.mkdtemp(prefix="startup-")
    sink_port = bench.free_port()
    http_port = bench.free_port()
    petrel = bench.Petrel(
        scratch,
        relayhost=f"[127.0.0.1]:{sink_port}",
        retry="15s",
        extra=f'[http]\naddress = "127.0.0.1:{http_port}"',
    )
    fill_start = time.time()
    subprocess.run(["smtp-source", "-l", "1024", "-m", str(COUNT), "-s", "20", "-d",
                    "-f", "bench@bench.test", "-t", "user@bench.test",
                    f"127.0.0.1:{petrel.port}"],
                   check=True, timeout=900, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fill = time.time() - fill_start
    petrel.process.send_signal(15)
    petrel.process.wait(300)
    stopped = time.time()
    files = sum(len(f) for _, _, f in os.walk(os.path.join(petrel.dir, "data", "queue", "active")))
    time.sleep(16)  # every next attempt is due
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["smtp-sink", *user, f"127.0.0.1:{sink_port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_port(sink_port)
    bench.drop_caches_of_writes()
    start = time.time()
    petrel.process = subprocess.Popen([bench.PETREL, "serve", "--config", petrel.config],
                                      stdout=subprocess.DEVNULL, stderr=petrel.log)
    greeted = greeting(petrel.port, start + 120) - start
    first = None
    deadline = start + 900
    count = 0
    while time.time() < deadline:
        count = delivered(http_port)
        if count > 0 and first is None:
            first = time.time() - start
        if count >= COUNT:
            break
        time.sleep(0.05)
    finished = time.time() - start
    rss = petrel.rss_kib()
    petrel.stop()
    sink.terminate()
    sink.wait()
    print(f"{COUNT} messages received in {fill:.1f} s, stopped with {files} queue files "
          f"(stop took {stopped - fill_start - fill:.1f} s)")
    print(f"restart: SMTP greeting after {greeted:.2f} s, first delivery after "
          f"{first if first is None else round(first, 2)} s, {count} delivered after "
          f"{finished:.1f} s ({count / finished:.0f} msg/s), RSS at the end {rss // 1024} MiB")


if __name__ == "__main__":
    main()
