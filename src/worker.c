/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-database delivery worker.
 *
 * One loop, three steps:
 *	1. In one short transaction: reload stream configuration when it
 *	   changed; record the outcome of finished parts (firehose.deliveries,
 *	   firehose.failed_records, firehose.stream_stats) and advance each
 *	   stream's consumed snapshot when its oldest batch is complete; cut new
 *	   batches and read parts of them, up to max_concurrency per stream;
 *	   reclaim staging tables.
 *	2. Outside any transaction: encode and send the parts that are due.
 *	3. Wait on the latch, postmaster death and the curl sockets until a
 *	   request finishes, a commit wakes us, or the next deadline (a stream's
 *	   buffer interval, a retry, a prepared transaction to look at).
 *
 * Retry, backoff and dead-lettering live here; a sink only encodes and
 * classifies.  A delivery failure is data recorded on the part, never an
 * ERROR.  An ERROR (a bug, a dropped table) is caught, logged, and the loop
 * starts over after reloading: what was cut but not recorded is cut again
 * from the consumed snapshot, so nothing is lost (at most re-sent).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/genam.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "lib/pairingheap.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

typedef struct FhWorkerStream
{
	int32		id;
	char	   *name;
	const FhSink *sink;
	void	   *sink_config;
	FhBackup   *backup;			/* S3 backup store, or NULL */
	FhProcessors *processors;	/* or NULL */
	Oid			owner;			/* runs the processors */
	FhStreamConfig cfg;
	int32		version;
	bool		paused;
	bool		seen;
	bool		force_cut;		/* at start-up and after an error */
	bool		probe;			/* look for rows no commit announced */
	MemoryContext cxt;			/* name, config, snapshots, batches */
	MemoryContext config_cxt;	/* sink config, replaced on reload */
	List	   *secrets;		/* the option values scrubbed from error
								 * texts (fh_error_text), in config_cxt */
	Oid			tables[FH_STAGE_TABLES];
	FhStreamSlot *slot;
	FhSnapshot *consumed;		/* persisted: all visible here is done */
	FhSnapshot *last_hi;		/* upper snapshot of the newest batch */

	/*
	 * consumed's xmax as committed (done_xmax_next, with the end of that
	 * commit's WAL) and as flushed to disk (done_xmax), which parts carry to
	 * their sink (FhPartView.done_xmax): only a flushed commit survives a
	 * crash, after which what it recorded would be sent again.
	 */
	uint64		done_xmax;
	uint64		done_xmax_next;
	XLogRecPtr	done_lsn;
	dlist_head	batches;
	uint64		flush_seen;
	uint64		batch_seq;

	/*
	 * committed_bytes as it was when an empty batch was cut: nothing below it
	 * is pending, whatever the counters say (records of prepared
	 * transactions, rows inserted by hand).
	 */
	uint64		pending_floor;

	/* outcomes recorded in the open transaction, shown after its commit */
	uint64		unpublished_records;
	uint64		unpublished_bytes;
	uint64		unpublished_flush;
	/* cut into parts and not yet published as done */
	uint64		outstanding_records;
	uint64		outstanding_bytes;
	int			active_parts;	/* parts read and not yet recorded */
	int			requests_in_flight; /* at most max_concurrency */
	bool		row_locked;		/* its catalog row, in this transaction */

	/*
	 * Another session holds the stream's catalog row: since when, and when
	 * to try again.  The worker never waits for that lock, so that one
	 * stream's row held in an open transaction stalls only that stream.
	 */
	TimestampTz lock_blocked_since;
	TimestampTz lock_retry_at;
	TimestampTz memory_wait_since;	/* a part waits for firehose.worker_memory */
	TimestampTz retrying_since; /* first failure of its oldest retrying part */
	bool		reclaim_due;	/* a batch finished: reclaim_staging() */
	BlockNumber reclaim_deferred[FH_STAGE_TABLES];	/* fh_stage_maintain's */

	/* which pass looks at the stream (see "the streams a pass visits") */
	bool		ready;			/* in ready_streams */
	dlist_node	ready_node;
	bool		visited;		/* in visited_streams */
	dlist_node	visit_node;
	bool		memory_waiting; /* in memory_waiters */
	dlist_node	memory_node;
	bool		watched;		/* in blocked_watch */
	dlist_node	watch_node;
	TimestampTz timer_at;		/* in timers when not 0 */
	pairingheap_node timer_node;
} FhWorkerStream;

/* how often a stream whose catalog row is locked tries again */
#define LOCK_RETRY_MS		1000

/*
 * Batches a stream may have open behind its oldest: while that one waits
 * for a retrying request, later batches are still cut and delivered, but
 * only this many, so that the staging tables are not rescanned on every cut
 * and firehose.progress does not grow for as long as the retries last.
 */
#define MAX_OPEN_BATCHES(ws)	(2 * (ws)->cfg.max_concurrency + 2)

/*
 * firehose.worker_memory: half for the parts in flight, half for answers
 * (transport.c).  A part counts its records once, once more when processors
 * made new ones, and once more for each copy its sink's request holds
 * (none when the body is made as it is sent).  parts_memory is what the
 * parts alive have taken.
 */
#define RECORD_OVERHEAD		64	/* bytes a record costs besides its data:
								 * its FhRecord, allocation headers, its
								 * framing in a request (a delimiter, JSON) */
#define MIN_PART_MEMORY		(1024 * 1024)	/* no crumbs: wait instead */
static int64 parts_memory = 0;

static MemoryContext WorkerContext = NULL;
static List *streams = NIL;
static dlist_head waiting_parts;	/* due to be sent (now or after backoff) */
static dlist_head finished_parts;	/* outcome known, to be recorded */
static uint64 worker_nonce;
static FhDbSlot *my_slot;
static TimestampTz next_full_probe = 0;
static TimestampTz next_cleanup = 0;

/*
 * Prepared transactions.  Their records become visible at COMMIT PREPARED,
 * which no commit callback announces: the session that runs it knows
 * nothing of them, and the logical replication apply worker finishes them
 * without a statement.  At PREPARE, put.c notes the transaction's streams
 * (fh_note_prepared); the worker keeps the notes here, checks whether each
 * transaction is still in progress on every loop and at least every
 * PREPARED_POLL_MS, and when it committed gives the stream the start of a
 * buffer interval, as a commit would have, unless a cut saw the commit.
 * A transaction whose notes the worker lacks (prepared before it started,
 * or past the notes' room) is waited for as one that may have put into
 * any stream (PREPARED_ANY): its end makes the worker look for unannounced
 * rows in every stream's staging tables (probe).
 */
typedef struct PreparedWait
{
	TransactionId xid;
	FullTransactionId fxid;		/* InvalidFullTransactionId with PREPARED_ANY */
	int			stream;			/* index into fh_shared->streams,
								 * FH_PREPARED_RELOAD or PREPARED_ANY */
} PreparedWait;

#define PREPARED_ANY		(-2)
#define PREPARED_POLL_MS	1000
static PreparedWait *prepared_waits = NULL;
static int	nprepared_waits = 0;
static int	maxprepared_waits = 0;
static bool prepared_unknown = true;	/* list them (list_prepared) */

/*
 * Every FULL_PROBE_NAPTIMES times firehose.naptime, every stream is probed
 * all the same, as defence in depth: the notes above and at commit are
 * only as complete as the paths that put rows into staging tables through
 * put.c's callbacks, and a row that came another way (a superuser's INSERT
 * into a staging table, a way of committing we do not know of, a bug)
 * would otherwise wait until the next restart of the worker.  At a tenth
 * of the old pace (one probe every firehose.naptime), it costs a tenth.
 */
#define FULL_PROBE_NAPTIMES 10

/*
 * The streams a pass visits.  A pass does not look at every stream: with
 * a thousand streams most are idle, and looking at each of them several
 * times a pass cost more than delivering the records of the few that were
 * not (bench/streams.py).  A stream is visited (ready_streams) when
 * something that can change what it has to do happened:
 *	- records were committed into it (put.c notes it in shared memory,
 *	  fh_note_commit; when that set overflows, every stream is visited);
 *	- its timer expired (timers, keyed on the earliest of its buffer
 *	  interval's end and the retry of its row lock);
 *	- a part of it was recorded (a request slot or a batch freed up);
 *	- memory came back while it waited for firehose.worker_memory;
 *	- the streams were reloaded (create, alter, drop, pause, resume,
 *	  flush()), or the configuration was reloaded;
 *	- a prepared transaction that put into it committed (see "prepared
 *	  transactions"); every stream when a prepared transaction the worker
 *	  has no notes of ended, and every FULL_PROBE_NAPTIMES naptimes;
 *	- it still had work when its last visit ended (as the old loop over
 *	  every stream would have found it again at once).
 * Its blocked status is recomputed while it is visited, has a part
 * retrying, or is shown as blocked (blocked_watch).  Retries of parts are
 * per part (waiting_parts, their next_attempt), not per stream.
 */
static dlist_head ready_streams;
static dlist_head visited_streams;	/* by this pass: outcomes, reclaims */
static dlist_head memory_waiters;
static dlist_head blocked_watch;
static pairingheap *timers;
static FhWorkerStream **by_slot;	/* index in fh_shared->streams -> stream */

static uint32 my_requests;		/* my_slot->requests when we took it */
static uint32 loaded_changes;	/* my_slot->changes when the streams were loaded */
static bool give_back_slot = false; /* the extension is not installed here */

/*
 * A worker that found no extension gives its database slot back, so that
 * databases without firehose hold none (the launcher tries every database
 * at start-up), unless a backend asked for a worker meanwhile (CREATE
 * EXTENSION and create_stream() may just have committed): then the
 * launcher starts the next worker on the same slot.
 */
static void
worker_on_exit(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	if (my_slot->worker_pid == MyProcPid)
	{
		my_slot->worker_pid = 0;
		my_slot->worker_latch = NULL;
		if (give_back_slot && !my_slot->dropping && my_slot->requests == my_requests)
			my_slot->dbid = InvalidOid;
	}
	LWLockRelease(fh_shared->lock);
}

static FhWorkerStream *
find_stream(int32 id)
{
	ListCell   *lc;

	foreach(lc, streams)
	{
		FhWorkerStream *ws = lfirst(lc);

		if (ws->id == id)
			return ws;
	}
	return NULL;
}

/* ---------- the streams a pass visits ---------- */

/* pairingheap keeps the greatest first: the earliest timer is the greatest */
static int
timer_cmp(const pairingheap_node *a, const pairingheap_node *b, void *arg)
{
	TimestampTz ta = pairingheap_const_container(FhWorkerStream, timer_node, a)->timer_at;
	TimestampTz tb = pairingheap_const_container(FhWorkerStream, timer_node, b)->timer_at;

	return (ta < tb) ? 1 : (ta > tb) ? -1 : 0;
}

/* have this or the next pass visit ws */
static void
mark_ready(FhWorkerStream *ws)
{
	if (ws->ready)
		return;
	ws->ready = true;
	dlist_push_tail(&ready_streams, &ws->ready_node);
}

/*
 * Have the next pass visit every stream.  Their noted commits are seen by
 * that visit: the flags are cleared first, so that a commit after this
 * notes its stream again.
 */
static void
mark_all_ready(void)
{
	ListCell   *lc;

	foreach(lc, streams)
	{
		FhWorkerStream *ws = lfirst(lc);

		if (ws->slot)
			(void) pg_atomic_exchange_u32(&ws->slot->commit_noted, 0);
		mark_ready(ws);
	}
}

/* the streams put.c noted (fh_note_commit) are visited by the next pass */
static void
take_noted_commits(void)
{
	int			noted[FH_NOTED_COMMITS];
	bool		all;
	int			n = fh_take_noted_commits(my_slot, noted, &all);

	for (int i = 0; i < n; i++)
	{
		FhStreamSlot *slot = &fh_shared->streams[noted[i]];
		FhWorkerStream *ws = by_slot[noted[i]];

		/* before the visit reads its counters (see fh_note_commit) */
		(void) pg_atomic_exchange_u32(&slot->commit_noted, 0);
		if (ws != NULL && ws->slot == slot)
			mark_ready(ws);
	}
	if (all)
		mark_all_ready();
}

/* the next full probe: FULL_PROBE_NAPTIMES naptimes from now */
static void
schedule_full_probe(TimestampTz now)
{
	next_full_probe = TimestampTzPlusMilliseconds(now, (int64) fh_naptime_ms *
												  FULL_PROBE_NAPTIMES);
}

/* have the next pass probe every stream for rows no commit announced */
static void
probe_all(void)
{
	ListCell   *lc;

	foreach(lc, streams)
		((FhWorkerStream *) lfirst(lc))->probe = true;
	mark_all_ready();
}

static void
add_prepared_wait(TransactionId xid, FullTransactionId fxid, int stream)
{
	if (nprepared_waits == maxprepared_waits)
	{
		maxprepared_waits = Max(16, maxprepared_waits * 2);
		if (prepared_waits == NULL)
			prepared_waits = MemoryContextAlloc(WorkerContext,
												sizeof(PreparedWait) * maxprepared_waits);
		else
			prepared_waits = repalloc(prepared_waits,
									  sizeof(PreparedWait) * maxprepared_waits);
	}
	prepared_waits[nprepared_waits].xid = xid;
	prepared_waits[nprepared_waits].fxid = fxid;
	prepared_waits[nprepared_waits].stream = stream;
	nprepared_waits++;
}

