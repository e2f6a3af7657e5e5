/*-------------------------------------------------------------------------
 *
 * firehose.c
 *	  Module load, GUCs, shared memory and the launcher.
 *
 * The extension must be loaded through shared_preload_libraries: it needs
 * shared memory for the counters that put() and the workers exchange, and a
 * launcher background worker.  The launcher runs connected to no database;
 * it starts one worker per database that asks for one (create_stream(),
 * flush() and the worker's own start-up ask), restarts a worker that died,
 * and never starts one for a database being dropped.  Databases are found
 * without polling: at start-up the launcher tries every non-template
 * database once, and a worker that finds no extension exits for good until
 * asked again.
 *
 * DROP DATABASE waits for the other backends connected to the database; the
 * database's drop hook therefore stops its worker, once PostgreSQL has
 * checked that the caller may drop it.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

FhShared   *fh_shared = NULL;
int			fh_max_streams = 1024;
int			fh_naptime_ms = 10000;
int			fh_deliveries_retention_s = 86400;
int			fh_failed_records_retention_s = 0;
int			fh_worker_memory_kb = 256 * 1024;
int			fh_max_part_records = 1000000;
bool		fh_enabled = true;
char	   *fh_allowed_ca_dirs = NULL;
char	   *fh_test_fault = NULL;
char	   *fh_allowed_destinations = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* DROP DATABASE being run, and the database whose worker its hook stopped */
static bool fh_in_dropdb = false;
static Oid	fh_stopped_for_drop = InvalidOid;

static Size
fh_shmem_size(void)
{
	return add_size(offsetof(FhShared, streams),
					mul_size(sizeof(FhStreamSlot), fh_max_streams));
}

static void
fh_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(fh_shmem_size());
	RequestNamedLWLockTranche("firehose", 1);
}

static void
fh_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	fh_shared = ShmemInitStruct("firehose", fh_shmem_size(), &found);
	if (!found)
	{
		memset(fh_shared, 0, fh_shmem_size());
		fh_shared->lock = &(GetNamedLWLockTranche("firehose"))->lock;
		ConditionVariableInit(&fh_shared->flush_cv);
		fh_shared->max_streams = fh_max_streams;
		for (int i = 0; i < FH_MAX_DATABASES; i++)
		{
			pg_atomic_init_u32(&fh_shared->dbs[i].reload, 0);
			pg_atomic_init_u32(&fh_shared->dbs[i].changes, 0);
			pg_atomic_init_u32(&fh_shared->dbs[i].wake, 0);
			SpinLockInit(&fh_shared->dbs[i].noted_lock);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
fh_stream_slot_init(FhStreamSlot *s, Oid dbid, int32 stream_id)
{
	s->dbid = dbid;
	s->stream_id = stream_id;
	pg_atomic_init_u32(&s->cur_table, 0);
	pg_atomic_init_u64(&s->committed_records, 0);
	pg_atomic_init_u64(&s->committed_bytes, 0);
	pg_atomic_init_u64(&s->prepares, 0);
	pg_atomic_init_u64(&s->cut_records, 0);
	pg_atomic_init_u64(&s->cut_bytes, 0);
	pg_atomic_init_u64(&s->done_records, 0);
	pg_atomic_init_u64(&s->done_bytes, 0);
	pg_atomic_init_u64(&s->first_pending, 0);
	pg_atomic_init_u64(&s->oldest_inflight, 0);
	pg_atomic_init_u64(&s->flush_requested, 0);
	pg_atomic_init_u64(&s->flush_done, 0);
	pg_atomic_init_u32(&s->blocked_reason, FH_BLOCKED_NONE);
	pg_atomic_init_u64(&s->blocked_since, 0);
	pg_atomic_init_u32(&s->active_partitions, 0);
	pg_atomic_init_u32(&s->partitions_exceeded, 0);
	pg_atomic_init_u32(&s->commit_noted, 0);
}

/*
 * fh_stream_slot
 *		The shared slot of a stream; with create, allocate it if missing.
 *
 * Returns NULL when the slot does not exist and create is false.  Raises an
 * ERROR when all firehose.max_streams slots are taken.
 */
FhStreamSlot *
fh_stream_slot(Oid dbid, int32 stream_id, bool create)
{
	FhStreamSlot *free_slot = NULL;

	if (fh_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("firehose is not loaded through shared_preload_libraries"),
				 errhint("Add 'firehose' to shared_preload_libraries in postgresql.conf and restart the server.")));

	LWLockAcquire(fh_shared->lock, LW_SHARED);
	for (int i = 0; i < fh_shared->max_streams; i++)
	{
		FhStreamSlot *s = &fh_shared->streams[i];

		if (s->dbid == dbid && s->stream_id == stream_id)
		{
			LWLockRelease(fh_shared->lock);
			return s;
		}
	}
	LWLockRelease(fh_shared->lock);
	if (!create)
		return NULL;

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < fh_shared->max_streams; i++)
	{
		FhStreamSlot *s = &fh_shared->streams[i];

		if (s->dbid == dbid && s->stream_id == stream_id)
		{
			LWLockRelease(fh_shared->lock);
			return s;
		}
		if (s->dbid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (free_slot == NULL)
	{
		LWLockRelease(fh_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many firehose streams"),
				 errdetail("All %d stream slots of the server are in use.",
						   fh_shared->max_streams),
				 errhint("Raise firehose.max_streams and restart the server.")));
	}
	fh_stream_slot_init(free_slot, dbid, stream_id);
	LWLockRelease(fh_shared->lock);
	return free_slot;
}

void
fh_stream_slot_release(Oid dbid, int32 stream_id)
{
	if (fh_shared == NULL)
		return;
	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < fh_shared->max_streams; i++)
	{
		FhStreamSlot *s = &fh_shared->streams[i];

		if (s->dbid == dbid && s->stream_id == stream_id)
			s->dbid = InvalidOid;
	}
	LWLockRelease(fh_shared->lock);
}

