#!/usr/bin/env python3
"""Memory per idle session after STARTTLS (issue 20, item 5): bench/loadgen idle opens N
sessions against a petrel with [tls] (greeting, EHLO, STARTTLS with TLS 1.3, EHLO again, then
nothing) and holds them; reported is petrel's resident memory growth over N, beside the same
for N plain sessions in the same run. N is what this machine's descriptor limit allows (the
container's hard limit is 20,000: two descriptors a session on petrel's side), at most 10,000.

Run: python3 bench/tls_memory.py (after bench/run.sh has built petrel and bench/loadgen).
Talks to 127.0.0.1 only."""

import os
import resource
import subprocess
import sys
import tempfile
import time

import bench
import tls_delivery


def idle_growth(scratch, connections, extra, starttls):
    petrel = bench.Petrel(scratch, max_connections=connections + 1000, extra=extra)
    try:
        time.sleep(1)
        before = petrel.rss_kib()
        env = {**os.environ, "LOADGEN_STARTTLS": "1" if starttls else "0"}
        idle = subprocess.Popen([bench.LOADGEN, "idle", f"127.0.0.1:{petrel.port}",
                                 str(connections), "20"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        line = idle.stdout.readline().strip()
        time.sleep(2)
        after = petrel.rss_kib()
        idle.wait(180)
        return {"open": line, "errors": idle.returncode, "before_kib": before,
                "after_kib": after, "kib_per_session": (after - before) / connections}
    finally:
        petrel.stop()


def main():
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="tlsmem-", dir=results)
    os.chmod(scratch, 0o755)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    connections = 10_000
    if hard != resource.RLIM_INFINITY:
        connections = min(connections, (hard - 256) // 2 - 100)
    _, cert, key = tls_delivery.make_certificates(tempfile.mkdtemp(prefix="c-", dir=scratch))
    tls = f'[tls]\ncertificate = "{cert}"\nprivate_key = "{key}"\n'
    rows = []
    for label, starttls in (("plain", False), ("after STARTTLS", True)):
        row = idle_growth(scratch, connections, tls, starttls)
        rows.append((label, row))
        print(f"  {label}: {row}", file=sys.stderr)
    lines = [f"Idle sessions ({connections}, greeting and EHLO done), petrel's resident memory "
             "growth per session:", "", "| sessions | KiB per session | RSS before -> after "
             "(KiB) | loadgen |", "|---|---|---|---|"]
    for label, row in rows:
        lines.append(f"| {label} | {row['kib_per_session']:.1f} | {row['before_kib']} -> "
                     f"{row['after_kib']} | {row['open']} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