/* the notes of the transactions prepared since the last look (put.c) */
static void
take_noted_prepared(void)
{
	FhPreparedNote notes[FH_NOTED_PREPARED];
	bool		overflow;
	int			n = fh_take_noted_prepared(my_slot, notes, &overflow);

	for (int i = 0; i < n; i++)
		add_prepared_wait(XidFromFullTransactionId(notes[i].fxid), notes[i].fxid,
						  notes[i].stream);
	if (overflow)
		prepared_unknown = true;
}

/*
 * Act on the prepared transactions that ended since the last call (see
 * "prepared transactions"); returns true when the streams are to be
 * reloaded (a change of the streams was prepared).  A rolled-back one
 * leaves nothing.  A stream the worker has not loaded is cut in full when
 * it is (force_cut).
 */
static bool
prepared_ended(void)
{
	bool		reload = false;
	int			j = 0;

	for (int i = 0; i < nprepared_waits; i++)
	{
		PreparedWait *w = &prepared_waits[i];
		FhWorkerStream *ws;

		if (TransactionIdIsInProgress(w->xid))
		{
			prepared_waits[j++] = *w;
			continue;
		}
		if (!TransactionIdDidCommit(w->xid))
			continue;
		if (w->stream == FH_PREPARED_RELOAD)
			reload = true;
		else if (w->stream == PREPARED_ANY)
		{
			reload = true;
			probe_all();
		}
		else if ((ws = by_slot[w->stream]) != NULL &&
				 !fh_snapshot_visible(ws->last_hi ? ws->last_hi : ws->consumed,
									  U64FromFullTransactionId(w->fxid)))
		{
			uint64		zero = 0;

			/* no cut saw the commit: its records wait for the next */
			pg_atomic_compare_exchange_u64(&ws->slot->first_pending, &zero,
										   (uint64) GetCurrentTimestamp());
			mark_ready(ws);
		}
	}
	nprepared_waits = j;
	return reload;
}

/*
 * SPI_execute_with_args, with the statement's plan prepared once and kept
 * for the worker's life: the worker runs the same few statements for every
 * batch and part, and parsing and planning each anew was a quarter of its
 * CPU with 1,000 streams of a record a second (raw_parser, parse analysis,
 * the planner).  The plan is generic (the statements look rows up by key);
 * the plan cache makes it again when a table it uses changes.  sql must be a
 * string constant: plans are found by its address.
 */
#define KEPT_PLANS	16

static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			kept_plans[KEPT_PLANS];
static int	nkept_plans;

static int
spi_run(const char *sql, int nargs, Oid *types, Datum *values,
		const char *nulls, bool read_only, long count)
{
	SPIPlanPtr	plan = NULL;

	for (int i = 0; i < nkept_plans && plan == NULL; i++)
		if (kept_plans[i].sql == sql)
			plan = kept_plans[i].plan;
	if (plan == NULL)
	{
		if (nkept_plans == KEPT_PLANS)	/* more statements than foreseen */
			return SPI_execute_with_args(sql, nargs, types, values, nulls,
										 read_only, count);
		plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the plan of \"%s\"", sql);
		kept_plans[nkept_plans].sql = sql;
		kept_plans[nkept_plans].plan = plan;
		nkept_plans++;
	}
	return SPI_execute_plan(plan, values, nulls, read_only, count);
}

/*
 * The prepared transactions of this database that the worker may have no
 * notes of (at start, after an ERROR, after the notes overflowed): each is
 * waited for as one that may have put into any stream, and every stream is
 * probed now for those that ended before this list was taken (the probe
 * takes a later snapshot).  In the worker's transaction.
 */
static void
list_prepared(void)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(MyDatabaseId)};

	prepared_unknown = false;
	if (spi_run("SELECT transaction FROM pg_catalog.pg_prepared_xact() "
				"WHERE dbid OPERATOR(pg_catalog.=) $1",
				1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list prepared transactions");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		xid = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
										1, &isnull);

		add_prepared_wait(DatumGetTransactionId(xid), InvalidFullTransactionId,
						  PREPARED_ANY);
	}
	probe_all();
}

/* (re)set the stream's timer; 0: none */
static void
set_timer(FhWorkerStream *ws, TimestampTz at)
{
	if (ws->timer_at == at)
		return;
	if (ws->timer_at != 0)
		pairingheap_remove(timers, &ws->timer_node);
	ws->timer_at = at;
	if (at != 0)
		pairingheap_add(timers, &ws->timer_node);
}

/* the streams whose timer expired are visited by the next pass */
static void
take_due_timers(TimestampTz now)
{
	while (!pairingheap_is_empty(timers))
	{
		FhWorkerStream *ws = pairingheap_container(FhWorkerStream, timer_node,
												   pairingheap_first(timers));

		if (ws->timer_at > now)
			break;
		(void) pairingheap_remove_first(timers);
		ws->timer_at = 0;
		mark_ready(ws);
	}
}

/* memory came back: the streams that waited for it are visited */
static void
wake_memory_waiters(void)
{
	while (!dlist_is_empty(&memory_waiters))
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, memory_node,
											 dlist_pop_head_node(&memory_waiters));

		ws->memory_waiting = false;
		mark_ready(ws);
	}
}

/* have publish_blocked() recompute the stream's blocked status */
static void
watch_blocked(FhWorkerStream *ws)
{
	if (ws->watched)
		return;
	ws->watched = true;
	dlist_push_tail(&blocked_watch, &ws->watch_node);
}

/* take the stream out of every list and the timers (it is to be freed) */
static void
forget_schedule(FhWorkerStream *ws)
{
	if (ws->ready)
		dlist_delete(&ws->ready_node);
	if (ws->visited)
		dlist_delete(&ws->visit_node);
	if (ws->memory_waiting)
		dlist_delete(&ws->memory_node);
	if (ws->watched)
		dlist_delete(&ws->watch_node);
	ws->ready = ws->visited = ws->memory_waiting = ws->watched = false;
	set_timer(ws, 0);
	if (ws->slot && by_slot[ws->slot - fh_shared->streams] == ws)
		by_slot[ws->slot - fh_shared->streams] = NULL;
}

/* the bytes of firehose.worker_memory that parts may take */
static int64
parts_budget(void)
{
	return (int64) fh_worker_memory_kb * 1024 / 2;
}

/* copies of a part's records a request of sink holds at once */
static int
body_copies(const FhSink *sink, void *config)
{
	return sink->body_copies ? sink->body_copies(config) : 1;
}

/*
 * How many times a part of ws holds its records at most (see above).  The
 * backup's request comes after the destination's is done with, and may
 * carry error records made from the records: one copy more.
 */
static int
part_copies(FhWorkerStream *ws)
{
	int			body = body_copies(ws->sink, ws->sink_config);

	if (ws->backup)
		body = Max(body, 1 + body_copies(ws->backup->sink, ws->backup->config));
	return 1 + (ws->processors != NULL) + body;
}

/* what a part of ws with n records and bytes of data takes, encoded */
static int64
part_memory(FhWorkerStream *ws, int nrecords, int64 bytes)
{
	return part_copies(ws) * (bytes + (int64) RECORD_OVERHEAD * nrecords);
}

/*
 * Must the stream's next part wait for parts in flight to give memory back?
 * Not when no part is alive: one part may always be read, so that a budget
 * smaller than one part slows delivery down instead of stopping it.  Nor
 * for a part smaller than MIN_PART_MEMORY: crumbs are worse than waiting.
 */
static bool
memory_waits(FhWorkerStream *ws)
{
	int			max_records;
	int64		max_bytes;

	if (parts_memory == 0)
		return false;
	ws->sink->limits(ws->sink_config, &max_records, &max_bytes);
	return (parts_budget() - parts_memory) / part_copies(ws) <
		Min(max_bytes, MIN_PART_MEMORY);
}

/*
 * Parts' memory is reused from one part to the next instead of going back to
 * the kernel each time.  glibc returns the free top of its heap to the kernel
 * past a few MB (and maps big blocks on their own), so that every part of
 * a bulk delivery faulted in all its pages afresh: a quarter of the worker's
 * CPU in the raw benchmark was page faults of the copy into the part.  The
 * worker keeps what it freed instead, as long as any part is alive and for
 * PARTS_KEEP_MS after the last one (the parts' share of
 * firehose.worker_memory bounds it), and then gives it back if at least
 * PARTS_TRIM_AFTER was freed since the last time.  Given back as soon as no
 * part was alive, a burst that followed a few seconds after another paid
 * for all its memory again (15% of the worker's CPU in clear_page on the
 * raw benchmark's second run).
 */
#define PARTS_TRIM_AFTER	(8 * 1024 * 1024)
#define PARTS_KEEP_MS		30000
static int64 freed_untrimmed = 0;
static TimestampTz trim_at = 0;	/* when to give freed memory back, 0: never */

static void
keep_freed_memory(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, (int) Min(parts_budget(), INT_MAX / 2));
#endif
}

/* forget a part: its memory goes back to firehose.worker_memory */
static void
free_part(FhPart *part)
{
	fh_transport_cancel(part);
	fh_transport_release_body(part);
	/* a child part lives in its parent's memory */
	if (part->parent)
		return;
	parts_memory -= part->memory;
	freed_untrimmed += part->memory;
	if (part->memory > 0)
		wake_memory_waiters();
	MemoryContextDelete(part->cxt);
	if (parts_memory == 0 && freed_untrimmed >= PARTS_TRIM_AFTER)
		trim_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PARTS_KEEP_MS);
}

/* give freed part memory back to the kernel once none was used for a while */
static void
trim_freed_memory(TimestampTz now)
{
	if (trim_at == 0 || now < trim_at)
		return;
	trim_at = 0;
	if (parts_memory > 0)
		return;					/* in use again: kept */
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	freed_untrimmed = 0;
}

/*
 * Forget a stream's parts and batches, and with release_slot its shared
 * slot (the stream is gone).  Without, the stream is loaded again from the
 * catalog, resuming from its persisted progress (after an error).
 */
static void
drop_stream_state(FhWorkerStream *ws, bool release_slot)
{
	dlist_mutable_iter it;

	/* children first: they live in their parents' memory */
	for (int children = 1; children >= 0; children--)
		dlist_foreach_modify(it, &waiting_parts)
		{
			FhPart	   *p = dlist_container(FhPart, node, it.cur);

			if (p->stream == (struct FhWorkerStream *) ws &&
				(p->parent != NULL) == (children == 1))
			{
				dlist_delete(&p->node);
				free_part(p);
			}
		}
	if (ws->slot)
		pg_atomic_write_u32(&ws->slot->active_partitions, 0);
	dlist_foreach_modify(it, &finished_parts)
	{
		FhPart	   *p = dlist_container(FhPart, node, it.cur);

		if (p->stream == (struct FhWorkerStream *) ws)
		{
			dlist_delete(&p->node);
			free_part(p);
		}
	}
	forget_schedule(ws);
	if (release_slot)
		fh_stream_slot_release(MyDatabaseId, ws->id);
	MemoryContextDelete(ws->cxt);
	pfree(ws);
}

static void
free_batch(FhBatch *b)
{
	pfree(b->lo);
	if (b->hi)
		pfree(b->hi);
	if (b->skips)
		pfree(b->skips);
	pfree(b);
}

/* ---------- configuration ---------- */

static FhScanPos
scan_pos(HeapTuple tup, TupleDesc desc, int table_col, int cursor_col)
{
	FhScanPos	p;
	bool		isnull;
	Datum		c;

	p.table_idx = DatumGetInt32(SPI_getbinval(tup, desc, table_col, &isnull));
	c = SPI_getbinval(tup, desc, cursor_col, &isnull);
	p.cursor_valid = !isnull;
	if (!isnull)
		p.cursor = *((ItemPointer) DatumGetPointer(c));
	else
		ItemPointerSetInvalid(&p.cursor);
	return p;
}