/* the slot of a database, or NULL; caller holds fh_shared->lock */
static FhDbSlot *
fh_db_slot_locked(Oid dbid)
{
	for (int i = 0; i < FH_MAX_DATABASES; i++)
		if (fh_shared->dbs[i].dbid == dbid)
			return &fh_shared->dbs[i];
	return NULL;
}

FhDbSlot *
fh_db_slot(Oid dbid)
{
	FhDbSlot   *slot;

	LWLockAcquire(fh_shared->lock, LW_SHARED);
	slot = fh_db_slot_locked(dbid);
	LWLockRelease(fh_shared->lock);
	return slot;
}

/*
 * fh_db_slots_full
 *		True when this database has no slot and none is free: no worker can
 *		run for it until another database gives its slot back.
 */
bool
fh_db_slots_full(Oid dbid)
{
	bool		full = true;

	LWLockAcquire(fh_shared->lock, LW_SHARED);
	for (int i = 0; i < FH_MAX_DATABASES && full; i++)
		if (fh_shared->dbs[i].dbid == dbid || fh_shared->dbs[i].dbid == InvalidOid)
			full = false;
	LWLockRelease(fh_shared->lock);
	return full;
}

/*
 * fh_wake_worker
 *		Set the worker's latch of a database, once per pending wake.
 */
