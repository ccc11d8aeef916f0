#!/usr/bin/env python3
"""petrel against Postfix on one machine, in one run (issue 6). Started by bench/run.sh.

Acceptance: Postfix's smtp-source drives petrel, a private Postfix 3.x with a real queue
(bench/postfix, discard transport) and Postfix's smtp-sink (no storage: the protocol ceiling),
at 1, 10 and 100 KiB, 1, 10 and 50 clients, one message per connection and many per connection;
runs of the servers alternate and each point is the median of REPEATS runs. Both servers keep
their durability: the 250 comes after the message is on stable storage (Postfix: cleanup's
fsync; petrel: queue.sync, syncfs by default).
Also: fsyncs per message (strace -f -c), end-of-DATA latency p50/p99 at 50 clients
(bench/loadgen), delivery of N queued messages to an smtp-sink (queue held, then released,
timed until empty), memory per idle connection with 10,000 sessions open (petrel) and 100
(Postfix: one smtpd process each, its process limit), and the shared queue: 1, 2 and 3 petrel
nodes on one PostgreSQL (bench/nodes.py).

Everything listens on 127.0.0.1 only; every load is bounded in count; only processes this
script started are stopped, by PID (Postfix through `postfix -c DIR stop`).
Output: a markdown report on stdout and in bench/results/latest.md.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PETREL = os.path.join(ROOT, "target", "release", "petrel")
LOADGEN = os.path.join(HERE, "loadgen", "target", "release", "petrel-loadgen")
INSTANCE = os.path.join(HERE, "postfix", "instance.sh")
REPEATS = int(os.environ.get("REPEATS", "3"))
QUICK = os.environ.get("QUICK") == "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def drop_caches_of_writes():
    """Flushes dirty pages left by earlier runs, so one server's writeback is not billed to
    the next (both servers flush their own writes before each 250)."""
    os.sync()


def petrel_config(data_dir, port, relayhost="discard:", max_connections=1000, extra="",
                  delivery_extra="", retry="10m"):
    """petrel's configuration in the benchmark: its defaults, except the null-MX checks (no DNS
    here), the per-client rate limits, the connection limit and delivery to `relayhost`."""
    return f"""hostname = "petrel.bench.test"
data_dir = "{data_dir}"
[[listener]]
address = "127.0.0.1:{port}"
[local]
domains = ["localhost"]
[policy]
reject_null_mx_recipient = false
reject_null_mx_sender = false
[dns]
nameservers = ["127.0.0.1:9"]
[delivery]
relayhost = "{relayhost}"
retry = ["{retry}"]
{delivery_extra}
[limits]
max_connections = {max_connections}
max_messages_per_minute_per_ip = 0
max_recipients_per_minute_per_ip = 0
max_connections_per_minute_per_ip = 0
{extra}
"""


class Petrel:
    def __init__(self, scratch, relayhost="discard:", max_connections=1000, extra="",
                 delivery_extra="", prefix=(), retry="10m"):
        # A command petrel runs under, e.g. prlimit for a higher descriptor limit.
        self.prefix = list(prefix)
        self.dir = tempfile.mkdtemp(prefix="petrel-", dir=scratch)
        self.port = free_port()
        config = petrel_config(f"{self.dir}/data", self.port, relayhost, max_connections,
                               extra, delivery_extra, retry)
        self.config = os.path.join(self.dir, "petrel.toml")
        with open(self.config, "w") as f:
            f.write(config)
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [*getattr(self, "prefix", []), PETREL, "serve", "--config", self.config],
            stdout=subprocess.DEVNULL, stderr=self.log)
        wait_port(self.port)

    def restart(self):
        """Stops petrel cleanly (its queue is all files then) and starts it again."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.start()

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def queue_count(self):
        out = subprocess.run([PETREL, "queue", "list", "--json", "--config", self.config],
                             capture_output=True, text=True).stdout
        try:
            return len(json.loads(out))
        except ValueError:
            return -1

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Postfix:
    def __init__(self, scratch, mode="discard", sink_port=None, extra_main_cf=""):
        self.dir = tempfile.mkdtemp(prefix="postfix-", dir=scratch)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        args = [INSTANCE, "start", mode, self.dir, str(self.port)]
        if sink_port:
            args.append(str(sink_port))
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "EXTRA_MAIN_CF": extra_main_cf})

    def run(self, *command):
        return subprocess.run([INSTANCE, *command, self.dir], check=True,
                              capture_output=True, text=True).stdout

    def smtpd_pss_kib(self):
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                if not cmdline.startswith("smtpd ") or f"127.0.0.1:{self.port}" not in cmdline:
                    continue
                # Pss: each process's private memory plus its share of what they share (RSS
                # would count the shared libraries once per smtpd).
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
            except OSError:
                continue
        return total

    def stop(self):
        subprocess.run([INSTANCE, "stop", self.dir], stdout=subprocess.DEVNULL)