static bool
snapshots_equal(const FhSnapshot *a, const FhSnapshot *b)
{
	return VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

/*
 * A batch of the records visible in hi and not in lo, none of them recorded,
 * to be read before the restored batch that starts at hi.
 */
static void
restore_gap(FhWorkerStream *ws, const FhSnapshot *lo, const FhSnapshot *hi,
			TimestampTz cut_at, int first_table)
{
	FhBatch    *b = palloc0(sizeof(FhBatch));

	b->lo = fh_snapshot_copy(lo);
	b->hi = fh_snapshot_copy(hi);
	b->cut_at = cut_at;
	b->first_table = first_table;
	for (int k = 0; k < FH_STAGE_TABLES; k++)
		b->tables[k] = ws->tables[(first_table + k) % FH_STAGE_TABLES];
	b->seq = ++ws->batch_seq;
	dlist_push_tail(&ws->batches, &b->node);
}

/*
 * Batches that a previous worker had partly delivered: firehose.progress
 * holds a row per recorded part until its batch is complete.  Rebuild those
 * batches; their scans jump over the recorded stretches, so those records
 * are neither sent nor counted again.
 *
 * Only batches with a recorded part have rows.  Older batches of the
 * previous worker that had none (their parts were still retrying while a
 * later batch's part was recorded) lie between the consumed snapshot and the
 * first restored batch, or between two restored batches: each such gap
 * becomes a batch of its own, read in full, else its records were never
 * read again (issue 9).
 */
static void
restore_batches(FhWorkerStream *ws)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(ws->id)};
	MemoryContext old;
	FhBatch    *b = NULL;
	char	   *b_key = NULL;

	if (spi_run("SELECT batch_lo, batch_hi, batch_hi::pg_catalog.text, cut_at, "
				"first_table, start_table, start_cursor, end_table, end_cursor "
				"FROM firehose.progress WHERE stream_id OPERATOR(pg_catalog.=) $1 "
				"ORDER BY cut_at, batch_hi::pg_catalog.text",
				1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read firehose.progress");

	old = MemoryContextSwitchTo(ws->cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *key = SPI_getvalue(tup, desc, 3);

		if (b == NULL || strcmp(key, b_key) != 0)
		{
			const FhSnapshot *prev = ws->last_hi ? ws->last_hi : ws->consumed;

			b = palloc0(sizeof(FhBatch));
			b_key = pstrdup(key);
			b->lo = fh_snapshot_copy((FhSnapshot *) PG_DETOAST_DATUM(SPI_getbinval(tup, desc, 1, &isnull)));
			b->hi = fh_snapshot_copy((FhSnapshot *) PG_DETOAST_DATUM(SPI_getbinval(tup, desc, 2, &isnull)));
			b->cut_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
			b->first_table = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
			if (!snapshots_equal(prev, b->lo))
				restore_gap(ws, prev, b->lo, b->cut_at, b->first_table);
			for (int k = 0; k < FH_STAGE_TABLES; k++)
				b->tables[k] = ws->tables[(b->first_table + k) % FH_STAGE_TABLES];
			b->skips = palloc(sizeof(FhSkip) * (SPI_processed - i));
			b->seq = ++ws->batch_seq;
			dlist_push_tail(&ws->batches, &b->node);
			if (ws->last_hi)
				pfree(ws->last_hi);
			ws->last_hi = fh_snapshot_copy(b->hi);
		}
		b->skips[b->nskips].start = scan_pos(tup, desc, 6, 7);
		b->skips[b->nskips].end = scan_pos(tup, desc, 8, 9);
		b->nskips++;
	}
	MemoryContextSwitchTo(old);
}

static void
load_streams(void)
{
	ListCell   *lc;
	List	   *new_streams = NIL;

	foreach(lc, streams)
		((FhWorkerStream *) lfirst(lc))->seen = false;

	if (SPI_execute("SELECT id, name, destination, options, "
					"status OPERATOR(pg_catalog.=) 'PAUSED', version, consumed, owner "
					"FROM firehose.stream", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read firehose.stream");

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		int32		version = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		FhWorkerStream *ws = find_stream(id);
		MemoryContext old;

		if (ws == NULL)
		{
			FhSnapshot *consumed = (FhSnapshot *) PG_DETOAST_DATUM(SPI_getbinval(tup, desc, 7, &isnull));
			Oid			tables[FH_STAGE_TABLES];

			/*
			 * The catalog lookup sees a newer state than this transaction's
			 * snapshot: a stream dropped since has no tables any more.  Its
			 * drop wakes us again.
			 */
			if (!fh_stage_tables(id, tables))
				continue;

			old = MemoryContextSwitchTo(WorkerContext);
			ws = palloc0(sizeof(FhWorkerStream));
			ws->id = id;
			ws->cxt = AllocSetContextCreate(WorkerContext, "firehose stream",
											ALLOCSET_SMALL_SIZES);
			MemoryContextSwitchTo(ws->cxt);
			ws->name = pstrdup(SPI_getvalue(tup, desc, 2));
			ws->consumed = fh_snapshot_copy(consumed);
			dlist_init(&ws->batches);
			ws->force_cut = true;	/* pick up what waited while we were away */
			ws->version = -1;
			memcpy(ws->tables, tables, sizeof(tables));
			ws->slot = fh_stream_slot(MyDatabaseId, id, true);
			by_slot[ws->slot - fh_shared->streams] = ws;
			MemoryContextSwitchTo(WorkerContext);
			streams = lappend(streams, ws);
			MemoryContextSwitchTo(old);
			new_streams = lappend(new_streams, ws);
			ws->flush_seen = 0;
			/* a worker before us may have died with parts cut: they are buffered again */
			pg_atomic_write_u64(&ws->slot->cut_records,
								pg_atomic_read_u64(&ws->slot->done_records));
			pg_atomic_write_u64(&ws->slot->cut_bytes,
								pg_atomic_read_u64(&ws->slot->done_bytes));
			pg_atomic_write_u64(&ws->slot->oldest_inflight, 0);
		}
		ws->seen = true;
		ws->paused = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		ws->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
		if (ws->version != version)
		{
			char	   *dest = SPI_getvalue(tup, desc, 3);
			Jsonb	   *opts = DatumGetJsonbP(SPI_getbinval(tup, desc, 4, &isnull));

			if (ws->config_cxt)
				MemoryContextDelete(ws->config_cxt);
			ws->config_cxt = AllocSetContextCreate(ws->cxt, "firehose sink config",
												   ALLOCSET_SMALL_SIZES);
			old = MemoryContextSwitchTo(ws->config_cxt);
			ws->sink = fh_sink_lookup(dest, false);
			opts = (Jsonb *) PG_DETOAST_DATUM_COPY(PointerGetDatum(opts));
			fh_config_from_options(opts, &ws->cfg);
			ws->secrets = NIL;
			(void) fh_options_redact(ws->sink, opts, &ws->secrets);
			ws->sink_config = ws->sink->configure(opts, ws->name, version);
			ws->processors = fh_processors_configure(ws->cfg.processors);
			ws->backup = NULL;
			if (fh_jsonb_get(opts, "backup"))
				ws->backup = fh_backup_configure(JsonbValueToJsonb(fh_jsonb_get(opts, "backup")),
												 ws->name, version);
			MemoryContextSwitchTo(old);
			ws->version = version;
		}
	}

	/* after the loop: restoring runs queries of its own */
	foreach(lc, new_streams)
		restore_batches(lfirst(lc));
	list_free(new_streams);

	/* streams that are gone */
	foreach(lc, streams)
	{
		FhWorkerStream *ws = lfirst(lc);

		if (!ws->seen)
		{
			streams = foreach_delete_current(streams, lc);
			drop_stream_state(ws, true);
		}
	}
	/* any of them may have changed: paused, resumed, altered, flushed */
	mark_all_ready();
}

/* ---------- recording outcomes ---------- */

static Datum
make_array(Datum *elems, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(elems, n, type, typlen, typbyval, typalign));
}

/*
 * Lock the stream's catalog row before writing anything about the stream,
 * so that the worker and drop_stream() or alter_stream() take their locks
 * in one order (the row first) and never deadlock.  False when the stream
 * is gone (a drop committed, and its wake will make us forget it) or when
 * another session holds the row: the worker does not wait for it (SKIP
 * LOCKED), it tries again after LOCK_RETRY_MS and serves the other streams
 * meanwhile; stream_status shows the stream as blocked.
 */
static bool
lock_stream_row(FhWorkerStream *ws)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(ws->id)};
	TimestampTz now;

	if (ws->row_locked)
		return true;
	if (spi_run("SELECT 1 FROM firehose.stream WHERE id OPERATOR(pg_catalog.=) $1 "
				"FOR NO KEY UPDATE SKIP LOCKED",
				1, types, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock firehose.stream");
	ws->row_locked = SPI_processed == 1;
	if (ws->row_locked)
	{
		ws->lock_blocked_since = 0;
		return true;
	}
	/* skipped: held by another session, or gone? */
	if (spi_run("SELECT 1 FROM firehose.stream WHERE id OPERATOR(pg_catalog.=) $1",
				1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read firehose.stream");
	if (SPI_processed == 0)
		return false;
	now = GetCurrentTimestamp();
	if (ws->lock_blocked_since == 0)
	{
		ws->lock_blocked_since = now;
		ereport(LOG,
				(errmsg("firehose stream \"%s\" waits: another session holds a lock on its row of firehose.stream",
						ws->name),
				 errdetail("Outcomes of its requests are recorded once the lock is released; the other streams go on.")));
	}
	ws->lock_retry_at = TimestampTzPlusMilliseconds(now, LOCK_RETRY_MS);

	/*
	 * Shown, and tried again when due, even when this is no visit of the
	 * stream (recording a part's outcome): otherwise both waited for the
	 * next visit, which nothing may bring.  A visit's after_visit() sets
	 * the same timer.
	 */
	watch_blocked(ws);
	if (ws->timer_at == 0 || ws->lock_retry_at < ws->timer_at)
		set_timer(ws, ws->lock_retry_at);
	return false;
}

/* does the stream wait for another session's lock on its row? */
static bool
lock_waiting(FhWorkerStream *ws, TimestampTz now)
{
	return ws->lock_blocked_since != 0 && now < ws->lock_retry_at;
}

/*
 * The destination's verdict of a part: while the part is with its backup
 * store, part->verdict is the store's.
 */
static const FhVerdict *
primary_verdict(FhPart *part)
{
	return part->backup_phase ? &part->primary : &part->verdict;
}

/* did record i of part fail (for good) at its destination? */
static bool
record_failed(FhPart *part, int i)
{
	return fh_view_failed(&part->view, i, primary_verdict(part));
}

/* why record i failed at its destination: its own error, or its part's */
static const FhVerdict *
record_verdict(FhPart *part, int i)
{
	return fh_view_verdict(&part->view, i, primary_verdict(part));
}

/*
 * Did record i read for part fail, at the process stage or at the
 * destination?  Then *why is set to its verdict.
 */
static bool
source_failed(FhPart *part, int i, const FhVerdict **why)
{
	if (part->processed)
	{
		if (part->processed[i].result == FH_PROC_FAILED)
		{
			*why = &part->processed[i].verdict;
			return true;
		}
		if (part->view_index[i] < 0)
			return false;		/* dropped: done */

		/*
		 * A record the processors made several of (cloudwatch_logs) failed
		 * when any of them did: it goes to failed_records whole.
		 */
		for (int k = 0; k <= part->processed[i].nmore; k++)
			if (record_failed(part, part->view_index[i] + k))
			{
				*why = record_verdict(part, part->view_index[i] + k);
				return true;
			}
		return false;
	}
	if (!record_failed(part, i))
		return false;
	*why = record_verdict(part, i);
	return true;
}

/* message, followed by why the S3 backup failed, if it did */
static const char *
with_backup_error(FhPart *part, const char *message)
{
	if (part->backup_error == NULL)
		return message;
	if (message == NULL)
		return part->backup_error;
	return psprintf("%s %s", message, part->backup_error);
}

/*
 * Record one finished part: its delivery row, its records in
 * failed_records when it failed, the stream's statistics, the shared
 * counters.  In a transaction, with SPI connected.
 */
static void
record_part(FhPart *part)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	TimestampTz now = GetCurrentTimestamp();
	Oid			types[20] = {INT4OID, INT8OID, INT4OID, TEXTOID, INT4OID, INT8OID,
		INT4OID, INT4OID, INT8OID, INT4OID, INT8OID, INT8OID, TEXTOID, TEXTOID, INT4OID,
	INT4OID, INT8OID, INT4OID, INT4OID, INT8OID};
	Datum		vals[20];
	char		nulls[20];
	int		   *failed = NULL;
	const FhVerdict **why = NULL;
	int			nfailed = 0;
	int64		failed_bytes = 0;
	const char *code = part->verdict.error_code;
	const char *message = part->verdict.error_message;

	/*
	 * A part nothing processed, whose records have no verdicts of their own
	 * and whose destination did not fail it, has no failed record: asking
	 * each of a quarter of a million records, into arrays as long as the
	 * part, was 3% of the raw benchmark's worker CPU.
	 */
	if (part->processed || part->view.rec_state ||
		primary_verdict(part)->outcome == FH_OUTCOME_FAIL)
	{
		failed = palloc(sizeof(int) * part->nrecords);
		why = palloc(sizeof(FhVerdict *) * part->nrecords);
		for (int i = 0; i < part->nrecords; i++)
			if (source_failed(part, i, &why[nfailed]))
			{
				failed[nfailed++] = i;
				failed_bytes += VARSIZE_ANY_EXHDR(part->records[i].data);
			}
	}
	if (code == NULL && nfailed == 0 && part->last_retry.error_code)
	{
		/* delivered after retries: what was retried */
		code = part->last_retry.error_code;
		message = psprintf("Delivered after retrying: %s",
						   part->last_retry.error_message ? part->last_retry.error_message : "");
	}
	else if (code == NULL && nfailed > 0)
	{
		/* a part delivered but for some records: the first record's error */
		const FhVerdict *first = why[0];

		code = first->error_code;
		message = first->error_message;
	}

	memset(nulls, ' ', sizeof(nulls));
	vals[0] = Int32GetDatum(ws->id);
	vals[1] = Int64GetDatum((int64) part->batch->seq);
	vals[2] = Int32GetDatum(part->partno);
	vals[3] = CStringGetTextDatum(part->request_id);
	vals[4] = Int32GetDatum(part->nrecords);
	vals[5] = Int64GetDatum(part->bytes);
	vals[6] = Int32GetDatum(part->attempts);
	vals[7] = Int32GetDatum((int32) part->last_status);
	if (part->last_status == 0)
		nulls[7] = 'n';
	vals[8] = Int64GetDatum(TimestampDifferenceMilliseconds(part->first_attempt, now));
	vals[9] = Int32GetDatum(nfailed);
	vals[10] = Int64GetDatum(failed_bytes);
	vals[11] = Int64GetDatum(part->view.possible_duplicates);
	if (code)
		vals[12] = CStringGetTextDatum(code);
	else
		nulls[12] = 'n';
	/* every error text stored goes through fh_error_text: no secrets, valid text */
	message = fh_error_text(with_backup_error(part, message), ws->secrets);
	if (message)
		vals[13] = CStringGetTextDatum(message);
	else
		nulls[13] = 'n';

	/* the objects its records went up as: one, or one per prefix */
	vals[14] = Int32GetDatum(part->nchildren > 0 ? part->nchildren :
							 (part->view.nrecords > 0 ? 1 : 0));
	vals[15] = Int32GetDatum(part->view.nrecords);
	vals[16] = Int64GetDatum(part->view.bytes);
	vals[17] = Int32GetDatum(part->dropped);
	vals[18] = Int32GetDatum(part->processing_failed);
	vals[19] = Int64GetDatum(part->processing_us);
	if (part->processing_us < 0)
		nulls[19] = 'n';
	if (spi_run("SELECT firehose._record_delivery($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
				20, types, vals, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record a delivery");

	if (nfailed > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * nfailed);
		Datum	   *arrivals = palloc(sizeof(Datum) * nfailed);
		Datum	   *datas = palloc(sizeof(Datum) * nfailed);
		Datum	   *codes = palloc(sizeof(Datum) * nfailed);
		Datum	   *messages = palloc(sizeof(Datum) * nfailed);
		bool	   *code_nulls = palloc(sizeof(bool) * nfailed);
		bool	   *message_nulls = palloc(sizeof(bool) * nfailed);
		Oid			ftypes[10] = {TEXTOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, BYTEAARRAYOID,
		INT4OID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TIMESTAMPTZOID, INT4OID};
		Datum		fvals[10];
		char		fnulls[10];
		int			n = 0;
		int			dims[1];
		int			lbs[1] = {1};
		const char *last_raw = NULL;	/* records of one verdict share */
		Datum		last_message = (Datum) 0;	/* its text, made once */

		for (n = 0; n < nfailed; n++)
		{
			int			i = failed[n];
			const FhVerdict *v = why[n];

			if (n == 0 || v->error_message != last_raw)
			{
				char	   *m = fh_error_text(with_backup_error(part, v->error_message),
											  ws->secrets);

				last_raw = v->error_message;
				last_message = m ? CStringGetTextDatum(m) : (Datum) 0;
			}
			ids[n] = Int64GetDatum(part->records[i].id);
			arrivals[n] = TimestampTzGetDatum(part->records[i].arrival);
			datas[n] = PointerGetDatum(part->records[i].data);
			code_nulls[n] = v->error_code == NULL;
			codes[n] = v->error_code ? CStringGetTextDatum(v->error_code) : (Datum) 0;
			message_nulls[n] = last_message == (Datum) 0;
			messages[n] = last_message;
		}
		dims[0] = n;
		memset(fnulls, ' ', sizeof(fnulls));
		fvals[0] = CStringGetTextDatum(ws->name);
		fvals[1] = make_array(ids, n, INT8OID);
		fvals[2] = make_array(arrivals, n, TIMESTAMPTZOID);
		fvals[3] = make_array(datas, n, BYTEAOID);
		fvals[4] = Int32GetDatum(part->attempts);
		fvals[5] = PointerGetDatum(construct_md_array(codes, code_nulls, 1, dims, lbs,
													  TEXTOID, -1, false, TYPALIGN_INT));
		fvals[6] = PointerGetDatum(construct_md_array(messages, message_nulls, 1, dims, lbs,
													  TEXTOID, -1, false, TYPALIGN_INT));
		fvals[7] = vals[3];
		fvals[8] = TimestampTzGetDatum(part->first_attempt);
		/* by id too: redrive and drop_stream find them by the stream's id */
		fvals[9] = Int32GetDatum(ws->id);
		if (spi_run("INSERT INTO firehose.failed_records (stream_id, stream, record_id, arrival_time, data, "
					"attempts_made, error_code, error_message, request_id, first_attempt_at) "
					"SELECT $10, $1, r.id, r.arrival, r.data, $5, r.code, r.message, "
					"$8::pg_catalog.uuid, $9 "
					"FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), "
					"pg_catalog.unnest($4), pg_catalog.unnest($6), pg_catalog.unnest($7)) "
					"AS r(id, arrival, data, code, message)",
					10, ftypes, fvals, fnulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record failed records");
	}
	/* the delivery and failed records are written, the progress not yet */
	fh_fault_point("in_recording");

	/* where this part lies in its batch, for a worker that resumes it */
	{
		FhBatch    *b = part->batch;
		Oid			ptypes[9] = {INT4OID, PG_SNAPSHOTOID, PG_SNAPSHOTOID, TIMESTAMPTZOID,
		INT4OID, INT4OID, TIDOID, INT4OID, TIDOID};
		Datum		pvals[9];
		char		pnulls[9];

		memset(pnulls, ' ', sizeof(pnulls));
		pvals[0] = Int32GetDatum(ws->id);
		pvals[1] = PointerGetDatum(b->lo);
		pvals[2] = PointerGetDatum(b->hi);
		pvals[3] = TimestampTzGetDatum(b->cut_at);
		pvals[4] = Int32GetDatum(b->first_table);
		pvals[5] = Int32GetDatum(part->start.table_idx);
		pvals[6] = PointerGetDatum(&part->start.cursor);
		pnulls[6] = part->start.cursor_valid ? ' ' : 'n';
		pvals[7] = Int32GetDatum(part->end.table_idx);
		pvals[8] = PointerGetDatum(&part->end.cursor);
		pnulls[8] = part->end.cursor_valid ? ' ' : 'n';
		if (spi_run("INSERT INTO firehose.progress (stream_id, batch_lo, batch_hi, cut_at, "
					"first_table, start_table, start_cursor, end_table, end_cursor) "
					"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
					9, ptypes, pvals, pnulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record progress");
	}

	ws->unpublished_records += part->nrecords;
	ws->unpublished_bytes += part->bytes;
}

static void
update_oldest_inflight(FhWorkerStream *ws)
{
	TimestampTz oldest = 0;
	dlist_iter	it;

	dlist_foreach(it, &waiting_parts)
	{
		FhPart	   *p = dlist_container(FhPart, node, it.cur);

		if (p->stream == (struct FhWorkerStream *) ws &&
			(oldest == 0 || p->oldest_arrival < oldest))
			oldest = p->oldest_arrival;
	}
	pg_atomic_write_u64(&ws->slot->oldest_inflight, (uint64) oldest);
}

/*
 * Batches complete in order: when the oldest is fully read and all its
 * parts are recorded, everything visible in its upper snapshot is done.
 * Persist that, tell flush() waiters, reclaim staging tables.
 */
static void
finish_batches(FhWorkerStream *ws)
{
	bool		advanced = false;
	bool		moved = false;
	uint64		flush_seq = 0;

	while (!dlist_is_empty(&ws->batches))
	{
		FhBatch    *b = dlist_head_element(FhBatch, node, &ws->batches);

		if (!b->all_read || b->parts_done < b->parts_total)
			break;
		/* its progress rows go: not without the row (locked: next time) */
		if ((b->parts_total > 0 || b->nskips > 0) && !lock_stream_row(ws))
			break;
		dlist_delete(&b->node);
		if (b->parts_total > 0 || b->nskips > 0)
		{
			Oid			types[2] = {INT4OID, PG_SNAPSHOTOID};
			Datum		vals[2] = {Int32GetDatum(ws->id), PointerGetDatum(b->hi)};

			if (spi_run("DELETE FROM firehose.progress "
						"WHERE stream_id OPERATOR(pg_catalog.=) $1 "
						"AND batch_hi::pg_catalog.text OPERATOR(pg_catalog.=) "
						"$2::pg_catalog.text",
						2, types, vals, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not delete from firehose.progress");
			moved = true;
		}
		pfree(ws->consumed);
		ws->consumed = b->hi;	/* the batch's hi now belongs to consumed */
		b->hi = NULL;
		flush_seq = Max(flush_seq, b->flush_seq);
		free_batch(b);
		advanced = true;
	}
	if (!advanced)
		return;

	/*
	 * An empty batch moves consumed in memory only: the stored snapshot is a
	 * lower bound either way, and an idle stream then writes nothing.
	 */
	if (moved && lock_stream_row(ws))
	{
		Oid			types[2] = {INT4OID, PG_SNAPSHOTOID};
		Datum		vals[2] = {Int32GetDatum(ws->id), PointerGetDatum(ws->consumed)};

		if (spi_run("UPDATE firehose.stream SET consumed = $2 "
					"WHERE id OPERATOR(pg_catalog.=) $1",
					2, types, vals, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update firehose.stream");
	}
	/* truncate only once this transaction has committed: reclaim_staging() */
	ws->reclaim_due = true;

	ws->unpublished_flush = Max(ws->unpublished_flush, flush_seq);
}

/*
 * After the worker's transaction committed: show its outcomes in the shared
 * counters and wake flush() waiters, who may now read what was recorded.
 */
static void
publish_outcomes(void)
{
	dlist_iter	it;
	bool		flushed = false;

	/* outcomes are recorded only for streams the pass visited */
	dlist_foreach(it, &visited_streams)
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, visit_node, it.cur);
		uint64		done = U64FromFullTransactionId(ws->consumed->xmax);

		if (done > ws->done_xmax_next)
		{
			ws->done_xmax_next = done;
			ws->done_lsn = XactLastCommitEnd;
		}
		if (ws->unpublished_records > 0)
		{
			pg_atomic_add_fetch_u64(&ws->slot->done_records, ws->unpublished_records);
			pg_atomic_add_fetch_u64(&ws->slot->done_bytes, ws->unpublished_bytes);
			ws->outstanding_records -= ws->unpublished_records;
			ws->outstanding_bytes -= ws->unpublished_bytes;
			ws->unpublished_records = ws->unpublished_bytes = 0;
		}
		if (ws->unpublished_flush > 0)
		{
			fh_atomic_max_u64(&ws->slot->flush_done, ws->unpublished_flush);
			ws->unpublished_flush = 0;
			flushed = true;
		}
	}
	if (flushed)
		ConditionVariableBroadcast(&fh_shared->flush_cv);
}

static void
record_finished_parts(TimestampTz now)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &finished_parts)
	{
		FhPart	   *part = dlist_container(FhPart, node, it.cur);
		FhWorkerStream *ws = (FhWorkerStream *) part->stream;

		if (lock_waiting(ws, now) || !lock_stream_row(ws))
			continue;
		record_part(part);
		part->batch->parts_done++;
		ws->active_parts--;
		dlist_delete(&part->node);
		free_part(part);
		finish_batches(ws);
		update_oldest_inflight(ws);
		mark_ready(ws);			/* a request slot, maybe a batch, freed up */
	}
}

/* ---------- cutting and reading ---------- */


/* batches of the stream not yet complete */
static int
open_batches(FhWorkerStream *ws)
{
	dlist_iter	it;
	int			n = 0;

	dlist_foreach(it, &ws->batches)
		n++;
	return n;
}

static bool
should_cut(FhWorkerStream *ws, TimestampTz now, uint64 flush_req)
{
	FhStreamSlot *s = ws->slot;
	uint64		first = pg_atomic_read_u64(&s->first_pending);

	if (open_batches(ws) >= MAX_OPEN_BATCHES(ws))
		return false;
	if (ws->force_cut || flush_req > ws->flush_seen)
		return true;
	if (pg_atomic_read_u64(&s->committed_bytes) -
		Max(pg_atomic_read_u64(&s->cut_bytes), ws->pending_floor) >=
		(uint64) ws->cfg.buffer_size)
		return true;
	return first != 0 &&
		now >= TimestampTzPlusMilliseconds((TimestampTz) first, ws->cfg.buffer_interval_ms);
}

static FhBatch *
cut_batch(FhWorkerStream *ws, uint64 flush_req)
{
	MemoryContext old = MemoryContextSwitchTo(ws->cxt);
	FhBatch    *b = palloc0(sizeof(FhBatch));
	uint32		cur;

	ws->flush_seen = flush_req;
	ws->force_cut = false;
	/* before the snapshot: a commit it misses sets a new deadline */
	pg_atomic_write_u64(&ws->slot->first_pending, 0);
	b->committed_bytes_before = pg_atomic_read_u64(&ws->slot->committed_bytes);
	b->committed_records_before = pg_atomic_read_u64(&ws->slot->committed_records);
	b->prepares_before = pg_atomic_read_u64(&ws->slot->prepares);
	pg_memory_barrier();
	PushActiveSnapshot(GetTransactionSnapshot());
	b->hi = fh_snapshot_current();
	PopActiveSnapshot();
	b->lo = fh_snapshot_copy(ws->last_hi ? ws->last_hi : ws->consumed);
	if (ws->last_hi)
		pfree(ws->last_hi);
	ws->last_hi = fh_snapshot_copy(b->hi);
	b->flush_seq = flush_req;
	b->seq = ++ws->batch_seq;
	cur = pg_atomic_read_u32(&ws->slot->cur_table);
	b->first_table = (cur + 1) % FH_STAGE_TABLES;
	b->cut_at = GetCurrentTimestamp();
	for (int k = 0; k < FH_STAGE_TABLES; k++)
		b->tables[k] = ws->tables[(b->first_table + k) % FH_STAGE_TABLES];
	dlist_push_tail(&ws->batches, &b->node);
	MemoryContextSwitchTo(old);
	return b;
}

/*
 * The id of the object a part becomes (S3): from the batch and where the
 * part starts in it, so a retry writes the same key again instead of a
 * second copy.  (A worker started after a crash cuts new batches: a part
 * uploaded and not recorded before the crash may be written twice.)
 */
static void
object_id(FhWorkerStream *ws, FhBatch *b, FhScanPos *start, unsigned char id[16])
{
	struct
	{
		int32		stream;
		int32		table_idx;
		uint64		lo_xmin;
		uint64		lo_xmax;
		uint64		hi_xmax;
		ItemPointerData cursor;
		bool		cursor_valid;
	}			key;
	uint64		h1,
				h2;

	memset(&key, 0, sizeof(key));
	key.stream = ws->id;
	key.table_idx = start->table_idx;
	key.lo_xmin = U64FromFullTransactionId(b->lo->xmin);
	key.lo_xmax = U64FromFullTransactionId(b->lo->xmax);
	key.hi_xmax = U64FromFullTransactionId(b->hi->xmax);
	key.cursor = start->cursor;
	key.cursor_valid = start->cursor_valid;
	h1 = hash_bytes_extended((const unsigned char *) &key, sizeof(key), 0x66697265);
	h2 = hash_bytes_extended((const unsigned char *) &key, sizeof(key), 0x686f7365);
	memcpy(id, &h1, 8);
	memcpy(id + 8, &h2, 8);
}

/*
 * The most bytes of records the next part of b carries: buffer_size, or, for
 * a sink whose buffer size is a hint, up to a quarter more when that takes
 * the rest of the batch.  A size-triggered cut while puts go on holds a little
 * over buffer_size; without the slack that becomes a full object and a crumb.
 * What is left is estimated from the counters (rows committed between the
 * count and the snapshot are missing from it): an estimate only sizes parts.
 */
static int64
part_byte_cap(FhWorkerStream *ws, FhBatch *b)
{
	int64		size = ws->cfg.buffer_size;
	int64		slack = size / 4;
	uint64		cut;
	uint64		left;

	if (!ws->sink->buffer_size_is_hint)
		return size;
	cut = pg_atomic_read_u64(&ws->slot->cut_bytes);
	left = b->committed_bytes_before > cut ? b->committed_bytes_before - cut : 0;
	return left <= (uint64) (size + slack) ? size + slack : size;
}

static void finish_part(FhPart *part, TimestampTz now);

/*
 * Each object of a split part starts with the header line the processors
 * put before the part's first record (json_to_csv's "header"), not only the
 * object that holds that record.
 */
static void
child_header(FhWorkerStream *ws, FhPart *part, const FhObjectGroup *g, FhRecord *recs)
{
	StringInfoData header;

	if (ws->processors == NULL || g->error_output_type || g->nrecords == 0 ||
		g->index[0] == 0 || part->view.nrecords == 0)
		return;
	fh_processors_header(ws->processors, &header);
	/* only if the part got one: a Lambda after json_to_csv puts none */
	if (fh_has_header(&header, part->view.records[0].data))
		recs[0].data = fh_with_header(&header, recs[0].data);
	pfree(header.data);
}

/*
 * A child part of part: one object of it (dynamic partitioning), made of
 * the records of group g, or of their error records when the group has an
 * error output type.  It lives in part's memory, is sent as a part of its
 * own, and reports to part when it is finished (finish_child).
 */
static void
make_child(FhWorkerStream *ws, FhPart *part, const FhObjectGroup *g, int gno,
		   TimestampTz now)
{
	FhPart	   *child = palloc0(sizeof(FhPart));
	FhRecord   *recs = palloc(sizeof(FhRecord) * g->nrecords);
	uint64		h[2];
	struct
	{
		unsigned char id[16];
		int			gno;
	}			key;

	child->parent = part;
	child->stream = part->stream;
	child->batch = part->batch;
	child->partno = part->partno;
	child->cxt = part->cxt;
	child->parent_index = g->index;
	child->nrecords = g->nrecords;
	memcpy(child->request_id, part->request_id, sizeof(child->request_id));
	/* the object's id, from its part's and its place: the same on a retry */
	memset(&key, 0, sizeof(key));
	memcpy(key.id, part->object_id, 16);
	key.gno = gno;
	h[0] = hash_bytes_extended((const unsigned char *) &key, sizeof(key), 0x6f626a31);
	h[1] = hash_bytes_extended((const unsigned char *) &key, sizeof(key), 0x6f626a32);
	memcpy(child->object_id, h, 16);
	for (int k = 0; k < g->nrecords; k++)
	{
		int			i = g->index[k];

		recs[k] = part->view.records[i];
		if (g->error_output_type)
			recs[k].data = fh_error_record(&part->view.records[i],
										   fh_view_verdict(&part->view, i, &part->verdict),
										   1, now, ws->sink, ws->sink_config,
										   &part->view, i);
		if (k == 0 || recs[k].arrival < child->oldest_arrival)
			child->oldest_arrival = recs[k].arrival;
	}
	child_header(ws, part, g, recs);
	child->records = recs;
	child->view.records = recs;
	child->view.nrecords = g->nrecords;
	child->view.request_id = child->request_id;
	child->view.object_id = child->object_id;
	child->view.oldest_arrival = child->oldest_arrival;
	child->view.cxt = part->cxt;
	child->view.prefix = g->prefix;
	child->view.error_output_type = g->error_output_type;
	child->next_attempt = now;
	part->children_left++;
	if (g->error_output_type == NULL)
		part->nchildren++;
	dlist_push_tail(&waiting_parts, &child->node);
}

/*
 * Dynamic partitioning: the sink groups the part's records by their
 * evaluated prefix; each group goes up as its own object, a child part,
 * and the part waits for its children.  Records the sink could not place
 * failed alone; their error records go up as objects of their own.
 */
static void
split_into_objects(FhWorkerStream *ws, FhPart *part)
{
	FhObjectGroup *groups = NULL;
	bool		exceeded = false;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);
	TimestampTz now = GetCurrentTimestamp();
	int			n;

	part->verdict.outcome = FH_OUTCOME_OK;
	n = ws->sink->split(ws->sink_config, &part->view, &groups, &exceeded);
	pg_atomic_write_u32(&ws->slot->partitions_exceeded, exceeded ? 1 : 0);
	/*
	 * The children go after the part in waiting_parts: the sending loop may
	 * finish the part when it finishes its last child, and must not find
	 * the part as the next node of its iteration then.
	 */
	for (int g = 0; g < n; g++)
		make_child(ws, part, &groups[g], g, now);
	pg_atomic_add_fetch_u32(&ws->slot->active_partitions, part->nchildren);
	MemoryContextSwitchTo(old);
}

/*
 * A child part is finished: its records' outcomes go to its parent's view
 * (an error records' object failing marks the records it was for), and the
 * parent, once its last child is in, is finished as a whole.
 */
static void
finish_child(FhPart *child, TimestampTz now)
{
	FhPart	   *part = child->parent;
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);

	for (int k = 0; k < child->view.nrecords; k++)
	{
		int			i = child->parent_index[k];

		if (child->view.error_output_type)
		{
			if (child->verdict.outcome != FH_OUTCOME_OK)
				part->view.rec_verdict[i].error_message =
					psprintf("%s The error record could not be written to S3: %s",
							 part->view.rec_verdict[i].error_message,
							 child->verdict.error_message ? child->verdict.error_message : "");
		}
		else if (fh_view_failed(&child->view, k, &child->verdict))
		{
			const FhVerdict *v = fh_view_verdict(&child->view, k, &child->verdict);

			fh_view_fail(&part->view, i, v->error_code, v->error_message);
		}
		else
			fh_view_deliver(&part->view, i);
	}
	part->attempts = Max(part->attempts, child->attempts);
	part->last_status = child->last_status;
	if (part->first_attempt == 0 || child->first_attempt < part->first_attempt)
		part->first_attempt = child->first_attempt;
	part->view.possible_duplicates += child->view.possible_duplicates;
	if (child->last_retry.error_code)
		part->last_retry = child->last_retry;
	if (child->view.error_output_type == NULL)
		pg_atomic_sub_fetch_u32(&ws->slot->active_partitions, 1);
	MemoryContextSwitchTo(old);
	dlist_delete(&child->node);
	free_part(child);
	if (--part->children_left == 0)
	{
		if (part->first_attempt == 0)
			part->first_attempt = now;
		finish_part(part, now);
	}
}

/*
 * The records the destination's sink is to see, in the part's view: those
 * the processors made of the records read (several of one, from a
 * cloudwatch_logs processor, one after the other).  In the part's memory.
 */
static void
part_view(FhPart *part)
{
	int			total = 0;
	int			n = 0;
	FhRecord   *out;
	Jsonb	  **keys = NULL;

	for (int i = 0; i < part->nrecords; i++)
		if (part->processed[i].result == FH_PROC_OK)
			total += 1 + part->processed[i].nmore;
	out = palloc(sizeof(FhRecord) * Max(total, 1));
	part->view.bytes = 0;
	for (int i = 0; i < part->nrecords; i++)
	{
		FhProcessed *p = &part->processed[i];

		part->view_index[i] = -1;
		if (p->result == FH_PROC_DROPPED)
			part->dropped++;
		if (p->result == FH_PROC_FAILED)
			part->processing_failed++;
		if (p->result != FH_PROC_OK)
			continue;
		part->view_index[i] = n;
		for (int k = 0; k <= p->nmore; k++)
		{
			if (p->partition_keys)
			{
				if (keys == NULL)
					keys = palloc0(sizeof(Jsonb *) * Max(total, 1));
				keys[n] = p->partition_keys;
			}
			out[n] = part->records[i];
			out[n].data = k == 0 ? p->data : p->more[k - 1];
			part->view.bytes += VARSIZE_ANY_EXHDR(out[n].data);
			n++;
		}
	}
	/* with a Lambda, its round trips are processing time too (Firehose's) */
	part->processed_at = GetCurrentTimestamp();
	part->processing_us = part->processed_at - part->processing_start;
	part->view.records = out;
	part->view.nrecords = n;
	part->view.partition_keys = keys;
	part->lambda = NULL;
}

/*
 * The part waits for Lambda processor k of its processors (part->procs):
 * its invocations are requests the loop sends like a destination's.  In
 * the part's memory.
 */
static void
wait_for_lambda(FhWorkerStream *ws, FhPart *part, int k)
{
	part->proc_wait = k;
	part->lambda = fh_lambda_start(fh_processors_lambda_at(part->procs, k), ws->name,
								   part->records, part->nrecords, part->processed,
								   ws->cfg.retry_base_ms, ws->cfg.retry_max_ms);
}

/*
 * The Lambda a part waited for has settled every record: on with the
 * processors after it (none of them a function: no transaction), up to
 * the next Lambda or the view the destination gets.
 */
static void
lambda_done(FhWorkerStream *ws, FhPart *part)
{
	MemoryContext old = MemoryContextSwitchTo(part->cxt);
	int			stop = fh_process(part->procs, part->proc_wait + 1, ws->owner,
								  part->records, part->nrecords, part->processed);

	if (stop >= 0)
		wait_for_lambda(ws, part, stop);
	else
		part_view(part);
	MemoryContextSwitchTo(old);
}

/*
 * The process stage: the records the destination's sink is to see, from
 * the records read, in the part's view: what the stream's processors made
 * of them (processor.c), in the worker's transaction, before anything is
 * sent; with none, the records read, one for one.
 */
static void
process_part(FhWorkerStream *ws, FhPart *part)
{
	part->view.records = part->records;
	part->view.nrecords = part->nrecords;
	part->view.bytes = part->bytes;
	part->processing_us = -1;
	part->view.request_id = part->request_id;
	part->view.object_id = part->object_id;
	part->view.oldest_arrival = part->oldest_arrival;
	part->view.cxt = part->cxt;
	if (ws->processors)
	{
		MemoryContext old = MemoryContextSwitchTo(part->cxt);
		int			stop;

		part->processed = palloc(sizeof(FhProcessed) * part->nrecords);
		part->view_index = palloc(sizeof(int) * part->nrecords);
		part->processing_start = GetCurrentTimestamp();
		PushActiveSnapshot(GetTransactionSnapshot());
		stop = fh_process(ws->processors, 0, ws->owner, part->records, part->nrecords,
						  part->processed);
		PopActiveSnapshot();
		if (stop >= 0)
		{
			/* a Lambda: its answers come in later, outside any transaction */
			part->procs = fh_processors_tail(ws->processors, stop);
			wait_for_lambda(ws, part, 0);
		}
		else
			part_view(part);
		MemoryContextSwitchTo(old);
	}
	if (part->lambda == NULL && ws->sink->split && part->view.nrecords > 0)
		split_into_objects(ws, part);
}

/* read the next part of b; false when b had nothing more */
static bool
read_next_part(FhWorkerStream *ws, FhBatch *b, TimestampTz now)
{
	MemoryContext pcxt = AllocSetContextCreate(WorkerContext, "firehose part",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pcxt);
	FhPart	   *part = palloc0(sizeof(FhPart));
	int			max_records;
	int64		max_bytes;
	int64		max_memory;
	int64		room;
	FhScanPos	start;

	ws->sink->limits(ws->sink_config, &max_records, &max_bytes);
	max_records = Min(max_records, fh_max_part_records);

	/*
	 * The destination's byte limit bounds data and each record's overhead
	 * together: tens of millions of empty records are no smaller a part
	 * than their count says.  The memory left of firehose.worker_memory
	 * bounds them too (the caller checked memory_waits()).
	 */
	room = (parts_budget() - parts_memory) / part_copies(ws);
	max_memory = Min(max_bytes, Max(room, MIN_PART_MEMORY / 2));
	max_bytes = Min(max_bytes, part_byte_cap(ws, b));
	PushActiveSnapshot(GetTransactionSnapshot());
	part->nrecords = fh_read_part(b, max_records, max_bytes, max_memory, RECORD_OVERHEAD,
								  fh_transport_pump, &part->records, &part->bytes, &start);
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);

	if (part->nrecords == 0)
	{
		MemoryContextDelete(pcxt);
		return false;
	}
	part->memory = part_memory(ws, part->nrecords, part->bytes);
	parts_memory += part->memory;
	part->cxt = pcxt;
	part->stream = (struct FhWorkerStream *) ws;
	part->batch = b;
	part->partno = b->parts_total++;
	part->start = start;
	part->end.table_idx = b->table_idx;
	part->end.cursor = b->cursor;
	part->end.cursor_valid = b->cursor_valid;
	ws->active_parts++;
	fh_uuid_from(worker_nonce, (uint64) ws->id, (b->seq << 20) | (uint64) part->partno,
				 part->request_id);
	object_id(ws, b, &start, part->object_id);
	part->next_attempt = now;
	part->oldest_arrival = part->records[0].arrival;
	for (int i = 1; i < part->nrecords; i++)
		if (part->records[i].arrival < part->oldest_arrival)
			part->oldest_arrival = part->records[i].arrival;
	dlist_push_tail(&waiting_parts, &part->node);
	process_part(ws, part);
	b->records += part->nrecords;
	b->bytes += part->bytes;

	ws->outstanding_records += part->nrecords;
	ws->outstanding_bytes += part->bytes;
	pg_atomic_add_fetch_u64(&ws->slot->cut_records, part->nrecords);
	fh_atomic_max_u64(&ws->slot->committed_records,
					  pg_atomic_read_u64(&ws->slot->cut_records));
	pg_atomic_add_fetch_u64(&ws->slot->cut_bytes, part->bytes);
	fh_atomic_max_u64(&ws->slot->committed_bytes,
					  pg_atomic_read_u64(&ws->slot->cut_bytes));
	{
		uint64		cur = pg_atomic_read_u64(&ws->slot->oldest_inflight);

		if (cur == 0 || (uint64) part->oldest_arrival < cur)
			pg_atomic_write_u64(&ws->slot->oldest_inflight, (uint64) part->oldest_arrival);
	}
	return true;
}

/*
 * A flush() that finds every committed record in an open batch needs no
 * batch of its own: it is answered when the last open batch finishes.  An
 * empty batch cut for it read every page of the staging tables once more
 * (the rows of the batches before are skipped one by one until their tables
 * are reclaimed): a flush() after a bulk put read as many pages again as the
 * delivery itself.
 *
 * "Every committed record" is: the slot's counters unchanged since the last
 * cut (they are added at commit, after the commit is visible, put.c, so a
 * count read before the cut's snapshot is of commits in it), no transaction
 * prepared with records since (COMMIT PREPARED counts nothing), and none of
 * the transactions in progress at the cut committed since (one of them may
 * have been prepared before the cut).  Otherwise a batch is cut, as before.
 */
static void
flush_joins_open_batch(FhWorkerStream *ws, uint64 flush_req)
{
	FhBatch    *last;

	if (flush_req <= ws->flush_seen || dlist_is_empty(&ws->batches))
		return;
	last = dlist_tail_element(FhBatch, node, &ws->batches);
	if (pg_atomic_read_u64(&ws->slot->committed_bytes) != last->committed_bytes_before ||
		pg_atomic_read_u64(&ws->slot->committed_records) != last->committed_records_before ||
		pg_atomic_read_u64(&ws->slot->prepares) != last->prepares_before)
		return;
	for (uint32 i = 0; i < last->hi->nxip; i++)
		if (TransactionIdDidCommit(XidFromFullTransactionId(last->hi->xip[i])))
			return;
	last->flush_seq = Max(last->flush_seq, flush_req);
	ws->flush_seen = flush_req;
}

/* data read in one visit of a stream after which its parts are sent first */
#define SEND_BEFORE_READING		(8 * 1024 * 1024)

/* cut and read what a stream may have in flight now */
static void
schedule_stream(FhWorkerStream *ws, TimestampTz now)
{
	uint64		flush_req = pg_atomic_read_u64(&ws->slot->flush_requested);
	int			empty_reads = 0;
	int64		visit_bytes = 0;
	int64		read_before;

	/*
	 * A probe: rows no commit announced (see "prepared transactions") start
	 * the buffer interval as a commit would have.  Not needed when a cut is
	 * due anyway (a first record waits, or the stream is new to the
	 * worker), which sees all that committed.  With a snapshot of its own:
	 * one taken after the prepared transactions were listed.
	 */
	if (ws->probe)
	{
		uint64		zero = 0;
		bool		found;

		ws->probe = false;
		if (!ws->force_cut && pg_atomic_read_u64(&ws->slot->first_pending) == 0)
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			found = fh_stage_has_unannounced(ws->tables,
											 ws->last_hi ? ws->last_hi : ws->consumed);
			PopActiveSnapshot();
			if (found)
				pg_atomic_compare_exchange_u64(&ws->slot->first_pending, &zero,
											   (uint64) GetCurrentTimestamp());
		}
	}

	if (ws->paused || !fh_enabled)
	{
		/*
		 * A paused stream answers flush() at once: nothing will move.  Not
		 * while a reload is pending: the stream may have been resumed since
		 * this pass loaded it, and a flush() called after the resume must
		 * wait for delivery (the resume sets the reload before it returns).
		 */
		if (flush_req > ws->flush_seen && ws->paused &&
			pg_atomic_read_u32(&my_slot->reload) == 0)
		{
			ws->flush_seen = flush_req;
			fh_atomic_max_u64(&ws->slot->flush_done, flush_req);
			ConditionVariableBroadcast(&fh_shared->flush_cv);
		}
		return;
	}

	/*
	 * A change of the streams that committed after this pass loaded them is
	 * reloaded by the next pass, at once.  It may be a pause: records put
	 * after pause() returned must not be cut under the stale state.
	 */
	if (pg_atomic_read_u32(&my_slot->changes) != loaded_changes)
		return;

	flush_joins_open_batch(ws, flush_req);
	while (ws->active_parts < ws->cfg.max_concurrency)
	{
		FhBatch    *b = NULL;
		dlist_iter	it;

		if (memory_waits(ws))
		{
			if (ws->memory_wait_since == 0)
				ws->memory_wait_since = now;
			break;
		}
		ws->memory_wait_since = 0;

		dlist_foreach(it, &ws->batches)
		{
			FhBatch    *x = dlist_container(FhBatch, node, it.cur);

			if (!x->all_read)
			{
				b = x;
				break;
			}
		}
		if (b == NULL)
		{
			if (!should_cut(ws, now, flush_req))
				break;
			b = cut_batch(ws, flush_req);
		}
		read_before = b->bytes;
		if (!read_next_part(ws, b, now))
		{
			/* b is fully read; an empty batch completes here */
			if (b->parts_total == 0)
				ws->pending_floor = Max(ws->pending_floor, b->committed_bytes_before);
			finish_batches(ws);
			if (++empty_reads > 1 ||
				!should_cut(ws, now, pg_atomic_read_u64(&ws->slot->flush_requested)))
				break;
		}
		else
		{
			fh_fault_point("after_cut");	/* a part read, not yet sent */

			/*
			 * A large part goes out before the next is read: its transfer
			 * moves while the next one is read (fh_transport_pump), and its
			 * memory is free again for the one after.  Read back to back,
			 * all of max_concurrency's parts were read before the first
			 * was sent.  The stream has more to read: the next pass, at
			 * once, comes back to it (after_visit).
			 */
			visit_bytes += b->bytes - read_before;
			if (visit_bytes >= SEND_BEFORE_READING)
				break;
		}
	}
}

/* ---------- sending ---------- */

/*
 * The sink a part is with now, its destination or its backup store, with
 * that sink's config and view of the part.
 */
static const FhSink *
part_sink(FhPart *part, void **config, FhPartView **view)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;

	if (part->backup_phase > 0 && ws->backup)
	{
		*config = ws->backup->config;
		*view = &part->backup_view;
		return ws->backup->sink;
	}
	*config = ws->sink_config;
	*view = part->backup_phase > 0 ? &part->backup_view : &part->view;
	return ws->sink;
}

/*
 * Does the S3 destination of ws itself take the error records of the
 * records processors failed, under its error prefix (as Firehose's S3
 * destination does)?  Only without a backup store, which takes them then.
 */
static bool
destination_keeps_processing_errors(FhWorkerStream *ws)
{
	return ws->backup == NULL && ws->sink->keeps_processing_errors;
}

static void send_part(FhPart *part);

/*
 * Make the view the backup store has of part in its phase: the error
 * records of the records processors failed (their source data), or of
 * the records that failed at the destination (the data it was sent), or
 * every source record (as Firehose's source record backup keeps them
 * before processing).  The destination's verdicts are final
 * (part->primary).
 */
static bool
decompression_failed(const FhProcessed *p)
{
	return p->verdict.error_code != NULL &&
		strcmp(p->verdict.error_code, FH_DECOMPRESSION_FAILED) == 0;
}

/* how many of part's processing failures are (not) failures to decompress */
static int
processing_failures(FhPart *part, bool decompression)
{
	int			n = 0;

	for (int i = 0; i < part->nrecords; i++)
		if (part->processed[i].result == FH_PROC_FAILED &&
			decompression_failed(&part->processed[i]) == decompression)
			n++;
	return n;
}

static void
backup_view(FhPart *part)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	FhPartView *v = &part->backup_view;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);

	memset(v, 0, sizeof(*v));
	v->request_id = part->request_id;
	v->object_id = part->object_id;
	v->oldest_arrival = part->oldest_arrival;
	v->cxt = part->cxt;
	if (part->backup_phase == FH_BACKUP_PROCESSING ||
		part->backup_phase == FH_BACKUP_DECOMPRESSION)
	{
		bool		decompression = part->backup_phase == FH_BACKUP_DECOMPRESSION;
		FhRecord   *errors = palloc(sizeof(FhRecord) * part->processing_failed);
		int			n = 0;

		for (int i = 0; i < part->nrecords; i++)
		{
			if (part->processed[i].result != FH_PROC_FAILED ||
				decompression_failed(&part->processed[i]) != decompression)
				continue;
			errors[n] = part->records[i];
			/* processed once, so one attempt, ending when it was done */
			errors[n].data = fh_error_record(&part->records[i], &part->processed[i].verdict,
											 1, part->processed_at, NULL, NULL, NULL, i);
			n++;
		}
		v->records = errors;
		v->nrecords = n;
		v->error_output_type = decompression ? FH_DECOMPRESSION_ERROR_OUTPUT_TYPE :
			FH_PROCESSING_ERROR_OUTPUT_TYPE;
	}
	else if (part->backup_phase == FH_BACKUP_ERRORS)
	{
		FhRecord   *errors = palloc(sizeof(FhRecord) * part->view.nrecords);
		int			n = 0;

		for (int i = 0; i < part->view.nrecords; i++)
		{
			if (!record_failed(part, i))
				continue;
			errors[n] = part->view.records[i];
			errors[n].data = fh_error_record(&part->view.records[i], record_verdict(part, i),
											 part->primary_attempts, part->last_attempt_end,
											 ws->sink, ws->sink_config, &part->view, i);
			n++;
		}
		v->records = errors;
		v->nrecords = n;
		v->error_output_type = ws->sink->error_output_type;
	}
	else
	{
		v->records = part->records;
		v->nrecords = part->nrecords;
	}
	MemoryContextSwitchTo(old);
}

