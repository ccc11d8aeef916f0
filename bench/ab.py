#!/usr/bin/env python3
"""A/B comparison of petrel binaries on this machine, in one run: each named binary serves
from its own scratch directory (its own defaults, discard delivery, as in bench.py), and they
and an smtp-sink take turns for every round, so the drift of the machine hits all alike.

    bench/ab.py old=/path/to/petrel,new=target/release/petrel [rounds]

Rows: 10 KiB messages, 1 client many per connection, 50 clients many, 50 clients one per
connection; or those of ROWS="clients:one|many:messages ..." (ROWS="10:one:3000"). With
FRESH=1 every measurement gets a petrel started fresh in a new directory, as bench/peers.py
does (a new install's first journal segments are made then). Prints the msg/s of every round
per binary. Needs what bench/run.sh installs.
"""

import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROWS = [(1, True, 500), (50, True, 3000), (50, False, 3000)]


def rows():
    """ROWS, or those named in the environment."""
    named = os.environ.get("ROWS")
    if not named:
        return ROWS
    return [(int(clients), mode == "many", int(count))
            for clients, mode, count in (row.split(":") for row in named.split())]


class Fresh:
    """A petrel binary started anew, in a new directory, for each measurement."""

    def __init__(self, path, scratch):
        self.path, self.scratch = path, scratch

    def measure(self, clients, count, persistent):
        bench.PETREL = self.path
        directory = tempfile.mkdtemp(prefix="fresh-", dir=self.scratch)
        server = bench.Petrel(directory)
        try:
            seconds = bench.smtp_source(server.port, clients, count, 10, persistent)
            bench.wait_drained(server)
            return seconds
        finally:
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binaries = dict(pair.split("=", 1) for pair in sys.argv[1].split(","))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="ab-", dir=results)
    is_fresh = os.environ.get("FRESH") == "1"
    servers = {}
    for name, path in binaries.items():
        if is_fresh:
            servers[name] = Fresh(os.path.abspath(path), scratch)
        else:
            bench.PETREL = os.path.abspath(path)
            servers[name] = bench.Petrel(scratch)
    sink = bench.Sink()
    try:
        for clients, persistent, count in rows():
            rates = {name: [] for name in [*servers, "sink"]}
            for _ in range(rounds):
                for name, server in [*servers.items(), ("sink", sink)]:
                    bench.drop_caches_of_writes()
                    if isinstance(server, Fresh):
                        seconds = server.measure(clients, count, persistent)
                    else:
                        seconds = bench.smtp_source(server.port, clients, count, 10, persistent)
                        if name != "sink":
                            bench.wait_drained(server)
                    rates[name].append(count / seconds)
            shown = ", ".join(f"{name} {statistics.median(r):.0f} ({' '.join(f'{x:.0f}' for x in r)})"
                              for name, r in rates.items())
            print(f"{clients} clients, {'many' if persistent else 'one'} per connection: {shown}",
                  flush=True)
    finally:
        for server in servers.values():
            if not isinstance(server, Fresh):
                server.stop()
        sink.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
