"""The shared queue (issue 8): throughput of 1, 2 and 3 petrel nodes on one PostgreSQL, on this
machine. Imported by bench.py (and runnable alone: python3 bench/nodes.py, after run.sh has
built petrel).

A private PostgreSQL cluster is made with initdb in the scratch directory (as the postgres
user when run as root) and listens on a free 127.0.0.1 port only; each node count gets a
fresh database. smtp-source drives every node at once (50 clients in all, split between the
nodes, 10 KiB messages, many per connection); each node delivers to `discard:`. Reported:
messages/s accepted (the 250 after the commit) and messages/s through (accepted and then
delivered and archived by the nodes, until the shared queue is empty), the store transactions
per message (the nodes' /metrics) and all commits per message in the database
(pg_stat_database.xact_commit: stores, claims, archives), median of REPEATS.
"""

import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench

# NODES=1 python3 bench/nodes.py: only one node count.
# AB="old=PATH,new=PATH" python3 bench/nodes.py: one node, the binaries alternating.
NODE_COUNTS = [int(n) for n in os.environ.get("NODES", "1 2 3").split()]


def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    return os.path.dirname(found[-1])


class Cluster:
    def __init__(self, scratch):
        self.bin = pg_bin()
        self.as_postgres = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=scratch)
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = bench.free_port()
        self.run("initdb", "-D", self.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--locale=C", "--no-instructions")
        self.run("pg_ctl", "-D", self.dir, "-l", os.path.join(self.dir, "server.log"), "-w",
                 "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                       "-c max_connections=200", "start")

    def run(self, tool, *args):
        command = [os.path.join(self.bin, tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--"] + command
        subprocess.run(command, check=True, cwd="/tmp", stdout=subprocess.DEVNULL)

    def create(self, name):
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def commits(self, name):
        """Transactions committed in database `name` so far (pg_stat_database.xact_commit;
        the statistics reach it within a second of each commit)."""
        command = [os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", "postgres", "-d", name, "-Atc",
                   f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'"]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--"] + command
        out = subprocess.run(command, cwd="/tmp", capture_output=True, text=True, check=True)
        return int(out.stdout.strip() or 0)

    def stop(self):
        self.run("pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop")


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def store_transactions(petrel):
    """The store transactions a node has committed (its /metrics)."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{petrel.http_port}/metrics",
                                  timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith('petrel_queue_database_operations_total{operation="store"}'):
            return int(float(line.split()[-1]))
    return 0


def one_run(scratch, cluster, nodes, run_number, messages, clients):
    name = f"bench_{nodes}_{run_number}"
    url = cluster.create(name)
    # Read with the nodes stopped on both sides: a backend reports its commits to
    # pg_stat_database only every so often while its connection stays open (up to 10 s
    # idle in PostgreSQL 15), at once when it closes. Start-up and shutdown count too (a
    # few dozen transactions in all).
    commits_before = cluster.commits(name)
    ports = [bench.free_port() for _ in range(nodes)]
    petrels = [bench.Petrel(scratch, extra=f"""[http]
address = "127.0.0.1:{ports[i]}"
[queue]
backend = "postgres"
postgres_url = "{url}"
node_name = "node{i}"
""") for i in range(nodes)]
    for petrel, port in zip(petrels, ports):
        petrel.http_port = port
    try:
        bench.drop_caches_of_writes()
        errors = []

        def drive(petrel, count, sessions):
            try:
                bench.smtp_source(petrel.port, sessions, count, 10, True)
            except Exception as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=drive, args=(p, m, c))
                   for p, m, c in zip(petrels, split(messages, nodes), split(clients, nodes))]
        start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = time.time() - start
        if errors:
            raise errors[0]
        stores = sum(store_transactions(p) for p in petrels)
        polls = wait_empty(petrels[0])
        through = time.time() - start
    finally:
        for petrel in petrels:
            petrel.stop()
    time.sleep(1)
    # Each poll of /metrics lists the queue: one read-only transaction, not the nodes' work.
    commits = cluster.commits(name) - commits_before - polls
    return messages / accepted, messages / through, stores / messages, commits / messages


def wait_empty(petrel, timeout=120):
    """Polls the node's /metrics every 20 ms until the shared queue is empty (one listing per
    poll; `petrel queue list` read every envelope and size at each poll, a load on the
    database while it delivered). Returns how many polls it made."""
    deadline = time.time() + timeout
    polls = 1
    while bench.queued_by_metrics(petrel.http_port) != 0 and time.time() < deadline:
        time.sleep(0.02)
        polls += 1
    return polls


def ab(scratch, binaries, messages=2000, clients=50):
    """The same run for several petrel binaries, alternating (AB="old=PATH,new=PATH"): one
    node, median of REPEATS each."""
    cluster = Cluster(scratch)
    runs = {name: [] for name, _ in binaries}
    postfix_runs = []
    try:
        for r in range(bench.REPEATS):
            for name, path in binaries:
                bench.PETREL = path
                runs[name].append(one_run(scratch, cluster, 1, f"{name}_{r}", messages, clients))
            postfix_runs.append(postfix_run(scratch, messages, clients))
    finally:
        cluster.stop()
    lines = [f"One node on PostgreSQL, {messages} messages of 10 KiB, {clients} clients, many per "
             f"connection, discard delivery, the binaries alternating, median of {bench.REPEATS}:",
             "", "| binary | accepted msg/s | accepted and delivered msg/s | store commits per "
             "message | all commits per message (xact_commit) |", "|---|---|---|---|---|"]
    postfix = statistics.median(postfix_runs)
    for name, _ in binaries:
        median = [statistics.median(run[i] for run in runs[name]) for i in range(4)]
        lines.append(f"| {name} | {median[0]:.0f} ({median[0] / postfix:.2f}x Postfix) | "
                     f"{median[1]:.0f} | {median[2]:.3f} | {median[3]:.2f} |")
    lines.append(f"| Postfix (its own queue, discard) | {postfix:.0f} | | | |")
    return "\n".join(lines) + "\n"


def postfix_run(scratch, messages, clients):
    """Postfix accepting the same load into its own queue (delivery to discard)."""
    postfix = bench.Postfix(scratch)
    try:
        start = time.time()
        bench.smtp_source(postfix.port, clients, messages, 10, True)
        accepted = messages / (time.time() - start)
        bench.wait_drained(postfix, timeout=120)
        return accepted
    finally:
        postfix.stop()


def shared_queue(scratch, messages=2000, clients=50):
    cluster = Cluster(scratch)
    rows = []
    try:
        for nodes in NODE_COUNTS:
            runs = [one_run(scratch, cluster, nodes, r, messages, clients)
                    for r in range(bench.REPEATS)]
            accepted = statistics.median(r[0] for r in runs)
            through = statistics.median(r[1] for r in runs)
            stores = statistics.median(r[2] for r in runs)
            commits = statistics.median(r[3] for r in runs)
            rows.append({"nodes": nodes, "accepted_per_s": accepted, "through_per_s": through,
                         "store_commits_per_message": stores, "commits_per_message": commits})
            print(f"  {nodes} node(s) on one PostgreSQL: accepted {accepted:.0f}/s, "
                  f"through {through:.0f}/s, store commits/msg {stores:.3f}, "
                  f"all commits/msg {commits:.2f}", file=sys.stderr)
    finally:
        cluster.stop()
    return rows


def report(rows, messages=2000, clients=50):
    lines = [f"Shared queue on PostgreSQL ({messages} messages of 10 KiB, {clients} clients in "
             "all split between the nodes, many per connection, discard delivery):", "",
             "| nodes | accepted msg/s | accepted and delivered msg/s | store commits per message | "
             "all commits per message (xact_commit) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nodes']} | {r['accepted_per_s']:.0f} | {r['through_per_s']:.0f} | "
                     f"{r['store_commits_per_message']:.3f} | {r['commits_per_message']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="nodes-", dir=results)
    os.chmod(scratch, 0o755)
    count = 500 if bench.QUICK else 2000
    if os.environ.get("AB"):
        pairs = [item.split("=", 1) for item in os.environ["AB"].split(",")]
        table = ab(scratch, pairs, messages=count)
    else:
        table = report(shared_queue(scratch, messages=count), messages=count)
    with open(os.path.join(results, "nodes.md"), "w") as f:
        f.write(table)
    print(table)
    shutil.rmtree(scratch, ignore_errors=True)