void
fh_wake_worker(Oid dbid, bool reload)
{
	FhDbSlot   *slot;
	Latch	   *latch;

	if (fh_shared == NULL)
		return;
	slot = fh_db_slot(dbid);
	if (slot == NULL)
		return;
	if (reload)
		pg_atomic_write_u32(&slot->reload, 1);
	if (pg_atomic_exchange_u32(&slot->wake, 1) == 1 && !reload)
		return;					/* a wake is already pending */
	latch = slot->worker_latch;
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * A change of dbid's streams (create, alter, drop, pause, resume) has
 * committed: count it, so that a worker pass that loaded the streams before
 * it can tell (worker.c, schedule_stream), and have the worker reload.
 */
void
fh_streams_changed(Oid dbid)
{
	FhDbSlot   *slot;

	if (fh_shared == NULL || (slot = fh_db_slot(dbid)) == NULL)
		return;
	pg_atomic_fetch_add_u32(&slot->changes, 1);
	fh_wake_worker(dbid, true);
}

/*
 * fh_note_commit
 *		Records were committed into stream s of database dbid: put it into
 *		the database's set of streams the worker's next pass looks at.
 *
 * Called at commit (put.c): never raises an ERROR.  A stream already in
 * the set costs one atomic read, so the set is taken once per stream and
 * worker pass, not once per commit.  The caller has updated the stream's
 * counters before: the worker clears commit_noted (a full barrier) before
 * it reads them, so a commit that finds the flag still set is seen by the
 * pass that clears it.  Without a database slot there is no worker yet;
 * the one that starts looks at every stream and clears the flag.
 */
void
fh_note_commit(Oid dbid, FhStreamSlot *s)
{
	FhDbSlot   *db;

	if (fh_shared == NULL || pg_atomic_read_u32(&s->commit_noted) != 0 ||
		pg_atomic_exchange_u32(&s->commit_noted, 1) != 0)
		return;
	if ((db = fh_db_slot(dbid)) == NULL)
		return;
	SpinLockAcquire(&db->noted_lock);
	if (db->nnoted < FH_NOTED_COMMITS)
		db->noted[db->nnoted++] = (int) (s - fh_shared->streams);
	else
		db->noted_overflow = true;
	SpinLockRelease(&db->noted_lock);
}

/*
 * fh_take_noted_commits
 *		Move the streams noted by fh_note_commit into out (FH_NOTED_COMMITS
 *		entries), emptying the set; returns their number.  *all is set when
 *		the set overflowed since the last call: then every stream of the
 *		database may have commits.  The caller (the worker) clears each
 *		stream's commit_noted before it looks at the stream.
 */
int
fh_take_noted_commits(FhDbSlot *db, int *out, bool *all)
{
	int			n;

	SpinLockAcquire(&db->noted_lock);
	n = db->nnoted;
	memcpy(out, db->noted, n * sizeof(int));
	*all = db->noted_overflow;
	db->nnoted = 0;
	db->noted_overflow = false;
	SpinLockRelease(&db->noted_lock);
	return n;
}

/*
 * fh_note_prepared
 *		A transaction of db's database, fxid, has been prepared with records
 *		in stream s (NULL: with a change of the streams, FH_PREPARED_RELOAD):
 *		put that into the database's notes for the worker.
 *
 * Called at PREPARE TRANSACTION (put.c), after the transaction is in the
 * proc array as prepared and before any session can finish it: never
 * raises an ERROR.  When the notes are full, prepared_overflow tells the
 * worker to find the prepared transactions itself.  Returns true when the
 * worker is to be woken, to take the notes: at the first (it waits for the
 * transaction from then on), and when they are half full (a steady stream
 * of prepared transactions must not overflow them).
 */
bool
fh_note_prepared(FhDbSlot *db, FullTransactionId fxid, FhStreamSlot *s)
{
	bool		wake;

	SpinLockAcquire(&db->noted_lock);
	if (db->nprepared < FH_NOTED_PREPARED)
	{
		db->prepared[db->nprepared].fxid = fxid;
		db->prepared[db->nprepared].stream =
			s ? (int) (s - fh_shared->streams) : FH_PREPARED_RELOAD;
		db->nprepared++;
	}
	else
		db->prepared_overflow = true;
	wake = db->nprepared == 1 || db->nprepared >= FH_NOTED_PREPARED / 2;
	SpinLockRelease(&db->noted_lock);
	return wake;
}

/*
 * fh_take_noted_prepared
 *		Move the notes of fh_note_prepared into out (FH_NOTED_PREPARED
 *		entries), emptying them; returns their number.  *overflow is set
 *		when some were lost since the last call.
 */
int
fh_take_noted_prepared(FhDbSlot *db, FhPreparedNote *out, bool *overflow)
{
	int			n;

	SpinLockAcquire(&db->noted_lock);
	n = db->nprepared;
	memcpy(out, db->prepared, n * sizeof(FhPreparedNote));
	*overflow = db->prepared_overflow;
	db->nprepared = 0;
	db->prepared_overflow = false;
	SpinLockRelease(&db->noted_lock);
	return n;
}

/*
 * fh_request_worker
 *		Ask the launcher for a worker in this database if none runs.
 *
 * Called at commit (put.c): never raises an ERROR, allocates nothing.  A
 * database without a slot is queued for the launcher, which alone takes
 * slots; when the queue is full the launcher is told to try every database.
 */
void
fh_request_worker(Oid dbid)
{
	FhDbSlot   *slot;
	bool		wake_launcher = true;

	if (fh_shared == NULL)
		return;
	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	slot = fh_db_slot_locked(dbid);
	if (slot != NULL)
	{
		/* a worker that found no extension keeps the slot for this request */
		slot->requests++;
		wake_launcher = slot->worker_pid == 0;
	}
	else
	{
		int			i;

		for (i = 0; i < fh_shared->n_db_requests; i++)
			if (fh_shared->db_requests[i] == dbid)
				break;
		if (i == fh_shared->n_db_requests)
		{
			if (i < FH_MAX_DB_REQUESTS)
				fh_shared->db_requests[fh_shared->n_db_requests++] = dbid;
			else
				fh_shared->db_requests_overflowed = true;
		}
	}
	LWLockRelease(fh_shared->lock);
	if (wake_launcher && fh_shared->launcher_latch)
		SetLatch(fh_shared->launcher_latch);
}

/*
 * fh_catalog_access_begin
 *		put() and flush() are granted on their own; the catalog, with its
 *		secrets, is not.  They read it as the bootstrap superuser, with
 *		search_path pinned to pg_catalog so that no operator or function of
 *		the caller's can run with those rights (as a SECURITY DEFINER function
 *		with SET search_path would).  An ERROR in between is undone by the
 *		transaction abort.
 */
void
fh_catalog_access_begin(FhCatalogAccess *ca)
{
	GetUserIdAndSecContext(&ca->save_userid, &ca->save_sec);
	ca->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   ca->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
fh_catalog_access_end(FhCatalogAccess *ca)
{
	SetUserIdAndSecContext(ca->save_userid, ca->save_sec);
	AtEOXact_GUC(true, ca->guc_level);
}

/*
 * A process that reached a "wait:" fault point stays there, its activity
 * saying so, until it is killed: the crash matrix (test/test_crash_matrix.py)
 * waits for that, then kills the worker or stops the server, so each round
 * stops the worker at the same step.  Interrupts are served: SIGTERM ends it
 * as it would end the worker anywhere else.
 */
static void
fault_wait(const char *point)
{
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("firehose: waiting at fault point %s", point));
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Stay at point for FAULT_SLEEP_MS, then go on: widens a window between two
 * steps so that a test can act inside it (see fh_fault_point).
 */
#define FAULT_SLEEP_MS	3000

static void
fault_sleep(const char *point)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), FAULT_SLEEP_MS);
	long		left;

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("firehose: sleeping at fault point %s", point));
	while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	pgstat_report_activity(STATE_RUNNING, "firehose: cutting and recording batches");
}

