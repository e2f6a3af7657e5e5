#!/usr/bin/env bash
# Delivery throughput, worker memory, capture cost and many streams (issue 13),
# measured side by side in one run against nginx on loopback.
#
#     bench/delivery.sh
#
# Starts its own throw-away cluster (test/pgcluster.py; as root the server
# runs as user postgres) and nginx (Debian's, scripts/install-deps --bench)
# on 127.0.0.1 with two locations: /raw answers 200 to any POST, /firehose
# answers the Firehose protocol's success body, echoing the request's
# X-Amz-Firehose-Request-Id.  nginx reads and discards the body, so it does
# not limit the test.  Rows:
#
#   floor     one curl upload of a 64 MB body into /raw (best of 3, after
#             five uploads not counted, which warm a newly booted VM's
#             socket buffers): the
#             loopback limit the stream's throughput is compared with;
#             measured again just before the raw and firehose rows (after
#             their records are put), each row's ratio is to its own floor
#   raw       RAW_RECORDS (2M) records of 134 bytes put while the stream
#             is paused, then resumed: format raw, buffer_size 32 MB,
#             max_concurrency 4; time from resume to flush() done
#             and the time the worker was runnable but waiting for a CPU
#             (/proc/<pid>/schedstat): on a loaded machine that, not the
#             network, is what a worker using less CPU than wall time waits for
#             Each row runs on a newly started worker, except the raw row's
#             second run.  The raw row runs twice: the first time the worker
#             maps each shared buffer page it reads for the first time, and
#             takes fresh memory for its parts, as a freshly started worker
#             does; the second shows a worker that has run a while
#   firehose  FH_RECORDS (1M) records, format firehose (base64 JSON); then
#             OpenSSL's base64 of as many 134-byte records alone
#             (bench/base64.c): with the raw row's CPU a record (its second
#             run) it bounds this row, printed as a ratio to its floor
#   raw4k     the raw row once more, on the same cluster restarted with
#             huge_pages = off (skipped when the shared memory was not in
#             huge pages anyway): what the huge pages are worth
#   rss       the worker's peak RSS (VmHWM of /proc/<pid>/status, reset with
#             clear_refs before each case) and its peak private memory
#             (RssAnon sampled every 50 ms: VmHWM also counts the shared
#             buffers the worker touched); then two backlogs of 1 kB records
#             (BACKLOG_SMALL_MB and BACKLOG_LARGE_MB, 100 and 1000) put while
#             paused, resumed, RSS watched until delivered: memory must not
#             grow with the backlog
#   capture   pgbench UPDATE of pgbench_accounts (2 clients), alternating
#             rounds with and without firehose.capture_table() (the stream
#             paused: the trigger's cost, not delivery's)
#   streams   STREAMS (1000) streams, buffer_interval 1 s, each receiving a
#             record a second on average (pgbench -R); the worker's CPU and
#             commit-to-receipt latency (bench/latency.py's receiver); and
#             the worker's CPU with all of them idle
#
# A benchmark: prints numbers next to the issue's goals, asserts nothing;
# fails only when something cannot run.  Environment: RAW_RECORDS,
# FH_RECORDS, BACKLOG_SMALL_MB, BACKLOG_LARGE_MB, CAPTURE_ROUNDS (3),
# HUGE_PAGES (try; off: none), HUGE_POOL_PAGES (100),
# CAPTURE_SECONDS (10), SHARED_BUFFERS (128MB), STREAMS, STREAM_SECONDS (30), ROWS (rows to run,
# default "raw firehose raw4k backlog capture streams"), PERF=1 (perf record
# -g of the worker during the raw and firehose rows, into bench/out/),
# KEEP_LOG=FILE (the server log is copied there before the cluster goes).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
PGBIN=${FIREHOSE_PGBIN:-/usr/lib/postgresql/15/bin}
RAW_RECORDS=${RAW_RECORDS:-2000000}
FH_RECORDS=${FH_RECORDS:-1000000}
BACKLOG_SMALL_MB=${BACKLOG_SMALL_MB:-100}
BACKLOG_LARGE_MB=${BACKLOG_LARGE_MB:-1000}
CAPTURE_ROUNDS=${CAPTURE_ROUNDS:-3}
CAPTURE_SECONDS=${CAPTURE_SECONDS:-10}
STREAMS=${STREAMS:-1000}
STREAM_SECONDS=${STREAM_SECONDS:-30}
ROWS=${ROWS:-raw firehose raw4k backlog capture streams}
mkdir -p bench/out
HZ=$(getconf CLK_TCK)
NGINX=${NGINX:-/usr/sbin/nginx}