/*
 * An ERROR inside a sink's encode() or classify(): caught here so that it
 * fails (or retries) this part alone instead of restarting the worker's
 * loop, which would stall every stream of the database on one record.
 */
static void
sink_error(FhPart *part, const char *code, FhOutcome outcome)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	ErrorData  *ed;

	MemoryContextSwitchTo(part->cxt);
	ed = CopyErrorData();
	FlushErrorState();
	part->verdict.outcome = outcome;
	part->verdict.error_code = code;
	part->verdict.error_message = pstrdup(ed->message);
	part->verdict.delay_ms = 0;
	ereport(WARNING,
			(errmsg("firehose stream \"%s\": %s: %s", ws->name, code, ed->message)));
	FreeErrorData(ed);
}

/*
 * Send the next invocation of the Lambda processor a part waits for; when
 * none is left, go on processing (and then send to the destination).
 */
static void
send_lambda(FhPart *part)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);
	volatile bool more = false;
	int64		timeout_ms = 0;

	memset(&part->request, 0, sizeof(part->request));
	PG_TRY();
	{
		more = fh_lambda_encode(part->lambda, &part->request, &timeout_ms);
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		/* the invocation's records fail, not the worker */
		MemoryContextSwitchTo(part->cxt);
		ed = CopyErrorData();
		FlushErrorState();
		curl_slist_free_all(part->request.headers);
		part->request.headers = NULL;
		fh_lambda_fail(part->lambda, "Firehose.EncodingFailed", ed->message);
		FreeErrorData(ed);
		more = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	if (more)
	{
		ws->requests_in_flight++;
		fh_transport_start(part, &part->request, timeout_ms);
		return;
	}
	lambda_done(ws, part);
	if (part->lambda)
		part->next_attempt = GetCurrentTimestamp();		/* the next Lambda */
	else if (ws->sink->split && part->view.nrecords > 0)
		split_into_objects(ws, part);	/* its objects are sent as parts */
	else if (ws->requests_in_flight < ws->cfg.max_concurrency)
		send_part(part);		/* to the destination */
	else
		part->next_attempt = GetCurrentTimestamp();
}

