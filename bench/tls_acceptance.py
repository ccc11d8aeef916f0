#!/usr/bin/env python3
"""Mail over TLS (issue 20, item 2): acceptance when every session says STARTTLS, petrel
against Postfix, same machine, same run. Both servers get the same ECDSA P-256 certificate
(from a CA made here with openssl, as bench/tls_delivery.py does); Postfix has
smtpd_tls_security_level = may and its session cache (tlsmgr, btree), petrel its defaults
(rustls, session resumption from memory). The client is bench/loadgen with LOADGEN_STARTTLS=1:
TLS 1.3 only, one client configuration for all its sessions, so it resumes sessions as an
MTA's client cache does.

Rows: 10 and 50 clients, one message per connection and many (all of a client's messages on
one connection), 10 KiB. Reported per server: messages/s, handshakes/s and how many were
resumptions; and with one message per connection, the CPU per connection (handshake,
EHLO twice, one 10-KiB message): the server's own (petrel: its process; Postfix: its master
and children, smtpd, tlsmgr, cleanup, with the children that exited), and the whole
machine's busy CPU over the run (the client's share included, the same client for both).
Median of REPEATS, the servers alternating.

Run by bench/run.sh (ONLY=starttls bench/run.sh for this part alone). Talks to 127.0.0.1 only."""

import os
import statistics
import subprocess
import sys
import tempfile

import bench
import tls_delivery

TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """Busy CPU time of the whole machine so far (all CPUs, idle and iowait left out)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICKS


def process_seconds(pids):
    """CPU time (user + system, with waited-for children) of `pids` so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except OSError:
            continue
    return total / TICKS


def postfix_pids(postfix):
    """The processes of a private Postfix instance: its master (from its pid file) and every
    child of it. A child that exited is counted in the master's waited-for children's time."""
    try:
        with open(os.path.join(postfix.dir, "queue", "pid", "master.pid")) as f:
            master = f.read().strip()
    except OSError:
        return []
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True,
                         text=True).stdout
    children = [pid for pid, ppid in (line.split() for line in out.splitlines() if line.strip())
                if ppid == master]
    return [master] + children


def loadgen(port, clients, per_client, per_connection):
    out = subprocess.run(
        [bench.LOADGEN, "latency", f"127.0.0.1:{port}", str(clients), str(per_client),
         str(10 * 1024), str(per_connection)],
        capture_output=True, text=True, env={**os.environ, "LOADGEN_STARTTLS": "1"},
        timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen: {out.stderr.strip()[-500:]}")
    return dict(item.split("=", 1) for item in out.stdout.split())


def run_one(server, pids_of, port, clients, per_client, per_connection):
    pids = pids_of()
    busy, own = machine_busy_seconds(), process_seconds(pids)
    result = loadgen(port, clients, per_client, per_connection)
    busy = machine_busy_seconds() - busy
    own = process_seconds(pids_of()) - own
    seconds = float(result["seconds"])
    handshakes = int(result["handshakes"])
    bench.wait_drained(server, timeout=120)
    return {
        "per_second": float(result["per_second"]),
        "handshakes_per_second": handshakes / seconds,
        "resumed": int(result["resumed"]) / max(handshakes, 1),
        "server_ms_per_handshake": 1000 * own / max(handshakes, 1),
        "machine_ms_per_handshake": 1000 * busy / max(handshakes, 1),
    }


def tls_acceptance(scratch, messages=2000):
    certs = tls_delivery.make_certificates(tempfile.mkdtemp(prefix="certs-", dir=scratch))
    _, cert, key = certs
    rows = []
    for clients in (10, 50):
        per_client = max(1, messages // clients)
        for per_connection, label in ((1, "one per connection"), (per_client, "many")):
            runs = {"petrel": [], "postfix": []}
            for _ in range(bench.REPEATS):
                petrel = bench.Petrel(
                    scratch, max_connections=5000,
                    extra=f'[tls]\ncertificate = "{cert}"\nprivate_key = "{key}"\n')
                try:
                    runs["petrel"].append(run_one(
                        petrel, lambda: [petrel.process.pid], petrel.port, clients,
                        per_client, per_connection))
                finally:
                    petrel.stop()
                postfix = bench.Postfix(scratch, extra_main_cf=(
                    "smtpd_tls_security_level = may\n"
                    f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n"
                    "smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache\n"
                    "smtpd_tls_session_cache_timeout = 3600s\n"))
                try:
                    runs["postfix"].append(run_one(
                        postfix, lambda: postfix_pids(postfix), postfix.port, clients,
                        per_client, per_connection))
                finally:
                    postfix.stop()
            row = {"clients": clients, "mode": label}
            for name, results in runs.items():
                for key_name in results[0]:
                    row[f"{name}_{key_name}"] = statistics.median(r[key_name] for r in results)
            rows.append(row)
            print(f"  STARTTLS, {clients} clients, {label}: petrel "
                  f"{row['petrel_per_second']:.0f}/s, Postfix {row['postfix_per_second']:.0f}/s",
                  file=sys.stderr)
    return rows


def report(rows):
    lines = ["Acceptance over STARTTLS (TLS 1.3, ECDSA P-256, 10 KiB, the client resuming "
             "sessions):", "",
             "| clients | messages per connection | petrel msg/s | Postfix msg/s | "
             "petrel/Postfix | handshakes/s petrel / Postfix | resumed petrel / Postfix | "
             "server CPU ms per connection petrel / Postfix | machine CPU ms per connection "
             "petrel / Postfix |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['mode']} | {r['petrel_per_second']:.0f} | "
            f"{r['postfix_per_second']:.0f} | "
            f"{r['petrel_per_second'] / r['postfix_per_second']:.2f} | "
            f"{r['petrel_handshakes_per_second']:.0f} / {r['postfix_handshakes_per_second']:.0f} | "
            f"{100 * r['petrel_resumed']:.0f}% / {100 * r['postfix_resumed']:.0f}% | "
            + (f"{r['petrel_server_ms_per_handshake']:.2f} / "
               f"{r['postfix_server_ms_per_handshake']:.2f} | "
               f"{r['petrel_machine_ms_per_handshake']:.2f} / "
               f"{r['postfix_machine_ms_per_handshake']:.2f} |"
               if r["mode"] == "one per connection" else "- | - |"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="starttls-", dir=results)
    os.chmod(scratch, 0o755)
    table = report(tls_acceptance(scratch, 500 if bench.QUICK else 2000))
    with open(os.path.join(results, "starttls.md"), "w") as f:
        f.write(table)
    print(table)
