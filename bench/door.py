#!/usr/bin/env python3
"""The cost of the door of port 25 (issue 16) for a client that passed it. Started by
`ONLY=door bench/run.sh`.

Two petrels on this machine, the same build and the same local delivery (Maildir for
bench.test), differ only in the door:
  off: the client (127.0.0.1) is in the relay networks, which no check applies to;
  on:  the relay networks are empty, so every check applies: the pre-greet wait (1 s), EHLO
       checks, the sender domain looked up, forward-confirmed reverse DNS (tempfail), a DNS
       blocklist and a domain list (neither names the client), greylisting (1 s).
Before the timed rounds the "on" client passes the pre-greet wait once and retries past the
greylisting delay once, so it is remembered: the rows measure what a known client pays on
every session and every message (the lookups, the greylisting record, the checks).

A small DNS server (dnspython, on a loopback port) answers the zone the checks ask: bench.test
has an MX and an address, the lists answer NXDOMAIN with an SOA (so answers are cached).

Rows: 10 KiB, 50 clients, many messages per connection, and 50 clients one per connection,
smtp-source driving each petrel in turn, REPEATS rounds (the median). Every message of every
round must be delivered (the Maildir is counted), so a refusal cannot pass for speed.
The per-address limits are lifted for both (one address stands for 50 clients here).
Everything listens on 127.0.0.1 only; loads are bounded in count; only processes this script
started are stopped.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROWS = [(50, True, 3000), (50, False, 3000)][int(os.environ.get("FROM_ROW", "0")):]
ZONE = {
    ("bench.test.", "MX"): "10 mx.bench.test.",
    ("bench.test.", "A"): "127.0.0.1",
    ("mx.bench.test.", "A"): "127.0.0.1",
    ("client.bench.test.", "A"): "127.0.0.1",
}
QUERIES = []
SOA = "ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 3600"


def serve_dns(sock):
    """Answers every query on `sock` from ZONE; names under bench.test not in it are NXDOMAIN."""
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - a malformed query gets no answer
            continue
        QUERIES.append(query.question[0].to_text())
        answer = dns.message.make_response(query)
        answer.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        if (name, kind) in ZONE:
            answer.answer.append(dns.rrset.from_text(name, 3600, "IN", kind, ZONE[(name, kind)]))
        else:
            if not any(known == name for known, _ in ZONE):
                answer.set_rcode(dns.rcode.NXDOMAIN)
            answer.authority.append(dns.rrset.from_text("bench.test.", 3600, "IN", "SOA", SOA))
        sock.sendto(answer.to_wire(), peer)


DOOR_ON = """[relay]
networks = []
[screen]
pregreet = "1s"
fcrdns = "tempfail"
[[screen.dnsbl]]
zone = "bl.bench.test"
[[screen.dbl]]
zone = "dbl.bench.test"
[greylist]
enabled = true
delay = "1s"
"""


def petrel(scratch, dns_port, door):
    """A petrel delivering bench.test into its Maildir, asking the loopback DNS."""
    server = bench.Petrel.__new__(bench.Petrel)
    server.dir = tempfile.mkdtemp(prefix=f"door-{door}-", dir=scratch)
    server.port = bench.free_port()
    server.config = os.path.join(server.dir, "petrel.toml")
    with open(server.config, "w") as f:
        f.write(f"""hostname = "petrel.bench.test"
data_dir = "{server.dir}/data"
[[listener]]
address = "127.0.0.1:{server.port}"
[local]
domains = ["bench.test"]
[dns]
nameservers = ["127.0.0.1:{dns_port}"]
[delivery]
retry = ["10m"]
[limits]
max_connections = 1000
max_connections_per_ip = 1000
max_messages_per_minute_per_ip = 0
max_recipients_per_minute_per_ip = 0
max_connections_per_minute_per_ip = 0
{os.environ.get("DOOR_ON", DOOR_ON) if door == "on" else ""}""")
    server.log = open(os.path.join(server.dir, "log"), "w")
    server.start()
    return server


def delivered(server):
    new = os.path.join(server.dir, "data", "mail", "bench.test", "user", "new")
    return len(os.listdir(new)) if os.path.isdir(new) else 0


def smtp_source(port, clients, count, persistent):
    args = ["smtp-source", "-M", "client.bench.test", "-l", "10240", "-m", str(count),
            "-s", str(clients), "-f", "bench@bench.test", "-t", "user@bench.test"]
    if persistent:
        args.append("-d")
    start = time.time()
    done = subprocess.run(args + [f"127.0.0.1:{port}"], timeout=300,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source: {done.stderr[-2000:]}")
    return time.time() - start


def wait_delivered(server, wanted, timeout=120):
    deadline = time.time() + timeout
    while delivered(server) < wanted and time.time() < deadline:
        time.sleep(0.2)
    if delivered(server) != wanted:
        sys.exit(f"{server.dir}: {delivered(server)} delivered, {wanted} sent: something was refused")


def main():
    rounds = int(os.environ.get("REPEATS", "5"))
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="door-", dir=results)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    threading.Thread(target=serve_dns, args=(sock,), daemon=True).start()
    servers = {door: petrel(scratch, sock.getsockname()[1], door) for door in ("off", "on")}
    sent = {door: 0 for door in servers}
    try:
        # The "on" client passes the pre-greet wait, then greylisting (first try refused,
        # retried after the delay), and is remembered; the "off" one gets the same two messages.
        for door, server in servers.items():
            try:
                smtp_source(server.port, 1, 1, True)
            except RuntimeError:
                pass  # greylisted: smtp-source reports the 451
            time.sleep(1.5)
            smtp_source(server.port, 1, 1, True)
            smtp_source(server.port, 10, 500, True)
            bench.wait_drained(server)
            sent[door] = delivered(server)
        for clients, persistent, count in ROWS:
            rates = {door: [] for door in servers}
            # One untimed round, then the timed ones; the order alternates, so drift of the
            # machine within a round hits both alike.
            for round_number in range(rounds + 1):
                order = list(servers.items())
                if round_number % 2:
                    order.reverse()
                for door, server in order:
                    bench.drop_caches_of_writes()
                    seconds = smtp_source(server.port, clients, count, persistent)
                    sent[door] += count
                    wait_delivered(server, sent[door])
                    if round_number:
                        rates[door].append(count / seconds)
            off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
            paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"]))
            shown = ", ".join(f"door {d} {statistics.median(r):.0f} ({' '.join(f'{x:.0f}' for x in r)})"
                              for d, r in rates.items())
            print(f"10 KiB, {clients} clients, {'many' if persistent else 'one'} per connection: "
                  f"{shown}; on/off of the medians {on / off:.3f}, median of the rounds' on/off "
                  f"{paired:.3f}", flush=True)
        print(f"DNS queries answered: {len(QUERIES)}", flush=True)
        if os.environ.get("SHOW_QUERIES"):
            import collections
            print(collections.Counter(QUERIES).most_common(12))
    finally:
        for server in servers.values():
            server.stop()
        sock.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