static void
send_part(FhPart *part)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	void	   *config;
	FhPartView *view;
	const FhSink *sink;
	MemoryContext old;

	if (part->lambda)
	{
		send_lambda(part);
		return;
	}
	sink = part_sink(part, &config, &view);
	old = MemoryContextSwitchTo(part->cxt);
	memset(&part->request, 0, sizeof(part->request));
	if (view->nrecords == 0 && part->backup_phase == 0)
	{
		/* processors dropped or failed every record: nothing to send */
		fh_verdict_set(&part->verdict, FH_OUTCOME_OK, NULL, NULL);
		part->last_status = 0;
		part->first_attempt = GetCurrentTimestamp();
		MemoryContextSwitchTo(old);
		finish_part(part, part->first_attempt);
		return;
	}
	/* what a sink with a ledger needs to prune it (FhPartView) */
	if (ws->done_xmax_next > ws->done_xmax &&
		GetFlushRecPtr(NULL) >= ws->done_lsn)
		ws->done_xmax = ws->done_xmax_next;
	view->batch_xmax = U64FromFullTransactionId(part->batch->hi->xmax);
	view->done_xmax = ws->done_xmax;
	PG_TRY();
	{
		sink->encode(config, view, &part->request, &part->verdict);
	}
	PG_CATCH();
	{
		/* a bug or an unforeseen record: this part fails, not the worker */
		sink_error(part, "Firehose.EncodingFailed", FH_OUTCOME_FAIL);
		curl_slist_free_all(part->request.headers);
		part->request.headers = NULL;
		part->request.url = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	if (!part->stepping)
		part->attempts++;
	part->stepping = false;
	part->attempt_started = GetCurrentTimestamp();
	if (part->first_attempt == 0)
		part->first_attempt = part->attempt_started;
	if (part->request.url == NULL)
	{
		/* the sink could not make a request; part->verdict says why */
		part->last_status = 0;
		finish_part(part, part->attempt_started);
		return;
	}
	ws->requests_in_flight++;
	fh_transport_start(part, &part->request, ws->cfg.request_timeout_ms);
}

