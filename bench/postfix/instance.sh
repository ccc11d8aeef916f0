#!/usr/bin/env bash
# Private, throw-away Postfix instance on 127.0.0.1 for petrel benchmarks.
#
#   instance.sh start MODE DIR SMTP_PORT [SINK_PORT]   MODE = discard | sink
#   instance.sh stop DIR
#   instance.sh hold DIR          new mail goes to the hold queue
#   instance.sh release DIR       stop holding (reload), print release_start=EPOCH,
#                                 then hold queue -> deferred + postqueue -f
#   instance.sh queue-empty DIR   exit 0 iff no message is queued
#   instance.sh wait-empty DIR [TIMEOUT]  poll until empty, print empty_at=EPOCH
#   instance.sh status DIR        exit 0 iff the master is running
#
# DIR (absolute) is a scratch directory; it gets DIR/etc (rendered main.cf +
# master.cf), DIR/queue (queue_directory) and DIR/data (data_directory,
# maillog). Must run as root (Postfix's master needs it); the daemons drop to
# mail_owner. Nothing outside DIR is written. Only the master started from
# DIR/etc is ever stopped (via "postfix -c DIR/etc stop").
#
# Environment: PROCESS_LIMIT (default 200), PF_HOSTNAME (mx.bench.test),
#              MAIL_OWNER (postfix), SETGID_GROUP (postdrop),
#              START_TIMEOUT seconds (default 20),
#              STRACE_OUT=FILE: run the whole instance under strace -f, writing
#              FILE (syscalls: STRACE_EVENTS); see bench/postfix/count-fsync.sh.
#              EXTRA_MAIN_CF: "name = value" lines set in the rendered main.cf
#              (the e2e tests' STARTTLS settings, for example).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROCESS_LIMIT=${PROCESS_LIMIT:-200}
PF_HOSTNAME=${PF_HOSTNAME:-mx.bench.test}
MAIL_OWNER=${MAIL_OWNER:-postfix}
SETGID_GROUP=${SETGID_GROUP:-postdrop}
START_TIMEOUT=${START_TIMEOUT:-20}
HOLD_ON="check_client_access static:HOLD"
STRACE_EVENTS=${STRACE_EVENTS:-execve,fsync,fdatasync,sync_file_range,syncfs,sync,msync,rename,renameat,renameat2}

