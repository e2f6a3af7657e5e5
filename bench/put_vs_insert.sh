#!/usr/bin/env bash
# put() against INSERT into an unlogged table, measured side by side.
#
#     bench/put_vs_insert.sh
#
# Starts its own throw-away cluster (test/pgcluster.py; as root the server
# runs as user postgres) and a Firehose HTTP receiver (test/receiver.py), then
# runs pgbench (-n -M prepared) alternately on
#
#   single:  SELECT firehose.put('bench', :payload)                  (autocommit)
#            INSERT INTO plain (data) VALUES (:payload)
#   batch:   SELECT firehose.put_batch('bench', ARRAY[:payload, ... x BATCH])
#            INSERT INTO plain (data) VALUES (:payload), ... x BATCH
#   txn:     BEGIN; BATCH x SELECT firehose.put(...); COMMIT
#            BEGIN; BATCH x INSERT ...; COMMIT
#
# where plain is an unlogged table shaped like a staging table
# (id bigserial, txid bigint, arrival timestamptz default now(), data bytea)
# and :payload is the same ~100-byte JSON text on both sides.  Rounds
# alternate put/INSERT, INSERT/put, ... so drift (other load on the machine,
# caches) hits both sides alike; before every round the table is truncated,
# or the stream dropped and created again, so both start from empty tables.
#
# Two numbers per round:
#   tps              pgbench's transactions per second (wall clock)
#   CPU us/record    CPU time of the whole PostgreSQL server (postmaster and
#                    all its children: backends, firehose worker, background
#                    processes; read from /proc) spent during the round, per
#                    record.  In live mode a put round is measured until the
#                    stream has delivered everything, so it includes the
#                    worker's delivery work.  Much less sensitive to other load
#                    on the machine than tps.
# and the medians and ratios put/INSERT of both.  A benchmark, not a test: it
# asserts nothing about the numbers; it fails only when something breaks.
#
# Environment:
#   MODE=live|paused  live (default): the stream delivers to the receiver with
#                     buffer_interval 1s while pgbench runs (the realistic
#                     pipeline: the worker cuts, sends and truncates staging
#                     tables on the same CPUs); after a put round the script
#                     waits until everything was delivered and reports the
#                     backlog.  paused: the stream is paused, nothing is
#                     delivered or truncated during a round: put() alone.
#   DURATION=10 ROUNDS=3 CLIENTS=2 BATCH=100 WARMUP=2
#   CASES="single batch txn"
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
PGBIN=${FIREHOSE_PGBIN:-/usr/lib/postgresql/15/bin}
MODE=${MODE:-live}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-2}
BATCH=${BATCH:-100}
WARMUP=${WARMUP:-2}
CASES=${CASES:-single batch txn}
PAYLOAD='{"event":"page_view","user_id":1234567,"session":"9f1c2e7a-4b3d-4e8f-a1b2-c3d4e5f60718","ms":42}'
HZ=$(getconf CLK_TCK)

case $MODE in live | paused) ;; *)
	echo "MODE must be live or paused" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/firehose-bench.XXXXXX")