/* how often this process reached each fault point named in the setting */
static struct
{
	const char *point;
	int			hits;
}			fault_hits[8];

static int
fault_hit(const char *point)
{
	for (int i = 0; i < lengthof(fault_hits); i++)
	{
		if (fault_hits[i].point == NULL)
			fault_hits[i].point = point;
		if (strcmp(fault_hits[i].point, point) == 0)
			return ++fault_hits[i].hits;
	}
	elog(ERROR, "firehose.test_fault: too many fault points");
	return 0;					/* keep the compiler quiet */
}

/*
 * fh_fault_point
 *		Raise an ERROR, or wait to be killed, if firehose.test_fault names
 *		this point.
 *
 * For the fault tests only (test/test_faults.py, test/test_crash_matrix.py):
 * the setting is superuser-only and empty by default, and then this costs
 * one test of a byte.  A point sits where a failure must not lose records,
 * e.g. between two steps that are not in one transaction.  An entry
 * "[wait:|sleep:]name[#n]" acts the n-th time (default the first) this
 * process reaches the point, and every time after: with "wait:" it stops
 * there (fault_wait), with "sleep:" it stays there a while and goes on
 * (fault_sleep), else it raises an ERROR.  The count lets a test stop the
 * worker in the middle of a batch, after some of its parts were recorded.
 */