[ -x "$NGINX" ] || {
	echo "delivery.sh: $NGINX missing (scripts/install-deps --bench)" >&2
	exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/firehose-delivery.XXXXXX")
chmod 755 "$tmp"
nginx_pid="" receiver_pid="" sampler_pid=""
cleanup() {
	set +e
	for p in $sampler_pid $receiver_pid $nginx_pid; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -n "${KEEP_LOG:-}" ] && "$PY" test/pgcluster.py log --dir "$tmp/pg" >"$KEEP_LOG" 2>/dev/null
	"$PY" test/pgcluster.py stop --dir "$tmp/pg" --mode immediate --rm >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
now() { date +%s.%N; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# -- nginx -------------------------------------------------------------------------
NPORT=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	client_max_body_size 0;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$NPORT;
		location /raw { return 200; }
		location /firehose {
			default_type application/json;
			return 200 '{"requestId":"\$http_x_amz_firehose_request_id","timestamp":\$msec}';
		}
	}
}
EOF
"$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" 2>"$tmp/nginx/stderr" &
nginx_pid=$!
for _ in $(seq 100); do curl -fs -o /dev/null -d x "http://127.0.0.1:$NPORT/raw" && break; sleep 0.05; done
curl -fs -o /dev/null -d x "http://127.0.0.1:$NPORT/raw" || {
	echo "nginx did not start:" >&2
	cat "$tmp/nginx/stderr" "$tmp/nginx/error.log" >&2
	exit 1
}
NURL="http://127.0.0.1:$NPORT"

