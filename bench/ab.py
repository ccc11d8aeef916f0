#!/usr/bin/env python3
"""A/B comparison of petrel binaries on this machine, in one run: each named binary serves
from its own scratch directory (its own defaults, discard delivery, as in bench.py), and they
and an smtp-sink take turns for every round, so the drift of the machine hits all alike.

    bench/ab.py old=/path/to/petrel,new=target/release/petrel [rounds]

Rows: 10 KiB messages, 1 client many per connection, 50 clients many, 50 clients one per
connection. Prints the msg/s of every round per binary. Needs what bench/run.sh installs.
"""

import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROWS = [(1, True, 500), (50, True, 3000), (50, False, 3000)]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binaries = dict(pair.split("=", 1) for pair in sys.argv[1].split(","))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="ab-", dir=results)
    servers = {}
    for name, path in binaries.items():
        bench.PETREL = os.path.abspath(path)
        servers[name] = bench.Petrel(scratch)
    sink = bench.Sink()
    try:
        for clients, persistent, count in ROWS:
            rates = {name: [] for name in [*servers, "sink"]}
            for _ in range(rounds):
                for name, server in [*servers.items(), ("sink", sink)]:
                    bench.drop_caches_of_writes()
                    seconds = bench.smtp_source(server.port, clients, count, 10, persistent)
                    rates[name].append(count / seconds)
                    if name != "sink":
                        bench.wait_drained(server)
            shown = ", ".join(f"{name} {statistics.median(r):.0f} ({' '.join(f'{x:.0f}' for x in r)})"
                              for name, r in rates.items())
            print(f"{clients} clients, {'many' if persistent else 'one'} per connection: {shown}",
                  flush=True)
    finally:
        for server in servers.values():
            server.stop()
        sink.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