void
fh_fault_point(const char *point)
{
	char	   *list;
	List	   *names;
	ListCell   *lc;

	if (fh_test_fault == NULL || fh_test_fault[0] == '\0')
		return;
	list = pstrdup(fh_test_fault);
	if (!SplitIdentifierString(list, ',', &names))
		elog(ERROR, "invalid firehose.test_fault: %s", fh_test_fault);
	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		bool		wait = strncmp(name, "wait:", 5) == 0;
		bool		sleep = strncmp(name, "sleep:", 6) == 0;
		char	   *count;
		int			nth = 1;

		if (wait)
			name += 5;
		else if (sleep)
			name += 6;
		if ((count = strchr(name, '#')) != NULL)
		{
			*count = '\0';
			nth = atoi(count + 1);
		}
		if (strcmp(name, point) != 0 || fault_hit(point) < nth)
			continue;
		if (wait)
			fault_wait(point);
		if (sleep)
		{
			fault_sleep(point);
			continue;
		}
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("firehose.test_fault: injected failure at \"%s\"", point)));
	}
	list_free(names);
	pfree(list);
}

uint64
fh_atomic_max_u64(pg_atomic_uint64 *a, uint64 v)
{
	uint64		cur = pg_atomic_read_u64(a);

	while (cur < v)
	{
		if (pg_atomic_compare_exchange_u64(a, &cur, v))
			return v;
	}
	return cur;
}

/*
 * DROP DATABASE waits for every backend connected to the database and gives
 * up after five seconds; stop our worker first so that it can proceed.
 * Called from the database's drop hook (fh_object_access), that is only
 * once PostgreSQL has decided that the caller may drop it.
 */
static void
fh_stop_worker_for_drop(Oid dbid)
{
	FhDbSlot   *slot;
	pid_t		pid = 0;

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	slot = fh_db_slot_locked(dbid);
	if (slot)
	{
		slot->dropping = true;
		pid = slot->worker_pid;
	}
	LWLockRelease(fh_shared->lock);
	if (slot == NULL || pid == 0)
		return;

	kill(pid, SIGTERM);
	for (int i = 0; i < 1000 && slot->worker_pid == pid; i++)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10 * 1000L);
	}
}

static void
fh_drop_finished(Oid dbid, bool dropped)
{
	FhDbSlot   *slot;

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	slot = fh_db_slot_locked(dbid);
	if (slot)
	{
		slot->dropping = false;
		if (dropped)
		{
			slot->dbid = InvalidOid;
			for (int i = 0; i < fh_shared->max_streams; i++)
				if (fh_shared->streams[i].dbid == dbid)
					fh_shared->streams[i].dbid = InvalidOid;
		}
	}
	LWLockRelease(fh_shared->lock);
	/* the worker comes back, or the free slot goes to a waiting database */
	if (slot && fh_shared->launcher_latch)
		SetLatch(fh_shared->launcher_latch);
}

/*
 * The staging tables are created by create_stream(), not by the install
 * script, so they are not members of the extension and DROP EXTENSION would
 * leave them behind, to collide with the streams of a later CREATE
 * EXTENSION.  Drop them with CASCADE, refuse without.
 */
static bool
fh_drop_extension_prepare(DropStmt *stmt)
{
	ListCell   *lc;
	bool		ours = false;
	List	   *tables = NIL;
	Oid			extoid;

	foreach(lc, stmt->objects)
		if (strcmp(strVal(lfirst(lc)), "firehose") == 0)
			ours = true;
	extoid = ours ? get_extension_oid("firehose", true) : InvalidOid;
	/* a caller who may not drop the extension gets PostgreSQL's own error */
	if (!OidIsValid(extoid) || !pg_extension_ownercheck(extoid, GetUserId()))
		return false;

	SPI_connect();
	SPI_execute("SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
				"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
				"WHERE n.nspname OPERATOR(pg_catalog.=) 'firehose' "
				"AND c.relname OPERATOR(pg_catalog.~) '^stage_[0-9]+_[0-9]+$' ORDER BY 1",
				true, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
		tables = lappend(tables, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	if (tables != NIL && stmt->behavior != DROP_CASCADE)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension firehose because streams exist"),
				 errdetail("%d staging tables hold the records of the streams.", list_length(tables)),
				 errhint("Drop the streams with firehose.drop_stream(), or use DROP EXTENSION firehose CASCADE (records not yet delivered are lost).")));
	foreach(lc, tables)
		SPI_execute(psprintf("DROP TABLE %s", (char *) lfirst(lc)), false, 0);
	SPI_finish();
	return true;
}