# -- cluster -------------------------------------------------------------------------
# Huge pages for the shared memory, as PostgreSQL's documentation advises
# for large shared_buffers: the worker reads the staging pages out of the
# shared buffers, and a process maps each 4 kB page of them the first time
# it touches it; on this VM that costs about 7 us a page (0.2 us on a 2 MB
# page), half of a new worker's CPU in the raw row.  As root, the kernel's
# pool is raised by HUGE_POOL_PAGES just while the server starts, and put
# back at once: the pages the server took stay its own until it stops (they
# become surplus pages), and other clusters on the machine, whose default
# huge_pages = try would take them too, get no window to.  huge_pages = try
# falls back to 4 kB pages when the pool cannot be raised.  HUGE_PAGES=off
# runs every row without them.
HUGE_PAGES=${HUGE_PAGES:-try}
HUGE_POOL_PAGES=${HUGE_POOL_PAGES:-100}
# with_pool CMD...: run CMD with the pool raised (when HUGE_PAGES is not off)
with_pool() {
	local before added=0 rc=0
	if [ "$HUGE_PAGES" != off ] && [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
		before=$(cat /proc/sys/vm/nr_hugepages)
		echo $((before + HUGE_POOL_PAGES)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
		added=$(($(cat /proc/sys/vm/nr_hugepages) - before))
	fi
	"$@" || rc=$?
	[ "$added" -gt 0 ] && echo $(($(cat /proc/sys/vm/nr_hugepages) - added)) >/proc/sys/vm/nr_hugepages
	return $rc
}
CLUSTER_SET=(--set shared_buffers=${SHARED_BUFFERS:-128MB} --set max_wal_size=4GB --set checkpoint_timeout=1h
	--set max_locks_per_transaction=256)
info=$(FIREHOSE_PRELOAD=1 with_pool "$PY" test/pgcluster.py start --dir "$tmp/pg" "${CLUSTER_SET[@]}" \
	--set huge_pages="$HUGE_PAGES")
eval "$info" # PORT= HOST= USER= DIR=
CONN=(-h "$HOST" -p "$PORT" -U "$USER" -d postgres)
psql() { "$PGBIN/psql" "${CONN[@]}" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
psql -c "CREATE EXTENSION firehose"

worker_pid() {
	local pid=""
	for _ in $(seq 200); do
		pid=$(psql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'firehose worker' AND datname = current_database()")
		[ -n "$pid" ] && break
		sleep 0.05
	done
	echo "$pid"
}
# huge_kb: the shared memory the postmaster has in huge pages (kB; 0: none)
huge_kb() {
	local pm
	pm=$(head -1 "$(psql -c "SHOW data_directory")/postmaster.pid")
	status_kb "$pm" HugetlbPages
}
# restart_cluster HUGE_PAGES: the same cluster with huge_pages set so
restart_cluster() {
	FIREHOSE_PRELOAD=1 with_pool "$PY" test/pgcluster.py restart --dir "$tmp/pg" "${CLUSTER_SET[@]}" \
		--set huge_pages="$1" >/dev/null
}

# fresh_worker: end the database's worker and wait for the launcher's next
# one, so that a row's memory figures are its own: a worker keeps freed part
# memory for 30 s after its last part, and would carry one row's into the next
fresh_worker() {
	local old new=""
	old=$(worker_pid)
	psql -c "SELECT pg_terminate_backend($old)" >/dev/null
	for _ in $(seq 400); do
		new=$(psql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'firehose worker' AND datname = current_database()")
		[ -n "$new" ] && [ "$new" != "$old" ] && return 0
		sleep 0.05
	done
	echo "delivery.sh: no new worker after ending $old" >&2
	return 1
}
ticks() { awk '{ s = $0; sub(/^[^)]*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
# minor page faults of the process (a fault per fresh page the worker touches)
minflt() { awk '{ s = $0; sub(/^[^)]*\) /, "", s); split(s, f, " "); print f[8] }' "/proc/$1/stat"; }
# nanoseconds the process spent runnable but waiting for a CPU (schedstat)
rqwait() { awk '{ print $2 }' "/proc/$1/schedstat"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# start_sampler PID: RssAnon peak (kB) into $tmp/rssanon, sampled every 50 ms
start_sampler() {
	echo 5 >"/proc/$1/clear_refs" # VmHWM := current RSS
	(
		peak=0
		while [ -e "/proc/$1/status" ]; do
			v=$(status_kb "$1" RssAnon)
			[ -n "$v" ] && [ "$v" -gt "$peak" ] && {
				peak=$v
				echo "$peak" >"$tmp/rssanon"
			}
			sleep 0.05
		done
	) &
	sampler_pid=$!
}
stop_sampler() {
	kill "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	sampler_pid=""
}

declare -A R # results, printed at the end

# -- floor ----------------------------------------------------------------------------
# floor [LABEL]: the curl floor into R[floor], and into R[LABEL.floor] when
# measured just before row LABEL (the throughput rows measure their own:
# on a shared machine the floor moves from minute to minute)
upload() {
	curl -fsS -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' \
		--data-binary @"$tmp/64mb" -w '%{speed_upload}' "$NURL/raw"
}
floor() {
	local best=0 s warm=()
	if ! [ -s "$tmp/64mb" ]; then
		head -c $((64 * 1024 * 1024)) /dev/urandom >"$tmp/64mb"
		# On a newly booted VM the first uploads ran at half the speed of
		# the later ones (1.2 against 2.7 GB/s, all three of the first
		# floor), while the kernel's socket buffers took memory never
		# touched since boot: a floor that low made the first row's ratio
		# twice what it was.  Five uploads first, not counted.
		for _ in 1 2 3 4 5; do
			warm+=("$(printf %.0f "$(calc "$(upload) / 1000000")")")
		done
		printf 'warm-up: five uploads of 64 MB into nginx, not counted: %s MB/s\n' "${warm[*]}"
	fi
	for _ in 1 2 3; do
		s=$(upload)
		best=$(calc "($s > $best) ? $s : $best")
	done
	R[floor]=$(calc "$best / 1000000")
	[ -n "${1:-}" ] && R[$1.floor]=${R[floor]}
	printf 'floor%s: one curl upload of 64 MB into nginx: %.0f MB/s (best of 3)\n' "${1:+ before $1}" "${R[floor]}"
}

# load NAME RECORDS SIZE: put RECORDS records of SIZE bytes into paused stream NAME
load() {
	local left=$2 n
	while [ "$left" -gt 0 ]; do
		n=$((left < 200000 ? left : 200000))
		psql -c "SELECT firehose.put_batch('$1', ARRAY(SELECT rpad('{\"i\":' || g || ',\"p\":\"', $3 - 2, 'x') || '\"}' FROM generate_series(1, $n) g))" >/dev/null
		left=$((left - n))
	done
}

# deliver NAME RECORDS BYTES LABEL: resume the loaded stream, time the delivery
# and the worker's CPU and memory; sets R[LABEL.*]
deliver() {
	local name=$1 records=$2 bytes=$3 label=$4 pid t0 t1 c0 c1 w0 w1 f0 f1 ok delivered perf_pid=""
	pid=$(worker_pid)
	psql -c "CHECKPOINT" >/dev/null
	echo 0 >"$tmp/rssanon"
	start_sampler "$pid"
	if [ "${PERF:-0}" = 1 ] && [ "$label" != backlog_small ] && [ "$label" != backlog_large ]; then
		# PERF_ARGS: e.g. "--call-graph dwarf" (the default -g follows frame
		# pointers, which skip the caller of a leaf such as memcpy)
		perf record -q ${PERF_ARGS:--g} -o "bench/out/perf-$label.data" -p "$pid" >/dev/null 2>&1 &
		perf_pid=$!
		sleep 0.5
	fi
	c0=$(ticks "$pid")
	w0=$(rqwait "$pid")
	f0=$(minflt "$pid")
	t0=$(now)
	psql -c "SELECT firehose.resume('$name')" >/dev/null
	ok=$(psql -c "SELECT firehose.flush('$name', wait => true, timeout => '900s')")
	t1=$(now)
	c1=$(ticks "$pid")
	w1=$(rqwait "$pid")
	f1=$(minflt "$pid")
	[ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
	stop_sampler
	delivered=$(psql -c "SELECT delivered_records FROM firehose.stream_status WHERE stream = '$name'")
	R[$label.secs]=$(calc "$t1 - $t0")
	R[$label.mbs]=$(calc "$bytes / 1000000 / ($t1 - $t0)")
	R[$label.cpu]=$(calc "($c1 - $c0) / $HZ")
	R[$label.rqwait]=$(calc "($w1 - $w0) / 1000000000")
	R[$label.cpu_us]=$(calc "($c1 - $c0) / $HZ * 1000000 / $records")
	R[$label.faults]=$(calc "($f1 - $f0) / $records")
	R[$label.hwm]=$(calc "$(status_kb "$pid" VmHWM) / 1024")
	R[$label.anon]=$(calc "$(cat "$tmp/rssanon") / 1024")
	printf '%s: %d records (%.0f MB) delivered %s in %.2f s = %.1f MB/s; worker CPU %.2f s (%.2f us/record, %.3f page faults/record), runnable waiting for a CPU %.2f s; VmHWM %.0f MB, peak RssAnon %.0f MB%s\n' \
		"$label" "$records" "$(calc "$bytes / 1000000")" "$delivered" "${R[$label.secs]}" "${R[$label.mbs]}" \
		"${R[$label.cpu]}" "${R[$label.cpu_us]}" "${R[$label.faults]}" "${R[$label.rqwait]}" "${R[$label.hwm]}" "${R[$label.anon]}" \
		"$([ "$ok" = t ] && [ "$delivered" = "$records" ] || echo ' INCOMPLETE')"
	[ "$ok" = t ] && [ "$delivered" = "$records" ]
}

# throughput NAME FORMAT RECORDS SIZE LABEL
throughput() {
	psql -c "SELECT firehose.create_stream('$1', 'http', '{\"url\": \"$NURL/$2\", \"format\": \"$2\", \"buffer_size\": \"32MB\", \"max_concurrency\": 4, \"buffer_interval\": 60000}')" >/dev/null
	psql -c "SELECT firehose.pause('$1')" >/dev/null
	load "$1" "$3" "$4"
	case $5 in raw | raw_again | raw_4k | firehose) floor "$5" ;; esac
	# every row but the second raw one on a worker of its own
	[ "$5" = raw_again ] || fresh_worker
	deliver "$1" "$3" $(($3 * $4)) "$5"
	psql -c "SELECT firehose.drop_stream('$1', force => true)" >/dev/null
}

# base64_alone: OpenSSL's base64 of 134-byte records apart from the worker
# (bench/base64.c): the Firehose-format row costs at least the raw row's work
# a record plus this
base64_alone() {
	local out
	if ! cc -O2 -o "$tmp/base64" bench/base64.c -lcrypto 2>"$tmp/base64.err"; then
		echo "base64: skipped, bench/base64.c did not build: $(head -n 1 "$tmp/base64.err")"
		return
	fi
	out=$("$tmp/base64") || {
		echo "base64: skipped, bench/base64.c failed"
		return
	}
	read -r R[b64.us] R[b64.mbs] <<<"$out"
	printf 'base64: OpenSSL EVP_EncodeBlock alone, 134-byte records: %s us/record (%s MB/s of input)\n' \
		"${R[b64.us]}" "${R[b64.mbs]}"
}

# -- capture ----------------------------------------------------------------------------
capture() {
	"$PGBIN/pgbench" "${CONN[@]}" -q -i -s 2 >/dev/null 2>&1
	psql -c "SELECT firehose.create_stream('cdc', 'http', '{\"url\": \"$NURL/raw\", \"format\": \"raw\"}')" >/dev/null
	psql -c "SELECT firehose.pause('cdc')" >/dev/null
	printf '\\set aid random(1, 200000)\n\\set delta random(-5000, 5000)\nUPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n' >"$tmp/update.sql"
	local on="" off="" r side tps
	for ((r = 1; r <= CAPTURE_ROUNDS; r++)); do
		for side in $( ((r % 2)) && echo "off on" || echo "on off"); do
			if [ "$side" = on ]; then
				psql -c "SELECT firehose.capture_table('pgbench_accounts', 'cdc')" >/dev/null
			else
				psql -c "SELECT firehose.uncapture_table('pgbench_accounts')" >/dev/null 2>&1 || true
			fi
			psql -c "VACUUM pgbench_accounts" -c "CHECKPOINT" >/dev/null
			tps=$("$PGBIN/pgbench" "${CONN[@]}" -n -M prepared -c 2 -j 2 -T "$CAPTURE_SECONDS" \
				-f "$tmp/update.sql" 2>&1 | awk '/^tps = / { print $3 }')
			printf '  round %d capture %-3s %8.1f tps\n' "$r" "$side" "$tps"
			if [ "$side" = on ]; then on+=" $tps"; else off+=" $tps"; fi
		done
	done
	psql -c "SELECT firehose.uncapture_table('pgbench_accounts')" >/dev/null 2>&1 || true
	psql -c "SELECT firehose.drop_stream('cdc', force => true)" >/dev/null
	median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
	R[cap.on]=$(median <<<"$on")
	R[cap.off]=$(median <<<"$off")
	R[cap.ratio]=$(calc "${R[cap.on]} / ${R[cap.off]}")
	printf 'capture: UPDATE tps median with capture %.1f, without %.1f: ratio %.2f\n' \
		"${R[cap.on]}" "${R[cap.off]}" "${R[cap.ratio]}"
}

# -- many streams ---------------------------------------------------------------------
streams() {
	local rport rurl pid c0 c1 t0 t1 k
	"$PY" bench/latency.py --receiver --portfile "$tmp/receiver.port" 2>"$tmp/receiver.log" &
	receiver_pid=$!
	for _ in $(seq 200); do [ -s "$tmp/receiver.port" ] && break; sleep 0.05; done
	rport=$(cat "$tmp/receiver.port")
	rurl="http://127.0.0.1:$rport"
	for ((k = 1; k <= STREAMS; k += 100)); do
		psql -c "SELECT firehose.create_stream('s' || g, 'http', '{\"url\": \"$rurl/\", \"buffer_interval\": 1000}') FROM generate_series($k, $((k + 99 < STREAMS ? k + 99 : STREAMS))) g" >/dev/null
	done
	pid=$(worker_pid)
	sleep 5 # let the worker settle after loading the streams
	c0=$(ticks "$pid")
	t0=$(now)
	sleep 10
	c1=$(ticks "$pid")
	t1=$(now)
	R[idle.cpu]=$(calc "100 * ($c1 - $c0) / $HZ / ($t1 - $t0)")
	printf 'streams: %d idle streams: worker CPU %.1f%%\n' "$STREAMS" "${R[idle.cpu]}"

	printf '\\set k random(1, %d)\nSELECT firehose.put('"'"'s'"'"' || :k, '"'"'{"t":'"'"' || extract(epoch FROM clock_timestamp()) || '"'"',"k":'"'"' || :k || '"'"'}'"'"');\n' \
		"$STREAMS" >"$tmp/put.sql"
	c0=$(ticks "$pid")
	t0=$(now)
	"$PGBIN/pgbench" "${CONN[@]}" -n -M prepared -c 2 -j 2 -R "$STREAMS" -T "$STREAM_SECONDS" \
		-f "$tmp/put.sql" >"$tmp/pgbench.out" 2>&1
	c1=$(ticks "$pid")
	t1=$(now)
	psql -c "SELECT firehose.flush(wait => true, timeout => '120s')" >/dev/null
	R[busy.cpu]=$(calc "100 * ($c1 - $c0) / $HZ / ($t1 - $t0)")
	read -r R[lat.n] R[lat.p50] R[lat.p99] R[lat.max] < <(curl -fsS "$rurl/_control/times" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)["times"]
lat = sorted((v - json.loads(k)["t"]) * 1000 for k, v in t.items())
p = lambda q: lat[max(0, int(q * len(lat) + 0.999999) - 1)]
print(len(lat), "%.0f" % p(0.5), "%.0f" % p(0.99), "%.0f" % lat[-1])')
	printf 'streams: %d streams, %s records at %d/s over %d s: worker CPU %.1f%%; commit-to-receipt latency p50 %s ms, p99 %s ms, max %s ms\n' \
		"$STREAMS" "${R[lat.n]}" "$STREAMS" "$STREAM_SECONDS" "${R[busy.cpu]}" "${R[lat.p50]}" "${R[lat.p99]}" "${R[lat.max]}"
}

R[huge]=$(huge_kb)
echo "delivery: PostgreSQL on $HOST:$PORT, nginx on $NURL, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "shared memory: huge_pages = $HUGE_PAGES, $(calc "${R[huge]} / 1024") MB of it in huge pages"
for row in $ROWS; do
	case $row in
	floor) floor ;;
	raw)
		throughput raw raw "$RAW_RECORDS" 134 raw
		# again: a worker that has run a while has mapped the shared buffers
		throughput raw raw "$RAW_RECORDS" 134 raw_again
		;;
	firehose)
		throughput fh firehose "$FH_RECORDS" 134 firehose
		base64_alone
		;;
	raw4k)
		# the raw row on a cluster whose shared memory is in 4 kB pages
		if [ "$(huge_kb)" -gt 0 ]; then
			restart_cluster off
			echo "raw4k: cluster restarted with huge_pages = off ($(huge_kb) kB of huge pages)"
			throughput raw raw "$RAW_RECORDS" 134 raw_4k
			restart_cluster "$HUGE_PAGES"
		else
			echo "raw4k: skipped, the shared memory is not in huge pages to begin with"
		fi
		;;
	backlog)
		throughput small raw $((BACKLOG_SMALL_MB * 1000)) 1000 backlog_small
		throughput large raw $((BACKLOG_LARGE_MB * 1000)) 1000 backlog_large
		;;
	capture) capture ;;
	streams) streams ;;
	*)
		echo "unknown row $row" >&2
		exit 2
		;;
	esac
