#!/usr/bin/env bash
# Count the durability syscalls Postfix makes per accepted message.
#
#   count-fsync.sh run DIR SMTP_PORT [MESSAGES] [SESSIONS] [SIZE]
#       starts a discard-mode instance under "strace -f" (instance.sh with
#       STRACE_OUT), sends MESSAGES (default 1000) messages of SIZE bytes
#       (default 10240) with smtp-source -d over SESSIONS (default 10)
#       connections, waits for the queue to drain, stops the instance and
#       prints the per-daemon syscall table.
#   count-fsync.sh summarize STRACE_FILE [MESSAGES]
#       prints the table for an existing trace.
#
# Only calls made after the SMTP port opened are counted for "run" (start-up
# is subtracted by cutting the trace at that point).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

summarize() { # FILE [MESSAGES] [SKIP_LINES]
	local file=$1 n=${2:-0} skip=${3:-0}
	awk -v n="$n" -v skip="$skip" '
	# pid -> program, from execve lines (master forks, child execs daemon)
	/ execve\("/ {
		p = $2; sub(/^execve\("/, "", p); sub(/".*/, "", p)
		sub(/.*\//, "", p); prog[$1] = p
	}
	NR <= skip { next }
	{
		call = $2
		if (call ~ /^<\.\.\./) next		# resumed half of a call
		sub(/\(.*/, "", call)
		if (call == "execve" || call == "+++" || call == "---") next
		who = ($1 in prog) ? prog[$1] : "pid" $1
		cnt[who " " call]++; tot[call]++
	}
	END {
		printf "%-18s %-16s %8s %10s\n", "program", "syscall", "count", "per msg"
		for (k in cnt) {
			split(k, a, " ")
			printf "%-18s %-16s %8d %10s\n", a[1], a[2], cnt[k], \
			    n ? sprintf("%.3f", cnt[k] / n) : "-"
		}
		for (c in tot)
			printf "%-18s %-16s %8d %10s\n", "TOTAL", c, tot[c], \
			    n ? sprintf("%.3f", tot[c] / n) : "-"
	}' "$file" | { IFS= read -r h; echo "$h"; sort; }
}

case ${1:-} in
summarize)
	shift; (( $# >= 1 )) || { echo "usage: $0 summarize FILE [MESSAGES]" >&2; exit 2; }
	summarize "$1" "${2:-0}"
	;;
run)
	shift; (( $# >= 2 )) || { echo "usage: $0 run DIR SMTP_PORT [MESSAGES] [SESSIONS] [SIZE]" >&2; exit 2; }
	DIR=$1 PORT=$2 N=${3:-1000} S=${4:-10} L=${5:-10240}
	OUT=$DIR/strace.txt
	rm -f "$OUT"
	STRACE_OUT=$OUT "$HERE/instance.sh" start discard "$DIR" "$PORT"
	trap '"$HERE/instance.sh" stop "$DIR" >/dev/null 2>&1 || true' EXIT
	sleep 1
	skip=$(wc -l <"$OUT")
	smtp-source -d -l "$L" -m "$N" -s "$S" -f bench@bench.test -t user@bench.test "127.0.0.1:$PORT"
	for _ in $(seq 300); do "$HERE/instance.sh" queue-empty "$DIR" && break; sleep 0.1; done
	"$HERE/instance.sh" stop "$DIR"
	trap - EXIT
	echo "messages: $N (size $L, $S sessions); trace: $OUT"
	summarize "$OUT" "$N" "$skip"
	;;
*)
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