/*
 * A verdict is final: on to the backup store when it wants this part,
 * else to be recorded.
 */
static void
finish_part(FhPart *part, TimestampTz now)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	bool		any_failed = false;

	if (part->parent)
	{
		finish_child(part, now);
		return;
	}
	if (part->backup_phase == 0)
	{
		part->last_attempt_end = now;
		part->primary = part->verdict;
		part->primary_attempts = part->attempts;
	}
	else if (part->verdict.outcome != FH_OUTCOME_OK)
	{
		char	   *why = psprintf("%s failed: %s: %s",
								   ws->backup ? "S3 backup" : "The error records' upload",
								   part->verdict.error_code ? part->verdict.error_code : "?",
								   part->verdict.error_message ? part->verdict.error_message : "");

		/* scrubbed now too: it goes to the server log */
		why = fh_error_text(why, ws->secrets);

		part->backup_error = part->backup_error ?
			psprintf("%s %s", part->backup_error, why) : why;
		ereport(WARNING,
				(errmsg("firehose stream \"%s\": records could not be written to the S3 %s",
						ws->name, ws->backup ? "backup store" : "error prefix"),
				 errdetail("%s", why)));
	}

	/* the next backup phase this part needs, if any */
	if (ws->backup || destination_keeps_processing_errors(ws))
	{
		int			next;

		/* the view's records: processors may have left fewer than read */
		for (int i = 0; i < part->view.nrecords && !any_failed; i++)
			any_failed = record_failed(part, i);
		for (next = part->backup_phase + 1; next < FH_BACKUP_DONE; next++)
			if ((next == FH_BACKUP_PROCESSING && part->processing_failed > 0 &&
				 processing_failures(part, false) > 0) ||
				(next == FH_BACKUP_DECOMPRESSION && part->processing_failed > 0 &&
				 processing_failures(part, true) > 0) ||
				(next == FH_BACKUP_ERRORS && any_failed && ws->backup) ||
				(next == FH_BACKUP_ALL && ws->backup && ws->backup->all))
				break;
		part->backup_phase = next;
		if (next < FH_BACKUP_DONE)
		{
			backup_view(part);
			part->first_failure = 0;
			part->attempts = 0;
			part->stepping = false;
			part->next_attempt = now;
			return;				/* stays in waiting_parts */
		}
	}
	part->verdict = part->primary;
	part->attempts = part->primary_attempts;
	dlist_delete(&part->node);
	dlist_push_tail(&finished_parts, &part->node);
	fh_fault_point("after_answer"); /* judged, not yet recorded */
}