chmod 755 "$tmp"
receiver_pid=""
cleanup() {
	set +e
	if [ -n "$receiver_pid" ]; then
		kill "$receiver_pid" 2>/dev/null || true
		wait "$receiver_pid" 2>/dev/null || true
	fi
	# KEEP_LOG=FILE: keep the server log (and any core file beside it) for a post-mortem
	if [ -n "${KEEP_LOG:-}" ]; then
		"$PY" test/pgcluster.py log --dir "$tmp/pg" --tail 400 >"$KEEP_LOG" 2>&1
		find /tmp -maxdepth 3 -name 'core*' -path '*firehose-pg-*' -newer "$tmp" \
			-exec cp {} "$KEEP_LOG.core" \; 2>/dev/null
	fi
	"$PY" test/pgcluster.py stop --dir "$tmp/pg" --mode immediate --rm >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- cluster and receiver -------------------------------------------------------
info=$(FIREHOSE_PRELOAD=1 "$PY" test/pgcluster.py start --dir "$tmp/pg" \
	--set shared_buffers=256MB --set max_wal_size=4GB --set checkpoint_timeout=1h)
eval "$info" # PORT= HOST= USER= DIR=
CONN=(-h "$HOST" -p "$PORT" -U "$USER" -d postgres)
psql() { "$PGBIN/psql" "${CONN[@]}" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
pgdir=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pgdir"])' "$tmp/pg/cluster.json")
PMPID=$(head -1 "$pgdir/data/postmaster.pid")

"$PY" test/receiver.py --port 0 --portfile "$tmp/receiver.port" 2>"$tmp/receiver.log" &
receiver_pid=$!
for _ in $(seq 200); do [ -s "$tmp/receiver.port" ] && break; sleep 0.05; done
[ -s "$tmp/receiver.port" ] || {
	echo "receiver did not start" >&2
	exit 1
}
RURL="http://127.0.0.1:$(cat "$tmp/receiver.port")"

psql <<'SQL'
CREATE EXTENSION firehose;
CREATE UNLOGGED TABLE plain (id bigserial, txid bigint, arrival timestamptz DEFAULT now(), data bytea);
-- PostgreSQL 15 makes the serial's sequence unlogged like its table; put()
-- draws ids from firehose.record_id_seq, a logged sequence.  Without this,
-- INSERT's transactions would write no WAL but their commit record, and each
-- asynchronous commit would signal the WAL writer (a kill() per INSERT),
-- which put()'s transactions mostly do not.
ALTER SEQUENCE plain_id_seq SET LOGGED;
SQL

pause_warned=""
reset_stream() {
	psql -c "SELECT firehose.drop_stream(name, force => true) FROM firehose.stream WHERE name = 'bench'" >/dev/null
	psql -c "SELECT firehose.create_stream('bench', 'http', '{\"url\": \"$RURL/\", \"buffer_interval\": 1000}')" >/dev/null
	if [ "$MODE" = paused ] && ! psql -c "SELECT firehose.pause('bench')" >/dev/null 2>"$tmp/pause.err"; then
		# firehose.pause() itself failed: pause through the catalog, as pause() does
		[ -n "$pause_warned" ] ||
			echo "WARNING: firehose.pause('bench') failed ($(head -1 "$tmp/pause.err")); pausing via UPDATE firehose.stream" >&2
		pause_warned=1
		psql -c "UPDATE firehose.stream SET status = 'PAUSED' WHERE name = 'bench'" \
			-c "SELECT firehose._stream_changed()" >/dev/null
	fi
	curl -fsS -X POST "$RURL/_control/reset" >/dev/null
}
reset_stream

# -- pgbench scripts --------------------------------------------------------------
repeat() { # repeat TEXT N SEP
	local out="" i
	for ((i = 0; i < $2; i++)); do out+="${out:+$3}$1"; done
	printf '%s' "$out"
}
echo "SELECT firehose.put('bench', :payload);" >"$tmp/single_put.sql"
echo "INSERT INTO plain (data) VALUES (:payload);" >"$tmp/single_insert.sql"
echo "SELECT firehose.put_batch('bench', ARRAY[$(repeat ':payload' "$BATCH" ', ')]);" >"$tmp/batch_put.sql"
echo "INSERT INTO plain (data) VALUES $(repeat '(:payload)' "$BATCH" ', ');" >"$tmp/batch_insert.sql"
printf 'BEGIN;\n%s\nCOMMIT;\n' "$(repeat "SELECT firehose.put('bench', :payload);" "$BATCH" $'\n')" >"$tmp/txn_put.sql"
printf 'BEGIN;\n%s\nCOMMIT;\n' "$(repeat "INSERT INTO plain (data) VALUES (:payload);" "$BATCH" $'\n')" >"$tmp/txn_insert.sql"

# run_pgbench SCRIPT SECONDS -> prints "tps transactions"
run_pgbench() {
	local out
	out=$("$PGBIN/pgbench" "${CONN[@]}" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$2" \
		-D "payload=$PAYLOAD" -f "$tmp/$1" 2>&1) || {
		echo "pgbench failed:" >&2
		echo "$out" >&2
		return 1
	}
	awk '/^number of transactions actually processed: / { n = $6 } /^tps = / { t = $3 }
		END { print t, n }' <<<"$out"
}

# CPU ticks used so far by the postmaster and its children, exited ones
# included (the postmaster has reaped them: they are in its cutime/cstime)
server_ticks() {
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$PMPID" '
		{ s = $0; sub(/^[^)]*\) /, "", s); n = split(s, f, " ")
		  # f[2] = ppid; f[12..15] = utime stime cutime cstime
		  if ($1 == pm || f[2] == pm) t += f[12] + f[13] + f[14] + f[15] }
		END { printf "%d\n", t }'
}

# wait until pgbench's backends have exited (and been reaped)
backends_gone() {
	for _ in $(seq 100); do
		[ "$(psql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'")" = 0 ] && return
		sleep 0.05
	done
}

# prepare SIDE: empty tables, checkpoint, receiver forgets
prepare() {
	if [ "$1" = put ]; then reset_stream; else psql -c "TRUNCATE plain" >/dev/null; fi
	psql -c "CHECKPOINT" >/dev/null
}

# after a live put round: how far behind delivery is, and how long it takes
# to catch up; sets DRAIN_NOTE
drain() { # RECORDS_PUT
	local backlog t0 t1 ok delivered failed
	backlog=$(psql -c "SELECT buffered_records + in_flight_records FROM firehose.stream_status WHERE stream = 'bench'")
	t0=$(date +%s.%N)
	ok=$(psql -c "SELECT firehose.flush('bench', wait => true, timeout => '300s')")
	t1=$(date +%s.%N)
	read -r delivered failed < <(psql -F ' ' -c "SELECT delivered_records, failed_records FROM firehose.stream_status WHERE stream = 'bench'")
	DRAIN_NOTE=$(printf '  [put %s, backlog at end %s, drained in %.1f s, delivered %s, failed %s%s]' \
		"$1" "$backlog" "$(calc "$t1 - $t0")" "$delivered" "$failed" "$([ "$ok" = t ] || echo ', FLUSH TIMED OUT')")
	DELIVERED=$delivered
}

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A TPS CPU
summary=()
problems=()

