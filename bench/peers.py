#!/usr/bin/env python3
"""Every peer in one table (issue 20, item 1): acceptance of 10-KiB messages by petrel,
Postfix, chasquid and OpenSMTPD on this machine, in the same run, and whether each makes a
message durable before its 250 (fsync-type calls per message under strace).

chasquid and OpenSMTPD are Debian's packages, which conflict with the installed postfix
package; their binaries are taken with `apt-get download` and `dpkg -x` into
bench/results/peers (no package is installed). OpenSMTPD's paths are compiled in: it needs
the users opensmtpd and opensmtpq, /var/spool/smtpd, /var/lib/opensmtpd/empty and its MDA
helpers under /usr/libexec/opensmtpd (a link to the extracted ones); this script makes them.

The whole run is in a network namespace of its own with only a loopback interface (the script
starts itself again under `unshare -n`): chasquid looks up DNS for every message (SPF of the
sender), which must not leave this machine, and with no route it fails at once instead of
waiting for a timeout. Every server in the run is in that namespace, on its 127.0.0.1.

Each server delivers what it takes to nothing: petrel `discard:`, Postfix `discard`,
chasquid an alias `| /bin/true`, OpenSMTPD `mda "cat > /dev/null"`. smtp-sink, Postfix's
test server, which stores nothing and answers at once, runs beside them as the ceiling of the
client on this machine: a ratio to a peer above smtp-sink's own is out of any server's reach.
chasquid refuses new mail with 451 4.3.0 while 200 messages are in its queue (a limit in its
code); a run it refuses is reported as "refused", one that takes over 60 s as such, not as a
rate. The servers alternate, median of REPEATS.

Run: ONLY=peers bench/run.sh (as root). Talks to 127.0.0.1 only."""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench

PEERS = os.path.join(bench.HERE, "results", "peers")
CHASQUID = os.path.join(PEERS, "root", "usr", "bin", "chasquid")
SMTPD = os.path.join(PEERS, "root", "usr", "sbin", "smtpd")
SINK = "smtp-sink"


def setup():
    """Extracts the two packages (once) and makes what OpenSMTPD's compiled-in paths need."""
    if not (os.path.exists(CHASQUID) and os.path.exists(SMTPD)):
        os.makedirs(PEERS, exist_ok=True)
        subprocess.run(["apt-get", "download", "chasquid", "opensmtpd"], cwd=PEERS, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for deb in os.listdir(PEERS):
            if deb.endswith(".deb"):
                subprocess.run(["dpkg", "-x", deb, "root"], cwd=PEERS, check=True)
    for user in ("opensmtpd", "opensmtpq"):
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-r", "-M", "-d", "/var/lib/opensmtpd/empty", "-s",
                            "/usr/sbin/nologin", user], check=True)
    os.makedirs("/var/lib/opensmtpd/empty", exist_ok=True)
    os.makedirs("/var/spool/smtpd", mode=0o711, exist_ok=True)
    if not os.path.exists("/usr/libexec/opensmtpd"):
        os.symlink(os.path.join(PEERS, "root", "usr", "libexec", "opensmtpd"),
                   "/usr/libexec/opensmtpd")