class Sink:
    def __init__(self):
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            ["smtp-sink", *user, f"127.0.0.1:{self.port}", "1000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def timed_run(args, timeout):
    """Runs `args`, output discarded: (exit status, seconds from start to exit, whether it was
    killed at `timeout`). It waits in a blocking waitpid; subprocess's wait with a timeout polls
    up to 50 ms apart, which added up to 50 ms to every run measured that way (a fifth of a
    fast 0.25-s run). A timer kills the process at `timeout`."""
    killed = threading.Event()
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill():
        killed.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        status = process.wait()
    finally:
        timer.cancel()
    return status, time.perf_counter() - start, killed.is_set()


def smtp_source(port, clients, messages, size_kib, persistent):
    """Seconds smtp-source takes to send `messages` of `size_kib` over `clients` sessions."""
    args = ["smtp-source", "-l", str(size_kib * 1024), "-m", str(messages), "-s", str(clients),
            "-f", "bench@bench.test", "-t", "user@bench.test"]
    if persistent:
        args.append("-d")
    status, seconds, killed = timed_run(args + [f"127.0.0.1:{port}"], 300)
    if status != 0 or killed:
        raise RuntimeError(f"smtp-source to port {port}: status {status}"
                           + (", killed after 300 s" if killed else ""))
    return seconds


def wait_drained(server, timeout=60):
    """Waits until `server` (a Petrel or Postfix) has an empty queue; the sink (or None) keeps
    nothing."""
    if server is None or isinstance(server, Sink):
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        if isinstance(server, Petrel):
            if server.queue_count() == 0:
                return
        elif subprocess.run([INSTANCE, "queue-empty", server.dir]).returncode == 0:
            return
        time.sleep(0.1)


def message_count(size_kib, clients):
    base = {1: 2000, 10: 2000, 100: 400}[size_kib]
    if QUICK:
        base //= 4
    return max(base, clients * 2)


def warm_up(petrel, postfix, sink):
    """One untimed round per server before the matrix: the first rounds after start (and after
    the build's writeback) ran at a third of the speed of the same rows later, for all three."""
    for server, port in ((petrel, petrel.port), (postfix, postfix.port), (None, sink.port)):
        drop_caches_of_writes()
        smtp_source(port, 10, 500, 10, True)
        wait_drained(server)


def acceptance(petrel, postfix, sink):
    rows = []
    sizes = [10] if QUICK else [1, 10, 100]
    clients_list = [1, 50] if QUICK else [1, 10, 50]
    for size in sizes:
        for clients in clients_list:
            for persistent in (False, True):
                count = message_count(size, clients)
                if clients == 1:
                    count = count // 4
                results = {"petrel": [], "postfix": [], "sink": []}
                for _ in range(REPEATS):
                    for name, port in (("petrel", petrel.port), ("postfix", postfix.port),
                                       ("sink", sink.port)):
                        drop_caches_of_writes()
                        seconds = smtp_source(port, clients, count, size, persistent)
                        results[name].append(count / seconds)
                        # The server's own delivery of what it took (discard) must not run
                        # into the next server's measurement.
                        wait_drained({"petrel": petrel, "postfix": postfix}.get(name))
                medians = {k: statistics.median(v) for k, v in results.items()}
                rows.append({"size_kib": size, "clients": clients,
                             "persistent": persistent, "messages": count, **medians})
                print(f"  {size} KiB, {clients} clients, {'many' if persistent else 'one'}"
                      f" per connection: petrel {medians['petrel']:.0f}/s, postfix "
                      f"{medians['postfix']:.0f}/s, sink {medians['sink']:.0f}/s",
                      file=sys.stderr)
    return rows


def fsyncs_per_message(scratch):
    """strace -f -c over a run of 1000 10-KiB messages at 50 clients, for each server."""
    result = {}
    messages = 1000
    out = os.path.join(scratch, "petrel-strace.txt")
    petrel = Petrel(scratch)
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-e",
                               "trace=fsync,fdatasync,syncfs,sync_file_range,msync,sync",
                               "-p", str(petrel.process.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    smtp_source(petrel.port, 50, messages, 10, True)
    time.sleep(2)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(30)
    petrel.stop()
    result["petrel"] = count_calls(out) / messages
    counter = os.path.join(HERE, "postfix", "count-fsync.sh")
    postfix_dir = tempfile.mkdtemp(prefix="postfix-fsync-", dir=scratch)
    os.chmod(postfix_dir, 0o755)
    text = subprocess.run([counter, "run", postfix_dir, str(free_port()), str(messages), "50",
                           "10240"], capture_output=True, text=True, timeout=300).stdout
    per_message = 0.0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == "TOTAL" and fields[1] in (
                "fsync", "fdatasync", "syncfs", "sync_file_range", "msync", "sync"):
            per_message += float(fields[3])
    result["postfix"] = per_message
    return result


def count_calls(strace_summary):
    total = 0
    with open(strace_summary) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[-1] in ("fsync", "fdatasync", "syncfs",
                                                    "sync_file_range", "msync", "sync"):
                total += int(fields[3])
    return total


def latency(port, clients=50, messages_per_client=40):
    out = subprocess.run([LOADGEN, "latency", f"127.0.0.1:{port}", str(clients),
                          str(messages_per_client), "10240"],
                         capture_output=True, text=True, timeout=300).stdout
    return dict(kv.split("=") for kv in out.split())


def petrel_delivery(scratch, count, from_files):
    """petrel: the sink is not there while the messages arrive, so each is deferred; then the
    sink starts and `petrel queue flush` releases them all. Deferred mail stays in the journal
    and memory for 30 s; with `from_files` petrel is restarted first, so every message is in
    its files (a clean stop writes them) and delivery reads and removes files, as Postfix's."""
    sink_port = free_port()
    http_port = free_port()
    petrel = Petrel(scratch, relayhost=f"[127.0.0.1]:{sink_port}",
                    extra=f'[http]\naddress = "127.0.0.1:{http_port}"\n')
    smtp_source(petrel.port, 20, count, 10, True)
    deadline = time.time() + 120
    while petrel.queue_count() != count and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the first (failed) attempts finish
    if from_files:
        petrel.restart()
        time.sleep(2)  # the attempts at start fail too
    sink = subprocess.Popen(["smtp-sink", *(["-u", "nobody"] if os.geteuid() == 0 else []),
                             f"127.0.0.1:{sink_port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(sink_port)
    drop_caches_of_writes()
    start = time.time()
    subprocess.run([PETREL, "queue", "flush", "--config", petrel.config], check=True,
                   capture_output=True)
    # Polled as Postfix's wait-empty polls its queue directories (every 20 ms, cheaply): the
    # queue gauge of /metrics, which lists ids only. `petrel queue list` would read every
    # envelope and message at each poll, and its cost would be counted as petrel's.
    deadline = time.time() + 300
    while queued_by_metrics(http_port) > 0 and time.time() < deadline:
        time.sleep(0.02)
    rate = count / (time.time() - start)
    petrel.stop()
    sink.terminate()
    sink.wait()
    return rate


def queued_by_metrics(port):
    """petrel_queue_messages from petrel's /metrics (-1 when it cannot be read)."""
    import urllib.request
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    except OSError:
        return -1
    for line in text.decode().splitlines():
        if line.startswith("petrel_queue_messages "):
            return int(float(line.split()[1]))
    return -1


def delivery(scratch, count):
    """N queued 10-KiB messages relayed to an smtp-sink: seconds from release to empty."""
    out = {"petrel": petrel_delivery(scratch, count, from_files=False),
           "petrel_from_files": petrel_delivery(scratch, count, from_files=True)}
    # Postfix: held at acceptance, released, timed until its queue directories are empty.
    sink = Sink()
    postfix = Postfix(scratch, "sink", sink.port)
    postfix.run("hold")
    smtp_source(postfix.port, 20, count, 10, True)
    time.sleep(1)
    drop_caches_of_writes()
    start = time.time()
    postfix.run("release")
    postfix.run("wait-empty")
    out["postfix"] = count / (time.time() - start)
    postfix.stop()
    sink.stop()
    return out


def memory(scratch, connections):
    out = {}
    # petrel lowers max_connections to what its descriptor limit holds (two per session and a
    # reserve of 256); stay under it, as this machine's hard limit cannot be raised.
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        connections = min(connections, (hard - 256) // 2 - 100)
    out["petrel_connections"] = connections
    petrel = Petrel(scratch, max_connections=connections + 1000)
    before = petrel.rss_kib()
    idle = subprocess.Popen([LOADGEN, "idle", f"127.0.0.1:{petrel.port}", str(connections),
                             "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = idle.stdout.readline()
    time.sleep(2)
    after = petrel.rss_kib()
    idle.wait(120)
    out["petrel_open"] = line.strip()
    out["petrel_errors"] = idle.returncode
    out["petrel_kib_per_connection"] = (after - before) / connections
    out["petrel_rss_before_kib"] = before
    out["petrel_rss_after_kib"] = after
    petrel.stop()
    postfix = Postfix(scratch)
    base = postfix.smtpd_pss_kib()
    idle = subprocess.Popen([LOADGEN, "idle", f"127.0.0.1:{postfix.port}", "100", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    idle.stdout.readline()
    time.sleep(2)
    loaded = postfix.smtpd_pss_kib()
    idle.wait(60)
    out["postfix_kib_per_connection"] = (loaded - base) / 100
    postfix.stop()
    return out


def report(machine, rows, fsyncs, lat, deliver, mem):
    lines = [f"Machine: {machine}", ""]
    lines.append("| size | clients | per connection | petrel msg/s | Postfix msg/s | smtp-sink "
                 "msg/s | petrel MB/s | petrel/Postfix | petrel/smtp-sink |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mb = r["petrel"] * r["size_kib"] * 1024 / 1e6
        lines.append(f"| {r['size_kib']} KiB | {r['clients']} | "
                     f"{'many' if r['persistent'] else 'one'} | {r['petrel']:.0f} | "
                     f"{r['postfix']:.0f} | {r['sink']:.0f} | {mb:.1f} | "
                     f"{r['petrel'] / r['postfix']:.2f} | {r['petrel'] / r['sink']:.2f} |")
    lines.append("")
    lines.append(f"fsync-type calls per message (10 KiB, 50 clients, 1000 messages): petrel "
                 f"{fsyncs['petrel']:.3f}, Postfix {fsyncs['postfix']:.3f}")
    lines.append("")
    lines.append("End-of-DATA to 250 at 50 clients, 10 KiB (bench/loadgen): "
                 f"petrel p50 {lat['petrel']['p50_ms']} ms, p99 {lat['petrel']['p99_ms']} ms "
                 f"({lat['petrel']['per_second']}/s); Postfix p50 {lat['postfix']['p50_ms']} ms, "
                 f"p99 {lat['postfix']['p99_ms']} ms ({lat['postfix']['per_second']}/s)")
    lines.append("")
    lines.append(f"Delivery of queued 10-KiB messages to an smtp-sink: petrel "
                 f"{deliver['petrel']:.0f}/s (queued in its journal), "
                 f"{deliver['petrel_from_files']:.0f}/s (from files, after a restart), Postfix "
                 f"{deliver['postfix']:.0f}/s, ratios "
                 f"{deliver['petrel'] / deliver['postfix']:.2f} and "
                 f"{deliver['petrel_from_files'] / deliver['postfix']:.2f}")
    lines.append("")
    lines.append(f"Memory: petrel {mem['petrel_kib_per_connection']:.1f} KiB per idle "
                 f"connection ({mem['petrel_open']}; RSS {mem['petrel_rss_before_kib']} -> "
                 f"{mem['petrel_rss_after_kib']} KiB); Postfix "
                 f"{mem['postfix_kib_per_connection']:.0f} KiB per idle connection (Pss of its smtpd "
                 "processes, 100 open)")
    return "\n".join(lines) + "\n"


def main():
    for tool in (PETREL, LOADGEN, INSTANCE):
        if not os.path.exists(tool):
            sys.exit(f"missing {tool}: run bench/run.sh")
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="run-", dir=results)
    os.chmod(scratch, 0o755)
    machine = (f"{os.cpu_count()} CPUs, "
               f"{subprocess.run(['uname', '-sr'], capture_output=True, text=True).stdout.strip()}, "
               f"{subprocess.run(['postconf', '-d', 'mail_version'], capture_output=True, text=True).stdout.strip()}")
    print("acceptance (smtp-source):", file=sys.stderr)
    sink = Sink()
    petrel = Petrel(scratch)
    postfix = Postfix(scratch)
    try:
        warm_up(petrel, postfix, sink)
        rows = acceptance(petrel, postfix, sink)
        print("latency (loadgen):", file=sys.stderr)
        drop_caches_of_writes()
        lat = {"petrel": latency(petrel.port)}
        drop_caches_of_writes()
        lat["postfix"] = latency(postfix.port)
    finally:
        petrel.stop()
        postfix.stop()
        sink.stop()
    print("fsyncs (strace):", file=sys.stderr)
    fsyncs = fsyncs_per_message(scratch)
    print("delivery:", file=sys.stderr)
    deliver = delivery(scratch, 500 if QUICK else 2000)
    print("memory:", file=sys.stderr)
    mem = memory(scratch, 2000 if QUICK else 10000)
    print("shared queue (1, 2, 3 nodes on PostgreSQL):", file=sys.stderr)
    import nodes  # bench/nodes.py; imports this file as a module of its own
    node_count = 500 if QUICK else 2000
    node_rows = nodes.shared_queue(scratch, messages=node_count)
    print("delivery over verified TLS:", file=sys.stderr)
    import tls_delivery  # bench/tls_delivery.py
    tls = tls_delivery.tls_delivery(scratch, 500 if QUICK else 2000)
    print("acceptance over STARTTLS:", file=sys.stderr)
    import tls_acceptance  # bench/tls_acceptance.py
    starttls = tls_acceptance.tls_acceptance(scratch, 500 if QUICK else 2000)
    text = report(machine, rows, fsyncs, lat, deliver, mem) + "\n" + nodes.report(
        node_rows, messages=node_count) + "\n" + tls_delivery.report(tls) + "\n" + \
        tls_acceptance.report(starttls)
    with open(os.path.join(results, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(results, "latest.json"), "w") as f:
        json.dump({"machine": machine, "acceptance": rows, "fsyncs": fsyncs, "latency": lat,
                   "delivery": deliver, "memory": mem, "shared_queue": node_rows,
                   "tls_delivery": tls, "starttls": starttls}, f, indent=1)
    print(text)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