die() { echo "instance.sh: $*" >&2; exit 1; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

abs_dir() {
	[[ $1 == /* ]] || die "DIR must be an absolute path: $1"
	printf '%s\n' "${1%/}"
}

port_ok() { [[ $1 =~ ^[0-9]+$ ]] && (( $1 > 0 && $1 < 65536 )) || die "bad port: $1"; }

# 0 if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

master_pid() {
	local f=$1/queue/pid/master.pid pid
	[[ -r $f ]] || return 1
	pid=$(tr -dc 0-9 <"$f")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

pf() { local d=$1; shift; postfix -c "$d/etc" "$@"; }

render() { # render TEMPLATE OUT
	sed -e "s|@CONFIG_DIR@|$DIR/etc|g" \
	    -e "s|@QUEUE_DIR@|$DIR/queue|g" \
	    -e "s|@DATA_DIR@|$DIR/data|g" \
	    -e "s|@SMTP_PORT@|$SMTP_PORT|g" \
	    -e "s|@SINK_PORT@|$SINK_PORT|g" \
	    -e "s|@HOSTNAME@|$PF_HOSTNAME|g" \
	    -e "s|@MAIL_OWNER@|$MAIL_OWNER|g" \
	    -e "s|@SETGID_GROUP@|$SETGID_GROUP|g" \
	    -e "s|@PROCESS_LIMIT@|$PROCESS_LIMIT|g" \
	    -e "s|@MODE@|$MODE|g" \
	    -e "s|@TRANSPORT@|$TRANSPORT|g" \
	    -e "s|@RELAYHOST@|$RELAYHOST|g" \
	    -e "s|@HOLD_RESTRICTION@||g" \
	    "$1" >"$2"
	if grep -n '@[A-Z_]*@' "$2" >&2; then die "unrendered placeholder in $2"; fi
}

cmd_start() {
	(( $# >= 3 )) || usage
	MODE=$1 DIR=$(abs_dir "$2") SMTP_PORT=$3 SINK_PORT=${4:-}
	port_ok "$SMTP_PORT"
	case $MODE in
	discard) TRANSPORT="discard:" RELAYHOST="" ;;
	sink)	[[ -n $SINK_PORT ]] || die "sink mode needs SINK_PORT"
		port_ok "$SINK_PORT"
		TRANSPORT="smtp:[127.0.0.1]:$SINK_PORT" RELAYHOST="[127.0.0.1]:$SINK_PORT" ;;
	*)	die "MODE must be discard or sink" ;;
	esac
	[[ $(id -u) == 0 ]] || die "must run as root"
	id "$MAIL_OWNER" >/dev/null 2>&1 || die "no user $MAIL_OWNER (install postfix)"
	if pid=$(master_pid "$DIR"); then die "already running (master pid $pid)"; fi
	if port_open "$SMTP_PORT"; then die "127.0.0.1:$SMTP_PORT already in use"; fi

	mkdir -p "$DIR/etc" "$DIR/queue" "$DIR/data"
	chmod 755 "$DIR" "$DIR/etc" "$DIR/queue"
	chown root:root "$DIR/etc" "$DIR/queue"
	chown "$MAIL_OWNER" "$DIR/data"; chmod 700 "$DIR/data"
	render "$HERE/main.cf" "$DIR/etc/main.cf"
	render "$HERE/master.cf" "$DIR/etc/master.cf"
	local setting
	while IFS= read -r setting; do
		[[ -n $setting ]] && postconf -c "$DIR/etc" -e "$setting"
	done <<<"${EXTRA_MAIN_CF:-}"
	: >"$DIR/data/maillog"; chown "$MAIL_OWNER" "$DIR/data/maillog"

	# "check" runs post-install create-missing: creates the queue subdirs
	# with the right owners/modes (incl. maildrop/public group postdrop).
	pf "$DIR" check
	# A benchmark wants an empty queue: drop leftovers of an earlier run.
	postsuper -c "$DIR/etc" -d ALL 2>/dev/null || true
	if [[ -n ${STRACE_OUT:-} ]]; then
		# Syscall tracing for the whole instance: run the master in the
		# foreground ("start-fg" = master -s) under strace -f, so every
		# daemon it forks later (smtpd, cleanup, qmgr, ...) is traced.
		command -v strace >/dev/null || die "strace not installed"
		setsid strace -f -qq -o "$STRACE_OUT" -e trace="$STRACE_EVENTS" \
			postfix -c "$DIR/etc" start-fg </dev/null >/dev/null 2>&1 &
		echo $! >"$DIR/strace.pid"
	else
		pf "$DIR" start
	fi

	local t=$((START_TIMEOUT * 10))
	until port_open "$SMTP_PORT"; do
		(( --t > 0 )) || { pf "$DIR" stop || true; die "port $SMTP_PORT not open after ${START_TIMEOUT}s"; }
		sleep 0.1
	done
	echo "postfix ($MODE) on 127.0.0.1:$SMTP_PORT, master pid $(master_pid "$DIR"), config $DIR/etc"
}

cmd_stop() {
	(( $# == 1 )) || usage
	DIR=$(abs_dir "$1")
	local pid
	pid=$(master_pid "$DIR") || { echo "not running"; return 0; }
	pf "$DIR" stop
	local t=$((START_TIMEOUT * 10))
	while kill -0 "$pid" 2>/dev/null; do
		(( --t > 0 )) || die "master $pid still alive after ${START_TIMEOUT}s"
		sleep 0.1
	done
	if [[ -r $DIR/strace.pid ]]; then	# wait for strace to flush
		local spid; spid=$(<"$DIR/strace.pid")
		while kill -0 "$spid" 2>/dev/null; do
			(( --t > 0 )) || die "strace $spid still alive"
			sleep 0.1
		done
		rm -f "$DIR/strace.pid"
	fi
	echo "stopped (master pid $pid)"
}

set_hold() { # DIR VALUE
	postconf -c "$1/etc" -e "bench_hold_restriction = $2"
	pf "$1" reload
	# reload is asynchronous: old smtpd processes finish their session
	# with the old setting; give idle ones time to exit.
	sleep 1
}

cmd_hold() {
	(( $# == 1 )) || usage
	DIR=$(abs_dir "$1")
	master_pid "$DIR" >/dev/null || die "not running"
	set_hold "$DIR" "$HOLD_ON"
}

cmd_release() {
	(( $# == 1 )) || usage
	DIR=$(abs_dir "$1")
	master_pid "$DIR" >/dev/null || die "not running"
	# 1. Stop holding new mail. "reload" restarts qmgr too, so do it
	#    before the timed part and let the new qmgr come up.
	set_hold "$DIR" ""
	# 2. Timed part starts here (printed for the caller).
	echo "release_start=$(date +%s.%N)"
	# hold -> deferred queue (a rename per message), then make qmgr scan
	# the deferred queue now instead of after queue_run_delay (300s).
	postsuper -c "$DIR/etc" -H ALL
	postqueue -c "$DIR/etc" -f
}

queue_empty() {
	local q=$1/queue d
	# Upstream queues first, active last: a file moving hold -> deferred
	# -> active while we look is then always seen somewhere.
	for d in maildrop hold incoming deferred active; do
		[[ -d $q/$d ]] || continue
		[[ -z $(find "$q/$d" -type f -print -quit) ]] || return 1
	done
	return 0
}

cmd_queue_empty() {
	(( $# == 1 )) || usage
	DIR=$(abs_dir "$1")
	queue_empty "$DIR"
}

# wait-empty DIR [TIMEOUT]: poll (20 ms) until the queue is empty; print the
# epoch time at which it was seen empty. Exit 1 on timeout (default 60 s).
cmd_wait_empty() {
	(( $# >= 1 )) || usage
	DIR=$(abs_dir "$1")
	local t=$(( ${2:-60} * 50 ))
	until queue_empty "$DIR"; do
		(( --t > 0 )) || { echo "queue not empty after ${2:-60}s" >&2; return 1; }
		sleep 0.02
	done
	echo "empty_at=$(date +%s.%N)"
}

cmd_status() {
	(( $# == 1 )) || usage
	DIR=$(abs_dir "$1")
	master_pid "$DIR"
}

(( $# >= 1 )) || usage
sub=$1; shift
case $sub in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
hold) cmd_hold "$@" ;;
release) cmd_release "$@" ;;
queue-empty) cmd_queue_empty "$@" ;;
wait-empty) cmd_wait_empty "$@" ;;
status) cmd_status "$@" ;;
*) usage ;;
esac