/*
 * The answer to a Lambda invocation: its records settled, or the
 * invocation sent again after a backoff.
 */
static void
lambda_response(FhPart *part)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);
	volatile int64 delay_ms = 0;

	ws->requests_in_flight--;
	PG_TRY();
	{
		delay_ms = fh_lambda_judge(part->lambda, &part->response);
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(part->cxt);
		ed = CopyErrorData();
		FlushErrorState();
		fh_lambda_fail(part->lambda, "Lambda.JsonProcessingException", ed->message);
		FreeErrorData(ed);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	fh_transport_release_body(part);
	part->next_attempt = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
}

/* judge a finished request: done, or back to waiting with a backoff */
static void
handle_response(FhPart *part)
{
	FhWorkerStream *ws = (FhWorkerStream *) part->stream;
	TimestampTz now = GetCurrentTimestamp();
	void	   *config;
	FhPartView *view;
	const FhSink *sink;
	MemoryContext old;

	if (part->lambda)
	{
		lambda_response(part);
		return;
	}
	sink = part_sink(part, &config, &view);

	/* the request went out and its answer is in, not yet judged */
	ws->requests_in_flight--;
	fh_fault_point("after_send");
	old = MemoryContextSwitchTo(part->cxt);
	part->last_status = part->response.status;
	part->verdict.waited_ms = 0;
	if (part->response.status == 0 && part->response.refused[0] != '\0')
	{
		/* nothing was sent: the policy, not the destination, said no */
		part->verdict.outcome = FH_OUTCOME_FAIL;
		part->verdict.error_code = "Firehose.DestinationNotAllowed";
		part->verdict.error_message =
			psprintf("firehose.allowed_destinations does not allow %s%s.",
					 part->response.refused_host ? "host " : "address ",
					 part->response.refused);
		part->verdict.delay_ms = 0;
	}
	else
	{
		PG_TRY();
		{
			sink->classify(config, view, &part->response, &part->verdict);
		}
		PG_CATCH();
		{
			sink_error(part, "Firehose.InvalidResponse", FH_OUTCOME_RETRY);
		}
		PG_END_TRY();
	}
	MemoryContextSwitchTo(old);
	fh_transport_release_body(part);

	switch (part->verdict.outcome)
	{
		case FH_OUTCOME_NEXT:
			/* a step of a longer exchange succeeded: on (after a delay) */
			part->stepping = true;
			part->next_attempt = TimestampTzPlusMilliseconds(now, part->verdict.delay_ms);
			return;
		case FH_OUTCOME_RETRY:
			if (part->backup_phase == 0)
				part->last_retry = part->verdict;
			/* the count starts at the first failure and leaves out waits */
			if (part->first_failure == 0)
				part->first_failure = now;
			else
				part->first_failure = Min(now,
										  TimestampTzPlusMilliseconds(part->first_failure,
																	  part->verdict.waited_ms));
			if (TimestampDifferenceMilliseconds(part->first_failure, now) < ws->cfg.retry_duration_ms)
			{
				part->next_attempt = TimestampTzPlusMilliseconds(now,
																 fh_backoff_ms(part->attempts, ws->cfg.retry_base_ms,
																			   ws->cfg.retry_max_ms));
				return;			/* stays in waiting_parts */
			}
			part->verdict.outcome = FH_OUTCOME_FAIL;
			/* FALLTHROUGH */
		case FH_OUTCOME_FAIL:
			if (sink->give_up && sink->give_up(config, view, &part->verdict))
			{
				/* one clean-up request first; its classify() has the verdict */
				part->stepping = true;
				part->next_attempt = now;
				return;
			}
			break;
		case FH_OUTCOME_OK:
			break;
	}
	finish_part(part, now);
}

/* ---------- the loop ---------- */

/*
 * Show in each stream's slot what holds it up, if anything, and since
 * when (stream_status.blocked_reason, blocked_since): the first that
 * applies of its catalog row locked by another session, a request
 * retrying (later batches wait for it), too many batches open behind the
 * oldest, a part waiting for firehose.worker_memory.
 */
static void
publish_blocked(void)
{
	dlist_iter	it;
	dlist_mutable_iter mit;

	/*
	 * Only the watched streams: those visited since, those with a part
	 * retrying and those shown as blocked.  Any other stream is shown as not
	 * blocked and has retrying_since 0.
	 */
	dlist_foreach(it, &blocked_watch)
		dlist_container(FhWorkerStream, watch_node, it.cur)->retrying_since = 0;
	dlist_foreach(it, &waiting_parts)
	{
		FhPart	   *p = dlist_container(FhPart, node, it.cur);
		FhWorkerStream *ws = (FhWorkerStream *) p->stream;

		if (p->first_failure != 0)
		{
			watch_blocked(ws);
			if (ws->retrying_since == 0 || p->first_failure < ws->retrying_since)
				ws->retrying_since = p->first_failure;
		}
	}
	dlist_foreach_modify(mit, &blocked_watch)
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, watch_node, mit.cur);
		FhBlocked	reason = FH_BLOCKED_NONE;
		TimestampTz since = 0;

		if (ws->lock_blocked_since != 0)
		{
			reason = FH_BLOCKED_ROW_LOCK;
			since = ws->lock_blocked_since;
		}
		else if (ws->retrying_since != 0)
		{
			reason = FH_BLOCKED_RETRYING;
			since = ws->retrying_since;
		}
		else if (open_batches(ws) >= MAX_OPEN_BATCHES(ws))
		{
			reason = FH_BLOCKED_BATCHES;
			since = dlist_head_element(FhBatch, node, &ws->batches)->cut_at;
		}
		else if (ws->memory_wait_since != 0)
		{
			reason = FH_BLOCKED_MEMORY;
			since = ws->memory_wait_since;
		}
		pg_atomic_write_u64(&ws->slot->blocked_since, (uint64) since);
		pg_atomic_write_u32(&ws->slot->blocked_reason, (uint32) reason);
		if (reason == FH_BLOCKED_NONE)
		{
			dlist_delete(mit.cur);
			ws->watched = false;
		}
	}
}

/*
 * May p be sent when due?  Not while in flight, nor while it waits for
 * its children, nor while its stream has max_concurrency requests out (a
 * part split into many objects sends them that many at a time).
 */
static bool
sendable(FhPart *p)
{
	FhWorkerStream *ws = (FhWorkerStream *) p->stream;

	return !p->in_flight && p->children_left == 0 &&
		ws->requests_in_flight < ws->cfg.max_concurrency;
}

static long
next_timeout(TimestampTz now)
{
	TimestampTz next = Min(next_full_probe, next_cleanup);
	dlist_iter	it;

	if (!dlist_is_empty(&ready_streams))
		return 0;
	if (nprepared_waits > 0)
		next = Min(next, TimestampTzPlusMilliseconds(now, Min(PREPARED_POLL_MS,
															   fh_naptime_ms)));
	if (!pairingheap_is_empty(timers))
		next = Min(next, pairingheap_container(FhWorkerStream, timer_node,
											   pairingheap_first(timers))->timer_at);
	if (trim_at != 0)
		next = Min(next, trim_at);
	dlist_foreach(it, &waiting_parts)
	{
		FhPart	   *p = dlist_container(FhPart, node, it.cur);

		if (sendable(p))
			next = Min(next, p->next_attempt);
	}
	if (next <= now)
		return 0;
	return (long) Min(TimestampDifferenceMilliseconds(now, next) + 1, 60000);
}

