#!/usr/bin/env python3
"""Delivery over verified TLS (issue 15): N queued 10-KiB messages relayed to the same
receiver, a petrel with STARTTLS that discards what it takes, its certificate (for
mx.bench.test) from a CA made here with openssl. petrel with `[[delivery.tls_policy]]` level
verify (match mx.bench.test, the CA as delivery.ca_file) against Postfix with
smtp_tls_security_level = verify (the same match and CA, through smtp_tls_policy_maps) and
each one's reuse: petrel keeps clean sessions per destination; Postfix gets
smtp_tls_connection_reuse = yes (tlsproxy) and a TLS session cache. Reported: messages per
second, and TLS handshakes per message (the receiver's TLS sessions over messages).

Run by bench/run.sh (ONLY=tls bench/run.sh for this part alone). Talks to 127.0.0.1 only."""

import os
import re
import subprocess
import sys
import tempfile
import time

import bench

HOST = "mx.bench.test"


def make_certificates(directory):
    """A CA and a certificate for HOST signed by it: (ca.pem, cert.pem, key.pem)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, cwd=directory,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "key.pem", "-out", "cert.csr", "-subj", f"/CN={HOST}")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{HOST}\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "san.ext")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        os.chmod(os.path.join(directory, name), 0o644)
    return tuple(os.path.join(directory, n) for n in ("ca.pem", "cert.pem", "key.pem"))


class Receiver(bench.Petrel):
    """A petrel on `port` with STARTTLS that discards what it takes."""

    def __init__(self, scratch, port, certs):
        _, cert, key = certs
        self.fixed_port = port
        super().__init__(scratch, relayhost="discard:", max_connections=5000,
                         extra=f'[tls]\ncertificate = "{cert}"\nprivate_key = "{key}"\n')

    def tls_sessions(self):
        """Distinct sessions that took a message over TLS (from the 'queued' log lines)."""
        self.log.flush()
        sessions = set()
        with open(os.path.join(self.dir, "log")) as f:
            for line in f:
                if "queued" not in line or "TLSv1" not in line:
                    continue
                match = re.search(r'session"?[=:]\s*"?(\d+)', line)
                if match:
                    sessions.add(int(match.group(1)))
        return len(sessions)


def receiver_on(scratch, port, certs):
    # bench.Petrel picks its own port; the receiver must be on the one the senders know.
    real_free_port = bench.free_port
    bench.free_port = lambda: port
    try:
        return Receiver(scratch, port, certs)
    finally:
        bench.free_port = real_free_port


def petrel_over_tls(scratch, count, certs):
    ca, _, _ = certs
    port = bench.free_port()
    policy = (f'ca_file = "{ca}"\n\n[[delivery.tls_policy]]\ndomain = "127.0.0.1"\n'
              f'level = "verify"\nmatch = ["{HOST}"]\n')
    sender = bench.Petrel(scratch, relayhost=f"[127.0.0.1]:{port}", delivery_extra=policy)
    bench.smtp_source(sender.port, 20, count, 10, True)
    deadline = time.time() + 120
    while sender.queue_count() != count and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the first attempts (no receiver yet) end
    receiver = receiver_on(scratch, port, certs)
    bench.drop_caches_of_writes()
    start = time.time()
    subprocess.run([bench.PETREL, "queue", "flush", "--config", sender.config], check=True,
                   capture_output=True)
    deadline = time.time() + 600
    while sender.queue_count() > 0 and time.time() < deadline:
        time.sleep(0.05)
    rate = count / (time.time() - start)
    left = sender.queue_count()
    sender.stop()
    handshakes = receiver.tls_sessions()
    receiver.stop()
    return {"per_second": rate, "handshakes_per_message": handshakes / count, "left": left}


def postfix_over_tls(scratch, count, certs):
    ca, _, _ = certs
    port = bench.free_port()
    receiver = receiver_on(scratch, port, certs)
    extra = "\n".join([
        "smtp_tls_security_level = verify",
        f"smtp_tls_CAfile = {ca}",
        f"smtp_tls_policy_maps = inline:{{ {{[127.0.0.1]:{port} = verify match={HOST}}} }}",
        "smtp_tls_connection_reuse = yes",
        "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache",
    ])
    postfix = bench.Postfix(scratch, "sink", port, extra_main_cf=extra)
    postfix.run("hold")
    bench.smtp_source(postfix.port, 20, count, 10, True)
    time.sleep(1)
    bench.drop_caches_of_writes()
    start = time.time()
    postfix.run("release")
    postfix.run("wait-empty")
    rate = count / (time.time() - start)
    postfix.stop()
    handshakes = receiver.tls_sessions()
    receiver.stop()
    return {"per_second": rate, "handshakes_per_message": handshakes / count}


def tls_delivery(scratch, count):
    directory = tempfile.mkdtemp(prefix="tls-", dir=scratch)
    os.chmod(directory, 0o755)
    certs = make_certificates(directory)
    return {"petrel": petrel_over_tls(scratch, count, certs),
            "postfix": postfix_over_tls(scratch, count, certs), "messages": count}


def report(result):
    p, q = result["petrel"], result["postfix"]
    return (f"Delivery over verified TLS ({result['messages']} queued 10-KiB messages to a "
            f"petrel receiver with STARTTLS; petrel level verify, Postfix "
            f"smtp_tls_security_level = verify with connection reuse and session cache): petrel "
            f"{p['per_second']:.0f}/s with {p['handshakes_per_message']:.3f} TLS handshakes "
            f"per message, Postfix {q['per_second']:.0f}/s with "
            f"{q['handshakes_per_message']:.3f}; ratio {p['per_second'] / q['per_second']:.2f}\n")


def main():
    results = os.path.join(bench.HERE, "results")
    os.makedirs(results, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="tls-run-", dir=results)
    os.chmod(scratch, 0o755)
    result = tls_delivery(scratch, 500 if bench.QUICK else 2000)
    text = report(result)
    print(text)
    print(result, file=sys.stderr)


if __name__ == "__main__":
    main()