echo "put_vs_insert: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on $HOST:$PORT, $(nproc) CPUs, load average before start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  pgbench -n -M prepared -c $CLIENTS -j $CLIENTS -T $DURATION; $ROUNDS rounds per side, alternating; payload ${#PAYLOAD} bytes of JSON text"
if [ "$MODE" = live ]; then
	echo "  MODE=live: stream 'bench' delivers to $RURL (test/receiver.py) with buffer_interval 1s while put rounds run;"
	echo "             put rounds are measured (CPU) until everything is delivered"
else
	echo "  MODE=paused: stream 'bench' is paused: nothing is delivered or truncated during a round (put() alone)"
fi
echo "  plain: UNLOGGED (id bigserial, txid bigint, arrival timestamptz default now(), data bytea), its id sequence LOGGED"
echo "         like firehose.record_id_seq; truncated before each INSERT round;"
echo "         stream re-created (empty staging tables) before each put round"
echo "  CPU us/rec = CPU of all PostgreSQL server processes during the round / records"

for case in $CASES; do
	case $case in
	single)
		desc="1 record per transaction: SELECT firehose.put('bench', :payload) vs INSERT INTO plain (data) VALUES (:payload)"
		per=1
		;;
	batch)
		desc="$BATCH records per statement: SELECT firehose.put_batch('bench', ARRAY[:payload x $BATCH]) vs INSERT INTO plain (data) VALUES (:payload) x $BATCH"
		per=$BATCH
		;;
	txn)
		desc="$BATCH statements per transaction: BEGIN; $BATCH x SELECT firehose.put(); COMMIT vs BEGIN; $BATCH x INSERT; COMMIT"
		per=$BATCH
		;;
	*)
		echo "unknown case $case" >&2
		exit 2
		;;
	esac
	echo
	echo "== $case: $desc"
	# warm-up, not counted: caches, prepared plans, the worker's first cut
	for side in put insert; do
		prepare "$side"
		run_pgbench "${case}_$side.sql" "$WARMUP" >/dev/null
		if [ "$side" = put ] && [ "$MODE" = live ]; then
			psql -c "SELECT firehose.flush('bench', wait => true, timeout => '300s')" >/dev/null
		fi
	done
	TPS[$case.put]="" TPS[$case.insert]="" CPU[$case.put]="" CPU[$case.insert]=""
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2)); then order="put insert"; else order="insert put"; fi
		for side in $order; do
			prepare "$side"
			t0=$(server_ticks)
			read -r tps xacts < <(run_pgbench "${case}_$side.sql" "$DURATION") || true
			[ -n "${xacts:-}" ] || exit 1
			records=$((xacts * per))
			DRAIN_NOTE=""
			if [ "$side" = put ] && [ "$MODE" = live ]; then
				drain "$records"
				if [ "$DELIVERED" != "$records" ]; then
					problems+=("$case round $r: put $records records, delivered $DELIVERED")
				fi
			fi
			backends_gone
			t1=$(server_ticks)
			cpu=$(calc "($t1 - $t0) * 1000000 / $HZ / $records")
			TPS[$case.$side]+=" $tps"
			CPU[$case.$side]+=" $cpu"
			printf '  round %d  %-6s %9.1f tps %9.0f records/s %7.1f CPU us/rec%s\n' "$r" "$side" "$tps" \
				"$(calc "$tps * $per")" "$cpu" "$DRAIN_NOTE"
		done
	done
	mp=$(median <<<"${TPS[$case.put]}")
	mi=$(median <<<"${TPS[$case.insert]}")
	cp=$(median <<<"${CPU[$case.put]}")
	ci=$(median <<<"${CPU[$case.insert]}")
	ratio=$(calc "$mp / $mi")
	cratio=$(calc "$cp / $ci")
	printf '  median   put %.1f tps (%.0f records/s, %.1f CPU us/rec), INSERT %.1f tps (%.0f records/s, %.1f CPU us/rec)\n' \
		"$mp" "$(calc "$mp * $per")" "$cp" "$mi" "$(calc "$mi * $per")" "$ci"
	printf '  ratio put/INSERT: throughput %.2f, CPU per record %.2f\n' "$ratio" "$cratio"
	summary+=("$(printf 'SUMMARY put_vs_insert %-6s mode=%s tps_ratio=%.2f cpu_ratio=%.2f put_tps=%.1f insert_tps=%.1f put_cpu_us=%.1f insert_cpu_us=%.1f records_per_xact=%d' \
		"$case" "$MODE" "$ratio" "$cratio" "$mp" "$mi" "$cp" "$ci" "$per")")
done

echo
echo "(tps_ratio > 1: put is faster; cpu_ratio < 1: put uses less server CPU per record)"
printf '%s\n' "${summary[@]}"
if [ ${#problems[@]} -gt 0 ]; then
	printf 'PROBLEM %s\n' "${problems[@]}"
fi