class Chasquid:
    def __init__(self, scratch):
        self.dir = tempfile.mkdtemp(prefix="chasquid-", dir=scratch)
        self.port = bench.free_port()
        conf = os.path.join(self.dir, "conf")
        certs = os.path.join(conf, "certs", "chasquid.bench.test")
        os.makedirs(certs)
        os.makedirs(os.path.join(conf, "domains", "bench.test"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        os.path.join(certs, "privkey.pem"), "-out",
                        os.path.join(certs, "fullchain.pem"), "-days", "2", "-subj",
                        "/CN=chasquid.bench.test"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(os.path.join(conf, "domains", "bench.test", "aliases"), "w") as f:
            f.write("user: | /bin/true\n")
        with open(os.path.join(conf, "chasquid.conf"), "w") as f:
            f.write(f'hostname: "chasquid.bench.test"\n'
                    f'smtp_address: "127.0.0.1:{self.port}"\n'
                    f'submission_address: "127.0.0.1:{bench.free_port()}"\n'
                    f'submission_over_tls_address: "127.0.0.1:{bench.free_port()}"\n'
                    f'monitoring_address: "127.0.0.1:{bench.free_port()}"\n'
                    f'mail_delivery_agent_bin: "/bin/true"\n'
                    f'data_dir: "{self.dir}/data"\n'
                    f'mail_log_path: "{self.dir}/mail.log"\n')
        self.process = subprocess.Popen(
            [CHASQUID, "-config_dir", conf, "-logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_port(self.port)

    def queue_empty(self):
        queue = os.path.join(self.dir, "data", "queue")
        return not os.path.isdir(queue) or not os.listdir(queue)

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


class OpenSmtpd:
    def __init__(self, scratch):
        self.dir = tempfile.mkdtemp(prefix="opensmtpd-", dir=scratch)
        self.port = bench.free_port()
        self.config = os.path.join(self.dir, "smtpd.conf")
        with open(self.config, "w") as f:
            f.write('table vusers { "user@bench.test" = "opensmtpd" }\n'
                    "smtp limit max-mails 1000000\n"
                    f"listen on 127.0.0.1 port {self.port}\n"
                    'action "discard" mda "cat > /dev/null" virtual <vusers>\n'
                    'match from any for domain "bench.test" action "discard"\n')
        # One instance at a time: the spool is /var/spool/smtpd (compiled in); its files go,
        # its directories (made at the first start) stay.
        subprocess.run(["find", "/var/spool/smtpd", "-type", "f", "-delete"], check=False)
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.process = subprocess.Popen([SMTPD, "-d", "-f", self.config],
                                        stdout=self.log, stderr=self.log)
        bench.wait_port(self.port)

    def queue_empty(self):
        out = subprocess.run(["find", "/var/spool/smtpd/queue", "/var/spool/smtpd/incoming",
                              "-type", "f"], capture_output=True, text=True).stdout
        return not out.strip()

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


def source(port, clients, count, persistent):
    """messages/s of smtp-source's run, "refused" when the server refused a message (smtp-source
    stops at the first), "over 60 s" when the run took longer."""
    args = ["smtp-source", "-l", "10240", "-m", str(count), "-s", str(clients),
            "-f", "bench@bench.test", "-t", "user@bench.test"]
    if persistent:
        args.append("-d")
    status, seconds, killed = bench.timed_run(args + [f"127.0.0.1:{port}"], 60)
    if killed:
        return "over 60 s"
    if status != 0:
        return "refused"
    return count / seconds


def drained(server, timeout=120):
    if isinstance(server, (Chasquid, OpenSmtpd)):
        deadline = time.time() + timeout
        while time.time() < deadline and not server.queue_empty():
            time.sleep(0.1)
    else:
        bench.wait_drained(server, timeout)


def starters(scratch):
    return {
        "petrel": lambda: bench.Petrel(scratch),
        "Postfix": lambda: bench.Postfix(scratch),
        "chasquid": lambda: Chasquid(scratch),
        "OpenSMTPD": lambda: OpenSmtpd(scratch),
        # Not a peer: Postfix's test server, which stores nothing and answers at once. Its row
        # is the ceiling this client and this machine allow, in the same namespace and run.
        SINK: lambda: bench.Sink(),
    }


def acceptance(scratch):
    rows = []
    for clients in (1, 10, 50):
        for persistent in (False, True):
            count = bench.message_count(10, clients)
            if clients == 1:
                count //= 4
            results = {name: [] for name in starters(scratch)}
            for _ in range(bench.REPEATS):
                for name, start in starters(scratch).items():
                    server = start()
                    try:
                        bench.drop_caches_of_writes()
                        results[name].append(source(server.port, clients, count,
                                                    persistent))
                        drained(server)
                    finally:
                        server.stop()
            row = {"clients": clients, "persistent": persistent, "messages": count}
            for name, values in results.items():
                failed = [v for v in values if isinstance(v, str)]
                row[name] = failed[0] if failed else statistics.median(values)
            rows.append(row)
            print(f"  {clients} clients, {'many' if persistent else 'one'} per connection: "
                  + ", ".join(f"{n} {cell(row[n])}" for n in results), file=sys.stderr)
    return rows


def tree(pid):
    """`pid` and all its descendants, as strings."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True,
                         text=True).stdout
    children = {}
    for line in out.splitlines():
        child, parent = line.split()
        children.setdefault(parent, []).append(child)
    found, todo = [], [str(pid)]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def fsyncs(scratch, count=150):
    """fsync-type calls per message, strace -f -c on each server's processes over `count`
    messages at 10 clients (fewer than chasquid's queue takes); Postfix is measured by
    bench.py (count-fsync.sh)."""
    out = {}
    for name, start in starters(scratch).items():
        if name in ("Postfix", SINK):
            continue  # bench.py's fsyncs_per_message measures Postfix (count-fsync.sh)
        server = start()
        try:
            trace = os.path.join(server.dir if hasattr(server, "dir") else scratch,
                                 "strace.txt")
            # Every process of the server (OpenSMTPD's queue process among its children),
            # and with -f the ones they start.
            pids = tree(server.process.pid)
            tracer = subprocess.Popen(
                ["strace", "-f", "-c", "-o", trace] + [a for p in pids for a in ("-p", p)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            bench.smtp_source(server.port, 10, count, 10, True)
            drained(server)
            tracer.terminate()
            tracer.wait(30)
            out[name] = bench.count_calls(trace) / count
        finally:
            server.stop()
    return out


def cell(value):
    return value if isinstance(value, str) else f"{value:.0f}"


def report(rows, calls):
    names = list(starters("/tmp"))
    peers = [n for n in names[1:] if n != SINK]
    lines = ["Acceptance, 10 KiB, messages/s (median), every server delivering to nothing "
             f"({SINK} stores nothing: the ceiling of this client here):", "",
             "| clients | per connection | " + " | ".join(names)
             + f" | petrel / best other | petrel / {SINK} | {SINK} / best other |",
             "|---|---|" + "---|" * (len(names) + 3)]

    def ratio(a, b):
        return "-" if isinstance(a, str) or isinstance(b, str) or not b else f"{a / b:.2f}"

    for r in rows:
        cells = [cell(r[n]) for n in names]
        others = [r[n] for n in peers if not isinstance(r[n], str)]
        best = max(others) if others else "-"
        lines.append(f"| {r['clients']} | {'many' if r['persistent'] else 'one'} | "
                     + " | ".join(cells) + f" | {ratio(r['petrel'], best)} | "
                     + f"{ratio(r['petrel'], r[SINK])} | {ratio(r[SINK], best)} |")
    lines += ["", "fsync-type calls per message (strace -f -c, 150 messages, 10 clients): "
              + ", ".join(f"{n} {v:.2f}" for n, v in calls.items())]
    return "\n".join(lines) + "\n"


def main():
    if os.environ.get("PEERS_IN_NAMESPACE") != "1":
        setup()
        os.execvp("unshare", ["unshare", "-n", "sh", "-c",
                              "ip link set lo up && PEERS_IN_NAMESPACE=1 exec python3 "
                              + os.path.abspath(__file__)])
    results = os.path.join(bench.HERE, "results")
    scratch = tempfile.mkdtemp(prefix="peers-", dir=results)
    os.chmod(scratch, 0o755)
    rows = acceptance(scratch)
    calls = fsyncs(scratch)
    table = report(rows, calls)
    with open(os.path.join(results, "peers.md"), "w") as f:
        f.write(table)
    print(table)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