/*
 * Has the stream, just visited, more to do at once?  What the loop over
 * every stream asked of each stream before a pass (the streams a pass
 * visits): a stream that says yes is visited again by the next pass.
 */
static bool
stream_has_work(FhWorkerStream *ws, TimestampTz now)
{
	if (ws->probe)
		return true;
	if (ws->lock_blocked_since != 0 && !lock_waiting(ws, now))
		return true;
	if (ws->paused || !fh_enabled || ws->active_parts >= ws->cfg.max_concurrency ||
		memory_waits(ws))
		return ws->paused &&
			pg_atomic_read_u64(&ws->slot->flush_requested) > ws->flush_seen;
	if (should_cut(ws, now, pg_atomic_read_u64(&ws->slot->flush_requested)))
		return true;
	/* a batch with more to read */
	return !dlist_is_empty(&ws->batches) &&
		!dlist_tail_element(FhBatch, node, &ws->batches)->all_read;
}

/*
 * After a visit: the stream's timer (when its buffer interval ends, if it
 * could cut then, or when to try its row lock again), whether it waits for
 * memory, and whether the next pass visits it at once.
 */
static void
after_visit(FhWorkerStream *ws, TimestampTz now)
{
	uint64		first = pg_atomic_read_u64(&ws->slot->first_pending);
	TimestampTz at = 0;

	if (first != 0 && !ws->paused && fh_enabled &&
		ws->active_parts < ws->cfg.max_concurrency &&
		open_batches(ws) < MAX_OPEN_BATCHES(ws) && !memory_waits(ws))
		at = TimestampTzPlusMilliseconds((TimestampTz) first, ws->cfg.buffer_interval_ms);
	if (ws->lock_blocked_since != 0 && (at == 0 || ws->lock_retry_at < at))
		at = ws->lock_retry_at;
	set_timer(ws, at);
	if ((ws->memory_wait_since != 0) != ws->memory_waiting)
	{
		if (ws->memory_waiting)
			dlist_delete(&ws->memory_node);
		else
			dlist_push_tail(&memory_waiters, &ws->memory_node);
		ws->memory_waiting = !ws->memory_waiting;
	}
	watch_blocked(ws);
	if (stream_has_work(ws, now))
		mark_ready(ws);
}

static bool
work_pending(TimestampTz now)
{
	dlist_iter	it;

	if (!dlist_is_empty(&ready_streams))
		return true;
	dlist_foreach(it, &finished_parts)
	{
		FhPart	   *p = dlist_container(FhPart, node, it.cur);

		if (!lock_waiting((FhWorkerStream *) p->stream, now))
			return true;
	}
	return false;
}

/*
 * Retention: delete the rows of table whose column (a timestamptz) is more
 * than seconds older than now.
 */
static void
delete_older(const char *table, const char *column, int seconds, TimestampTz now)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		vals[1];

	vals[0] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(now, -(int64) seconds * 1000));
	if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE %s OPERATOR(pg_catalog.<) $1",
									   table, column),
							  1, types, vals, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from %s", table);
}

/*
 * Rotate and truncate the staging tables of the streams whose batches
 * finished, in a transaction of its own that starts after the one that
 * recorded those batches committed.
 *
 * The truncation (heap_truncate_one_rel) cannot be rolled back.  Done in the
 * recording transaction, an ERROR, FATAL or crash after it rolled back the
 * recorded outcome of the last part (its failed records, the progress, the
 * new consumed snapshot) but not the truncation, and the part's records
 * were gone (issue 9, defect 1).  Here everything the truncation removes is
 * recorded for good first; a failure in this transaction loses nothing, and
 * a table left untruncated is truncated after the next batch.
 */
static void
reclaim_staging(void)
{
	dlist_iter	it;
	bool		due = false;

	/* batches finish only in streams the pass visited */
	dlist_foreach(it, &visited_streams)
		due |= dlist_container(FhWorkerStream, visit_node, it.cur)->reclaim_due;
	if (!due)
		return;
	/* a batch's recording is committed, its tables not yet reclaimed */
	fh_fault_point("after_record_commit");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "firehose: reclaiming staging tables");
	dlist_foreach(it, &visited_streams)
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, visit_node, it.cur);

		if (!ws->reclaim_due)
			continue;
		ws->reclaim_due = false;
		fh_stage_maintain(ws->id, ws->tables, ws->slot, ws->consumed,
						  ws->reclaim_deferred);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static void
worker_transaction(bool reload, TimestampTz now)
{
	dlist_iter	it;

	/* before the snapshot: a change it misses shows as a newer count */
	if (reload)
		loaded_changes = pg_atomic_read_u32(&my_slot->changes);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	pgstat_report_activity(STATE_RUNNING, "firehose: cutting and recording batches");

	/* only the streams the last pass visited may have locked their row */
	while (!dlist_is_empty(&visited_streams))
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, visit_node,
											 dlist_pop_head_node(&visited_streams));

		ws->visited = false;
		ws->row_locked = false;
	}
	if (reload)
	{
		load_streams();
		fh_fault_point("after_load");	/* streams loaded, none cut yet */
	}
	if (prepared_unknown)
		list_prepared();
	/* streams whose row another session held: try again when due (timers) */
	dlist_foreach(it, &ready_streams)
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, ready_node, it.cur);

		if (ws->lock_blocked_since != 0 && !lock_waiting(ws, now) &&
			lock_stream_row(ws))
			finish_batches(ws);
	}
	record_finished_parts(now);
	while (!dlist_is_empty(&ready_streams))
	{
		FhWorkerStream *ws = dlist_container(FhWorkerStream, ready_node,
											 dlist_pop_head_node(&ready_streams));

		ws->ready = false;
		if (!ws->visited)
		{
			ws->visited = true;
			dlist_push_tail(&visited_streams, &ws->visit_node);
		}
		schedule_stream(ws, now);
	}
	dlist_foreach(it, &visited_streams)
		after_visit(dlist_container(FhWorkerStream, visit_node, it.cur), now);

	if (now >= next_cleanup)
	{
		if (fh_deliveries_retention_s > 0)
			delete_older(FH_SCHEMA ".deliveries", "finished_at",
						 fh_deliveries_retention_s, now);
		if (fh_failed_records_retention_s > 0)
			delete_older(FH_SCHEMA ".failed_records", "failed_at",
						 fh_failed_records_retention_s, now);
		/* naptime's pace: a short naptime also cleans up promptly */
		next_cleanup = TimestampTzPlusMilliseconds(now, Min(60000, fh_naptime_ms));
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	publish_blocked();			/* before flush() waiters look */
	publish_outcomes();
	reclaim_staging();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The worker is a superuser process in databases whose owners need not be
 * superusers, and ALTER DATABASE ... SET (or ALTER ROLE ... SET) would
 * otherwise reach it: a search_path naming a schema of theirs puts their
 * operators and functions into its SQL, timeouts make every pass fail, read
 * only transactions stop it from recording.  As autovacuum does, force the
 * settings its SQL depends on at PGC_S_OVERRIDE, which outranks every
 * per-database and per-role setting (and postgresql.conf), before
 * connecting.  Its SQL is schema-qualified besides: this is the second
 * wall, not the only one.
 */
static void
seal_session(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0",
					PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * The role that owns the extension in this database (the role that ran
 * CREATE EXTENSION), or InvalidOid when the extension is not installed.
 */
static Oid
extension_owner(void)
{
	Oid			owner = InvalidOid;
	Oid			extoid;

	StartTransactionCommand();
	extoid = get_extension_oid("firehose", true);
	if (OidIsValid(extoid))
	{
		Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(extoid));
		scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
			owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	CommitTransactionCommand();
	return owner;
}

/*
 * Run as the extension's owner; false when the extension is gone.
 *
 * The worker connects as the bootstrap superuser: the owner is known only
 * from this database's pg_extension, that is after connecting, and it need
 * not have LOGIN, which InitPostgres would demand.  From then on its SQL
 * runs with the owner's rights, as a SECURITY DEFINER function of the
 * extension would: the catalog tables are the owner's, and a trigger or rule
 * that the owner puts on them gains nothing it does not have (the owner
 * may have lost superuser since CREATE EXTENSION).  Restricted, as
 * autovacuum runs index functions: no SET ROLE, no temporary objects.  An
 * aborted transaction restores the user in effect when it began, this one.
 */
static bool
become_extension_owner(void)
{
	Oid			owner = extension_owner();

	if (!OidIsValid(owner))
		return false;
	SetUserIdAndSecContext(owner,
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	return true;
}

void
fh_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	sigjmp_buf	local_sigjmp_buf;
	bool		reload = true;
	FhPart	   *done[256];

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	my_slot = NULL;
	for (int i = 0; i < FH_MAX_DATABASES; i++)
		if (fh_shared->dbs[i].dbid == dbid)
			my_slot = &fh_shared->dbs[i];
	if (my_slot == NULL || my_slot->dropping || my_slot->worker_pid != 0)
	{
		LWLockRelease(fh_shared->lock);
		proc_exit(0);
	}
	my_slot->worker_pid = MyProcPid;
	my_slot->worker_latch = MyLatch;
	my_requests = my_slot->requests;
	LWLockRelease(fh_shared->lock);
	before_shmem_exit(worker_on_exit, (Datum) 0);

	seal_session();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("firehose worker");

	if (!become_extension_owner())
	{
		give_back_slot = true;
		proc_exit(0);
	}

	WorkerContext = AllocSetContextCreate(TopMemoryContext, "firehose worker",
										  ALLOCSET_DEFAULT_SIZES);
	keep_freed_memory();
	dlist_init(&waiting_parts);
	dlist_init(&finished_parts);
	dlist_init(&ready_streams);
	dlist_init(&visited_streams);
	dlist_init(&memory_waiters);
	dlist_init(&blocked_watch);
	timers = pairingheap_allocate(timer_cmp, NULL);
	by_slot = MemoryContextAllocZero(WorkerContext,
									 sizeof(FhWorkerStream *) * fh_shared->max_streams);
	worker_nonce = pg_prng_uint64(&pg_global_prng_state) ^ (uint64) GetCurrentTimestamp();
	fh_transport_init();
	schedule_full_probe(GetCurrentTimestamp());

	/* an ERROR lands here: log it, forget unrecorded work, start over */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		ListCell   *lc;

		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		SPI_finish();
		MemoryContextSwitchTo(WorkerContext);
		FlushErrorState();
		foreach(lc, streams)
		{
			FhWorkerStream *ws = lfirst(lc);

			/* what was cut and not finished will be cut again */
			if (ws->slot)
			{
				pg_atomic_sub_fetch_u64(&ws->slot->cut_records, ws->outstanding_records);
				pg_atomic_sub_fetch_u64(&ws->slot->cut_bytes, ws->outstanding_bytes);
			}
			drop_stream_state(ws, false);
		}
		list_free(streams);
		streams = NIL;
		/* drop_stream_state() took each out of them: they are empty */
		Assert(dlist_is_empty(&ready_streams) && pairingheap_is_empty(timers));
		dlist_init(&ready_streams);
		dlist_init(&visited_streams);
		dlist_init(&memory_waiters);
		dlist_init(&blocked_watch);
		pairingheap_reset(timers);
		Assert(parts_memory == 0);
		parts_memory = 0;		/* every part is gone */
		reload = true;
		prepared_unknown = true;	/* to be sure: it lists them again */
		RESUME_INTERRUPTS();
		/* do not spin on a persistent error */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		TimestampTz now;
		int			ndone;
		dlist_mutable_iter it;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			int			old_naptime = fh_naptime_ms;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			mark_all_ready();	/* firehose.enabled may have changed */
			/* a new naptime sets the full probe's pace from now on */
			if (fh_naptime_ms != old_naptime)
				schedule_full_probe(GetCurrentTimestamp());
		}
		MemoryContextSwitchTo(WorkerContext);
		pg_atomic_write_u32(&my_slot->wake, 0);
		if (pg_atomic_exchange_u32(&my_slot->reload, 0) != 0)
			reload = true;

		now = GetCurrentTimestamp();
		take_noted_commits();
		take_noted_prepared();
		if (prepared_ended())
			reload = true;
		take_due_timers(now);
		trim_freed_memory(now);
		if (now >= next_full_probe)
		{
			probe_all();
			schedule_full_probe(now);
		}
		if (reload || prepared_unknown || now >= next_cleanup || work_pending(now))
		{
			/* DROP EXTENSION, or a new owner */
			if (reload && !become_extension_owner())
			{
				give_back_slot = true;
				proc_exit(0);
			}
			worker_transaction(reload, now);
			reload = false;
		}

		/* send what is due */
		now = GetCurrentTimestamp();
		if (fh_enabled)
		{
			dlist_foreach_modify(it, &waiting_parts)
			{
				FhPart	   *p = dlist_container(FhPart, node, it.cur);

				if (sendable(p) && p->next_attempt <= now)
					send_part(p);
			}
		}

		publish_blocked();
		ndone = fh_transport_wait(next_timeout(GetCurrentTimestamp()), done, lengthof(done));
		for (int i = 0; i < ndone; i++)
			handle_response(done[i]);
	}
}