/* every stream slot of this database goes with the extension */
static void
fh_forget_database_streams(Oid dbid)
{
	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < fh_shared->max_streams; i++)
		if (fh_shared->streams[i].dbid == dbid)
			fh_shared->streams[i].dbid = InvalidOid;
	LWLockRelease(fh_shared->lock);
	fh_wake_worker(dbid, true);
}

/*
 * The drop hook of a database runs inside dropdb() after PostgreSQL's own
 * checks: standard_ProcessUtility refused DROP DATABASE in a transaction
 * block, and dropdb() found the database and checked that the caller owns
 * it (or is a superuser).  Stopping the worker any earlier would let every
 * role that can connect stop delivery with a DROP DATABASE that fails.
 * dropdb() refuses template databases and the caller's own database only
 * after the hook; those are left alone here too.
 */
static void
fh_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == DatabaseRelationId &&
		fh_shared != NULL && fh_in_dropdb && objectId != MyDatabaseId)
	{
		HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(objectId));
		bool		is_template = false;

		if (HeapTupleIsValid(tup))
		{
			is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
			ReleaseSysCache(tup);
		}
		if (!is_template)
		{
			fh_stopped_for_drop = objectId;
			fh_stop_worker_for_drop(objectId);
		}
	}
}

static void
fh_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			dropped_db;
	bool		dropping_extension = false;

	/* the drop hook, if PostgreSQL lets the caller get that far, stops the worker */
	fh_in_dropdb = IsA(parsetree, DropdbStmt);
	fh_stopped_for_drop = InvalidOid;

	if (fh_shared && IsA(parsetree, DropStmt) &&
		((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		dropping_extension = fh_drop_extension_prepare((DropStmt *) parsetree);

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		dropped_db = fh_stopped_for_drop;
		fh_in_dropdb = false;
		fh_stopped_for_drop = InvalidOid;
		if (OidIsValid(dropped_db))
			fh_drop_finished(dropped_db, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	dropped_db = fh_stopped_for_drop;
	fh_in_dropdb = false;
	fh_stopped_for_drop = InvalidOid;
	if (OidIsValid(dropped_db))
		fh_drop_finished(dropped_db, true);
	if (dropping_extension)
		fh_forget_database_streams(MyDatabaseId);
}

/* GUC check hook of firehose.allowed_destinations: the list's syntax */
static bool
check_allowed_destinations(char **newval, void **extra, GucSource source)
{
	char		err[512];

	if (fh_netacl_check_list(*newval, err, sizeof(err)))
		return true;
	GUC_check_errdetail("%s", err);
	return false;
}

void
_PG_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
	{
		/* loaded by CREATE EXTENSION or a function call: SQL works, no worker */
		ereport(WARNING,
				(errmsg("firehose must be loaded through shared_preload_libraries"),
				 errdetail("Without it no background worker delivers records."),
				 errhint("Add 'firehose' to shared_preload_libraries in postgresql.conf and restart the server.")));
		return;
	}

	DefineCustomBoolVariable("firehose.enabled",
							 "Deliver records; off stops every worker from sending.",
							 NULL, &fh_enabled, true, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("firehose.max_streams",
							"Maximum number of streams in the whole server.",
							NULL, &fh_max_streams, 1024, 16, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("firehose.naptime",
							"Pace of the worker's housekeeping: retention, and every tenth a probe of all streams.",
							"Commits, and prepared transactions when they end, "
							"tell the worker at once; the probe of every stream's "
							"staging tables is only a defence in depth.",
							&fh_naptime_ms, 10000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("firehose.deliveries_retention",
							"How long rows of firehose.deliveries are kept.",
							NULL, &fh_deliveries_retention_s, 86400, 0,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("firehose.allowed_ca_dirs",
							   "Directories whose files non-superusers may name as ca_file.",
							   "A comma-separated list; empty: only superusers set ca_file.",
							   &fh_allowed_ca_dirs, "", PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("firehose.failed_records_retention",
							"How long rows of firehose.failed_records are kept; 0 keeps them until redriven or deleted.",
							"The default keeps them: they are the only copy of records that could not be delivered.",
							&fh_failed_records_retention_s, 0, 0,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("firehose.worker_memory",
							"Memory a database's worker may give to requests in flight and their answers.",
							"Parts wait to be read while the parts in flight use it up (one part "
							"may always be in flight); an answer larger than its share is cut off "
							"and the request retried.",
							&fh_worker_memory_kb, 256 * 1024, 8 * 1024,
							MAX_KILOBYTES, PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("firehose.max_part_records",
							"Most records one request carries, whatever the destination allows.",
							NULL, &fh_max_part_records, 1000000, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("firehose.test_fault",
							   "For tests only: fail at the named fault points.",
							   "A comma-separated list of fault point names; "
							   "the process that reaches one raises an ERROR, "
							   "or waits to be killed when the name has the prefix \"wait:\"; "
							   "\"name#n\" acts from the n-th time the process reaches it.",
							   &fh_test_fault, "", PGC_SUSET,
							   GUC_NOT_IN_SAMPLE | GUC_LIST_INPUT,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("firehose.allowed_destinations",
							   "Hosts and addresses streams may send to.",
							   "Comma-separated entries, the first that matches decides: "
							   "\"*\", an address with an optional /prefix length, a host "
							   "name or \"*.domain\"; \"!\" before one refuses it.",
							   &fh_allowed_destinations, FH_NETACL_DEFAULT, PGC_SUSET, 0,
							   check_allowed_destinations, NULL, NULL);
	MarkGUCPrefixReserved("firehose");

	/* pg_upgrade runs the server with binary upgrade: no workers then */
	if (IsBinaryUpgrade)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = fh_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = fh_shmem_startup;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = fh_ProcessUtility;
	prev_object_access_hook = object_access_hook;
	object_access_hook = fh_object_access;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "firehose");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "fh_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "firehose launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "firehose launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

typedef struct FhWorkerHandle
{
	Oid			dbid;
	BackgroundWorkerHandle *handle;
	TimestampTz not_before;
} FhWorkerHandle;

static FhWorkerHandle launcher_handles[FH_MAX_DATABASES];

/*
 * A database waiting for a slot: it asked for a worker (asked), or the
 * start-up scan tries it.  In the launcher's own memory, so that any number
 * can wait; each takes a slot as one becomes free.
 */
typedef struct FhWaitingDb
{
	Oid			dbid;
	bool		asked;
	bool		warned;
} FhWaitingDb;

static List *launcher_waiting = NIL;

static void
fh_launcher_enqueue(Oid dbid, bool asked)
{
	MemoryContext old;
	ListCell   *lc;
	FhWaitingDb *w;

	foreach(lc, launcher_waiting)
	{
		w = lfirst(lc);
		if (w->dbid == dbid)
		{
			w->asked |= asked;
			return;
		}
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	w = palloc0(sizeof(FhWaitingDb));
	w->dbid = dbid;
	w->asked = asked;
	launcher_waiting = lappend(launcher_waiting, w);
	MemoryContextSwitchTo(old);
}

/* at start-up (and when requests were lost): every database may want one */
static void
fh_launcher_request_all_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
			fh_launcher_enqueue(db->oid, false);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* can a worker connect to this database (it may have been dropped since)? */
static bool
fh_launcher_database_usable(Oid dbid)
{
	HeapTuple	tup;
	bool		usable = false;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dbid));
	if (HeapTupleIsValid(tup))
	{
		usable = ((Form_pg_database) GETSTRUCT(tup))->datallowconn;
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	return usable;
}

/* a free slot for dbid, or NULL when all are taken; caller holds the lock */
static FhDbSlot *
fh_db_slot_take(Oid dbid)
{
	for (int i = 0; i < FH_MAX_DATABASES; i++)
	{
		FhDbSlot   *slot = &fh_shared->dbs[i];

		if (slot->dbid != InvalidOid)
			continue;
		slot->dbid = dbid;
		slot->worker_pid = 0;
		slot->worker_latch = NULL;
		slot->dropping = false;
		slot->requests = 0;
		pg_atomic_write_u32(&slot->reload, 1);
		pg_atomic_write_u32(&slot->wake, 1);
		return slot;
	}
	return NULL;
}

/*
 * Take the requests the backends queued, and give waiting databases the
 * free slots, oldest first.  A database that asked and finds every slot
 * taken is told about once in the log.
 */
static void
fh_launcher_assign_slots(void)
{
	bool		rescan;
	ListCell   *lc;

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < fh_shared->n_db_requests; i++)
		fh_launcher_enqueue(fh_shared->db_requests[i], true);
	fh_shared->n_db_requests = 0;
	rescan = fh_shared->db_requests_overflowed;
	fh_shared->db_requests_overflowed = false;
	LWLockRelease(fh_shared->lock);
	if (rescan)
		fh_launcher_request_all_databases();

	foreach(lc, launcher_waiting)
	{
		FhWaitingDb *w = lfirst(lc);
		FhDbSlot   *slot = NULL;

		if (fh_db_slots_full(w->dbid))
		{
			if (w->asked && !w->warned)
				ereport(WARNING,
						(errmsg("firehose cannot run a worker for database %u: all %d database slots are taken",
								w->dbid, FH_MAX_DATABASES),
						 errdetail("Its records are kept and delivered once another database drops the extension or is dropped.")));
			w->warned |= w->asked;
			continue;
		}
		/* only the launcher takes slots: the free one stays free meanwhile */
		if (fh_launcher_database_usable(w->dbid))
		{
			LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
			slot = fh_db_slot_locked(w->dbid);
			if (slot == NULL)
				slot = fh_db_slot_take(w->dbid);
			LWLockRelease(fh_shared->lock);
			Assert(slot != NULL);
		}
		launcher_waiting = foreach_delete_current(launcher_waiting, lc);
		pfree(w);
	}
}

static bool
fh_launcher_start_worker(FhWorkerHandle *h, Oid dbid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "firehose");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "fh_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "firehose worker for database %u", dbid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "firehose worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dbid);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &h->handle))
	{
		static TimestampTz last_warning = 0;
		TimestampTz now = GetCurrentTimestamp();

		/* once a minute: the launcher tries again every few seconds */
		if (TimestampDifferenceExceeds(last_warning, now, 60000))
		{
			ereport(WARNING,
					(errmsg("firehose could not start a worker for database %u", dbid),
					 errhint("Raise max_worker_processes.")));
			last_warning = now;
		}
		h->handle = NULL;
		return false;
	}
	h->dbid = dbid;
	return true;
}

/*
 * One pass of the launcher: start a worker for every database slot that
 * wants one and has none running.
 */
static long
fh_launcher_pass(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next_ms = 60000;
	bool		no_processes = false;

	fh_launcher_assign_slots();
	for (int i = 0; i < FH_MAX_DATABASES; i++)
	{
		FhDbSlot   *slot = &fh_shared->dbs[i];
		FhWorkerHandle *h = &launcher_handles[i];
		Oid			dbid;
		bool		want;
		pid_t		pid;

		LWLockAcquire(fh_shared->lock, LW_SHARED);
		dbid = slot->dbid;
		want = OidIsValid(dbid) && !slot->dropping;
		LWLockRelease(fh_shared->lock);

		if (h->handle != NULL)
		{
			if (h->dbid == dbid &&
				GetBackgroundWorkerPid(h->handle, &pid) != BGWH_STOPPED)
				continue;		/* starting or running */
			pfree(h->handle);
			h->handle = NULL;
			/* a worker that stopped is restarted, but not in a tight loop */
			h->not_before = TimestampTzPlusMilliseconds(now, 1000);
		}
		if (!want || no_processes)
			continue;
		if (now < h->not_before)
		{
			next_ms = Min(next_ms, 1000);
			continue;
		}
		if (!fh_launcher_start_worker(h, dbid))
		{
			/* no background worker slot is free: none for the next either */
			no_processes = true;
			next_ms = Min(next_ms, 5000);
		}
	}
	return next_ms;
}

void
fh_launcher_main(Datum arg)
{
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("firehose launcher");

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	fh_shared->launcher_pid = MyProcPid;
	fh_shared->launcher_latch = &MyProc->procLatch;
	LWLockRelease(fh_shared->lock);

	fh_launcher_request_all_databases();

	while (!ShutdownRequestPending)
	{
		long		timeout;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		timeout = fh_launcher_pass();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	LWLockAcquire(fh_shared->lock, LW_EXCLUSIVE);
	fh_shared->launcher_latch = NULL;
	fh_shared->launcher_pid = 0;
	LWLockRelease(fh_shared->lock);
	proc_exit(0);
}
