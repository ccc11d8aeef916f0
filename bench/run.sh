#!/usr/bin/env bash
# One command for the benchmark of issue 6: petrel against Postfix on this machine, same run.
#   bench/run.sh            the whole table (about 10 minutes on 2 cores)
#   QUICK=1 bench/run.sh    a smaller matrix (10 KiB only, fewer messages)
#   REPEATS=5 bench/run.sh  more runs per point (the median is reported)
#   ONLY=nodes bench/run.sh only the shared queue: 1, 2 and 3 nodes on one PostgreSQL
#   ONLY=tls bench/run.sh   only delivery over verified TLS, petrel against Postfix
#   ONLY=starttls bench/run.sh  only acceptance over STARTTLS, petrel against Postfix
#   ONLY=peers bench/run.sh only the peers: petrel, Postfix, chasquid and OpenSMTPD, 10 KiB,
#                           with smtp-sink beside them as the ceiling
#   ONLY=door bench/run.sh  only the cost of port 25's checks for a client that passed them
#   ONLY=sessions bench/run.sh  100,000 idle sessions (and 10,000 after STARTTLS) in a KVM
#                           guest, whose descriptor limit can be raised (bench/sessions_vm.sh)
# Installs what it needs on Debian (Postfix for smtp-source, smtp-sink and the peer, strace,
# PostgreSQL for the shared queue),
# builds petrel and bench/loadgen in release mode, then runs bench/bench.py, which prints the
# markdown table (also in bench/results/latest.md). Needs root (Postfix's master does).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! command -v smtp-source >/dev/null || ! command -v strace >/dev/null \
    || ! command -v openssl >/dev/null || ! command -v ip >/dev/null \
    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  $sudo apt-get update -q
  # The packaged PostgreSQL service is not needed (bench/nodes.py makes its own cluster).
  # openssl makes the TLS rows' certificates; iproute2 brings up loopback in the peers'
  # network namespace.
  $sudo apt-get install -y -q --no-install-recommends postfix strace python3 postgresql \
    openssl iproute2
fi
cargo build --release --locked -p petrel
(cd bench/loadgen && cargo build --release --locked)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "${ONLY:-}" = nodes ]; then exec python3 bench/nodes.py; fi
if [ "${ONLY:-}" = tls ]; then exec python3 bench/tls_delivery.py; fi
if [ "${ONLY:-}" = starttls ]; then exec python3 bench/tls_acceptance.py; fi
if [ "${ONLY:-}" = peers ]; then exec python3 bench/peers.py; fi
if [ "${ONLY:-}" = sessions ]; then exec bash bench/sessions_vm.sh; fi
if [ "${ONLY:-}" = door ]; then
  # Debian's python3 with its dnspython: door.py serves the checks' DNS zone with it.
  /usr/bin/python3 -c "import dns.message" 2>/dev/null \
    || $sudo apt-get install -y -q --no-install-recommends python3-dnspython
  exec /usr/bin/python3 bench/door.py
fi
exec python3 bench/bench.py