done

# -- the table -------------------------------------------------------------------------
g() { echo "${R[$1]:-}"; }
# ratio LABEL: the row's MB/s over the floor measured just before it
ratio() {
	local f=${R[$1.floor]:-${R[floor]:-}}
	if [ -n "$f" ]; then calc "$(g "$1.mbs") / $f"; else echo nan; fi
}
echo
echo "SUMMARY delivery ($(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)); shared memory in huge pages: $([ "${R[huge]}" -gt 0 ] && echo yes || echo no)"
inflight=$((4 * 32))
if [ -n "$(g raw.mbs)" ]; then
	printf '  raw 2M x 134 B, 32 MB, 4 in flight: %.0f MB/s = %.2f of the floor (%.0f MB/s, goal >= 0.5); worker CPU %.2f s in %.2f s, %.2f us/record, %.2f s waiting for a CPU\n' \
		"$(g raw.mbs)" "$(ratio raw)" "$(g raw.floor)" "$(g raw.cpu)" "$(g raw.secs)" "$(g raw.cpu_us)" "$(g raw.rqwait)"
fi
if [ -n "$(g raw_again.mbs)" ]; then
	printf '  raw again, the same worker (its shared buffers mapped): %.0f MB/s = %.2f of the floor (%.0f MB/s); worker CPU %.2f s in %.2f s, %.2f us/record\n' \
		"$(g raw_again.mbs)" "$(ratio raw_again)" "$(g raw_again.floor)" "$(g raw_again.cpu)" "$(g raw_again.secs)" "$(g raw_again.cpu_us)"
fi
if [ -n "$(g raw_4k.mbs)" ]; then
	printf '  raw on 4 kB shared memory pages (huge_pages = off), a new worker: %.0f MB/s = %.2f of the floor (%.0f MB/s); worker CPU %.2f s in %.2f s, %.2f us/record\n' \
		"$(g raw_4k.mbs)" "$(ratio raw_4k)" "$(g raw_4k.floor)" "$(g raw_4k.cpu)" "$(g raw_4k.secs)" "$(g raw_4k.cpu_us)"
fi
if [ -n "$(g firehose.mbs)" ]; then
	printf '  firehose format 1M: %.0f MB/s of records = %.2f of the floor (%.0f MB/s, goal >= 0.35); worker CPU %.2f s in %.2f s, %.2f us/record, %.2f s waiting for a CPU\n' \
		"$(g firehose.mbs)" "$(ratio firehose)" "$(g firehose.floor)" "$(g firehose.cpu)" "$(g firehose.secs)" "$(g firehose.cpu_us)" "$(g firehose.rqwait)"
fi
if [ -n "$(g firehose.mbs)" ] && [ -n "$(g b64.us)" ] && [ -n "$(g raw_again.cpu_us)" ]; then
	b=$(calc "$(g raw_again.cpu_us) + $(g b64.us)")
	printf '    its bound: the raw row again (%.2f us/record) + base64 alone (%.3f us/record) = %.2f us/record, %.0f MB/s = %.2f of its floor\n' \
		"$(g raw_again.cpu_us)" "$(g b64.us)" "$b" "$(calc "134 / $b")" "$(calc "134 / $b / $(g firehose.floor)")"
fi
for l in raw firehose backlog_small backlog_large; do
	[ -n "$(g $l.hwm)" ] || continue
	printf '  worker peak RSS, %-13s: VmHWM %4.0f MB, private (RssAnon) %4.0f MB (goal <= 2 x %d MB in flight + 32 MB = %d MB, the same for any backlog)\n' \
		"$l" "$(g $l.hwm)" "$(g $l.anon)" "$inflight" $((2 * inflight + 32))
done
[ -n "$(g cap.ratio)" ] && printf '  capture: UPDATE tps with/without %.2f (goal >= 0.85)\n' "$(g cap.ratio)"
[ -n "$(g busy.cpu)" ] && printf '  %d streams, a record a second each: worker CPU %.1f%% (all idle: %.1f%%); latency p50 %s ms, p99 %s ms (buffer_interval 1 s)\n' \
	"$STREAMS" "$(g busy.cpu)" "$(g idle.cpu)" "$(g lat.p50)" "$(g lat.p99)"
exit 0
