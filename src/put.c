/*-------------------------------------------------------------------------
 *
 * put.c
 *	  firehose.put() and put_batch(): the producer's hot path.
 *
 * put() must cost about what one INSERT into an unlogged table costs, so it
 * runs no SQL: a backend-local hash maps the stream name to what put needs
 * (the staging tables, the limits, the shared slot), filled with one query
 * on first use and dropped when firehose.stream changes (create, alter,
 * drop, pause and resume send a relcache invalidation for that table).  The
 * record goes straight into the stream's current staging table with
 * heap_insert; the table has no index.
 *
 * The worker must learn about records only when they commit: put() counts
 * records and bytes per stream in backend memory (per subtransaction level,
 * so that a rolled-back savepoint takes its counts with it), and the commit
 * callback adds them to the stream's shared counters and sets the worker's
 * latch once per transaction, and only when the worker has something new to
 * decide (a first record after a cut, a full buffer, or a stream that
 * delivers at once).  Aborted transactions touch nothing shared.  A
 * prepared transaction is committed later, perhaps by another session
 * whose callback knows nothing of its records: at PREPARE, its streams are
 * noted with its id, and the worker waits for it to end.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "access/heapam.h"
#include "executor/tuptable.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#define FH_NAME_MAX 64

typedef struct PutCacheEntry
{
	char		name[FH_NAME_MAX + 1];	/* hash key */
	int32		stream_id;
	bool		paused;
	Oid			tables[FH_STAGE_TABLES];
	int64		max_record_size;
	int64		max_buffered_bytes;
	int64		buffer_size;
	FhStreamSlot *slot;
} PutCacheEntry;

/* what this transaction put, per stream and subtransaction level */
typedef struct PendingCount
{
	FhStreamSlot *slot;
	int			level;
	int64		records;
	int64		bytes;
	int64		buffer_size;
	bool		paused;
} PendingCount;

static HTAB *put_cache = NULL;
static bool put_cache_stale = false;
static Oid	stream_relid = InvalidOid;
static Oid	record_seq = InvalidOid;
static bool callbacks_registered = false;
static PendingCount *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static bool reload_pending = false;

/*
 * Relcache callback: firehose.stream changed (or the whole cache was reset).
 *
 * This only marks the cache stale; put_cache_lookup() drops it on its next
 * call.  The callback runs inside AcceptInvalidationMessages(), which every
 * first lock of a relation in a transaction calls, and put() takes such
 * locks after its lookup: the staging table's in table_open(), the record
 * id sequence's in nextval_internal(), firehose.stream's in the catalog
 * query of a cache miss.  Freeing the cache here freed the entry (and the
 * hash table, and the sequence's oid) that the put() in progress was still
 * using; autovacuum's ANALYZE of firehose.stream, or any alter_stream(),
 * during steady puts then crashed a backend with SIGSEGV (issue 9).  An
 * entry looked up before the invalidation is good for the rest of that
 * call: the staging tables it names are locked before they are used, and a
 * put that overlaps an alter_stream() may see either version.
 */
static void
put_cache_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == stream_relid)
		put_cache_stale = true;
}

/*
 * At commit: add what the transaction put to the streams' counters, and wake
 * the worker only when it has something new to decide: the first record
 * after a cut (it starts the buffer interval; with an interval of 0 it is
 * due at once), or a commit that fills the buffer.  A worker that is busy
 * sees the rest when its requests finish; a paused stream needs no wake.
 * Every commit notes its streams for the worker's next pass, which looks at
 * those and not at every stream (fh_note_commit).
 */
static void
pending_flush_at_commit(void)
{
	bool		wake = false;

	for (int i = 0; i < npending; i++)
	{
		PendingCount *p = &pending[i];
		FhStreamSlot *s = p->slot;
		uint64		zero = 0;
		uint64		committed;
		uint64		cut;
		bool		first;

		if (p->records == 0)
			continue;
		pg_atomic_add_fetch_u64(&s->committed_records, p->records);
		committed = pg_atomic_add_fetch_u64(&s->committed_bytes, p->bytes);
		cut = pg_atomic_read_u64(&s->cut_bytes);
		first = pg_atomic_compare_exchange_u64(&s->first_pending, &zero,
											   (uint64) GetCurrentTimestamp());
		/* even paused: the put may have missed a resume() */
		fh_note_commit(MyDatabaseId, s);
		if (p->paused)
			continue;
		if (first ||
			(committed - cut >= (uint64) p->buffer_size &&
			 committed - p->bytes - cut < (uint64) p->buffer_size))
			wake = true;
	}
	if (wake)
		fh_wake_worker(MyDatabaseId, false);
}

/*
 * At PREPARE TRANSACTION: note the streams the transaction put into (and
 * whether it changed the streams) with its id, for the worker, which looks
 * at them when the transaction has ended (fh_note_prepared), and count it
 * in the slot's prepares (for flush()).  The commit counters stay as they
 * are; the worker's cut of those records brings committed_* up to what it
 * cut.  Without a database slot no worker ran yet: the one
 * that starts lists the prepared transactions.
 */
static void
pending_note_at_prepare(void)
{
	FullTransactionId fxid = GetTopFullTransactionIdIfAny();
	FhDbSlot   *db;
	bool		wake = false;

	if ((npending == 0 && !reload_pending) || fh_shared == NULL ||
		!FullTransactionIdIsValid(fxid) ||
		(db = fh_db_slot(MyDatabaseId)) == NULL)
		return;
	for (int i = 0; i < npending; i++)
	{
		bool		seen = false;

		if (pending[i].records == 0)
			continue;
		/* one note per stream, not per subtransaction level */
		for (int j = 0; j < i && !seen; j++)
			seen = pending[j].slot == pending[i].slot && pending[j].records > 0;
		if (seen)
			continue;
		wake |= fh_note_prepared(db, fxid, pending[i].slot);
		/* tells flush() that a cut may be needed (flush_joins_open_batch) */
		pg_atomic_add_fetch_u64(&pending[i].slot->prepares, 1);
	}
	if (reload_pending)
		wake |= fh_note_prepared(db, fxid, NULL);
	/* after all of them: one transaction's notes are taken together */
	if (wake)
		fh_wake_worker(MyDatabaseId, false);
}

static void
put_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			pending_flush_at_commit();
			if (reload_pending)
			{
				fh_request_worker(MyDatabaseId);
				fh_streams_changed(MyDatabaseId);
			}
			break;
		case XACT_EVENT_PREPARE:
			pending_note_at_prepare();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			break;
		default:
			return;
	}
	npending = 0;
	reload_pending = false;
}

static void
put_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			j = 0;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level < level)
				pending[j++] = pending[i];
		npending = j;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level >= level)
				pending[i].level = level - 1;
	}
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(put_xact_callback, NULL);
	RegisterSubXactCallback(put_subxact_callback, NULL);
	CacheRegisterRelcacheCallback(put_cache_invalidate, (Datum) 0);
	callbacks_registered = true;
}

void
fh_reload_at_commit(void)
{
	register_callbacks();
	reload_pending = true;
}

static void
count_pending(PutCacheEntry *e, int64 records, int64 bytes)
{
	int			level = GetCurrentTransactionNestLevel();
	PendingCount *p;

	for (int i = npending - 1; i >= 0; i--)
	{
		if (pending[i].slot == e->slot && pending[i].level == level)
		{
			pending[i].records += records;
			pending[i].bytes += bytes;
			return;
		}
	}
	if (npending == maxpending)
	{
		maxpending = Max(8, maxpending * 2);
		if (pending == NULL)
			pending = MemoryContextAlloc(TopMemoryContext, sizeof(PendingCount) * maxpending);
		else
			pending = repalloc(pending, sizeof(PendingCount) * maxpending);
	}
	p = &pending[npending++];
	p->slot = e->slot;
	p->level = level;
	p->records = records;
	p->bytes = bytes;
	p->buffer_size = e->buffer_size;
	p->paused = e->paused;
}

static int64
pending_bytes(FhStreamSlot *slot)
{
	int64		b = 0;

	for (int i = 0; i < npending; i++)
		if (pending[i].slot == slot)
			b += pending[i].bytes;
	return b;
}

static void
stream_not_found(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("stream \"%s\" does not exist", name),
			 errhint("Create it with firehose.create_stream(), or list the streams with SELECT name FROM firehose.streams.")));
}

/*
 * Look a stream up by name, from the cache or with one query.
 */
static PutCacheEntry *
put_cache_lookup(text *name_text)
{
	char		name[FH_NAME_MAX + 1];
	int			len = VARSIZE_ANY_EXHDR(name_text);
	PutCacheEntry *e;
	bool		found;
	Oid			nsp;

	if (len > FH_NAME_MAX)
		stream_not_found(text_to_cstring(name_text));
	memset(name, 0, sizeof(name));
	memcpy(name, VARDATA_ANY(name_text), len);

	/* no pointer into the cache is alive between calls: drop it here */
	if (put_cache != NULL && put_cache_stale)
	{
		hash_destroy(put_cache);
		put_cache = NULL;
	}
	if (put_cache == NULL)
	{
		HASHCTL		ctl;

		register_callbacks();
		/* an invalidation from here on makes the next call rebuild */
		put_cache_stale = false;
		nsp = get_namespace_oid(FH_SCHEMA, false);
		stream_relid = get_relname_relid("stream", nsp);
		record_seq = get_relname_relid("record_id_seq", nsp);
		if (!OidIsValid(stream_relid) || !OidIsValid(record_seq))
			elog(ERROR, "firehose catalog tables are missing");
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = FH_NAME_MAX + 1;
		ctl.entrysize = sizeof(PutCacheEntry);
		put_cache = hash_create("firehose streams", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}

	e = hash_search(put_cache, name, HASH_FIND, NULL);
	if (e)
		return e;

	/* miss: one query, then the cache */
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1] = {PointerGetDatum(name_text)};
		PutCacheEntry tmp;
		FhStreamConfig cfg;
		bool		isnull;
		Jsonb	   *opts;
		HeapTuple	tup;
		TupleDesc	desc;

		FhCatalogAccess ca;

		fh_catalog_access_begin(&ca);
		SPI_connect();
		if (SPI_execute_with_args("SELECT id, status OPERATOR(pg_catalog.=) 'PAUSED', options "
								  "FROM firehose.stream WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up firehose stream");
		if (SPI_processed == 0)
		{
			SPI_finish();
			fh_catalog_access_end(&ca);
			stream_not_found(name);
		}
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		memset(&tmp, 0, sizeof(tmp));
		tmp.stream_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		tmp.paused = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		opts = DatumGetJsonbP(SPI_getbinval(tup, desc, 3, &isnull));
		fh_config_from_options(opts, &cfg);
		tmp.max_record_size = cfg.max_record_size;
		tmp.max_buffered_bytes = cfg.max_buffered_bytes;
		tmp.buffer_size = cfg.buffer_size;
		SPI_finish();
		fh_catalog_access_end(&ca);

		if (!fh_stage_tables(tmp.stream_id, tmp.tables))
			stream_not_found(name); /* dropped since our snapshot */
		tmp.slot = fh_stream_slot(MyDatabaseId, tmp.stream_id, true);

		e = hash_search(put_cache, name, HASH_ENTER, &found);
		memcpy(((char *) e) + sizeof(e->name), ((char *) &tmp) + sizeof(tmp.name),
			   sizeof(PutCacheEntry) - sizeof(e->name));
	}
	return e;
}

/*
 * fh_stream_id_by_name: for flush() and friends.
 */
int32
fh_stream_id_by_name(text *name, bool *paused)
{
	PutCacheEntry *e = put_cache_lookup(name);

	*paused = e->paused;
	return e->stream_id;
}

/*
 * Refuse a record of len bytes that is too large, or that would take the
 * stream past max_buffered_bytes (adding extra bytes this call put already).
 */
static void
check_record(PutCacheEntry *e, int len, int64 extra)
{
	if (len > e->max_record_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("record of %d bytes is larger than max_record_size of stream \"%s\"",
						len, e->name),
				 errdetail("The stream accepts records of at most " INT64_FORMAT " bytes.",
						   e->max_record_size),
				 errhint("Split the record, or raise the limit with firehose.alter_stream('%s', '{\"max_record_size\": %d}').",
						 e->name, len)));

	if (e->max_buffered_bytes > 0)
	{
		int64		buffered = (int64) (pg_atomic_read_u64(&e->slot->committed_bytes) -
										pg_atomic_read_u64(&e->slot->done_bytes)) +
			pending_bytes(e->slot) + extra;

		if (buffered + len > e->max_buffered_bytes)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("stream \"%s\" has reached max_buffered_bytes", e->name),
					 errdetail("It holds " INT64_FORMAT " bytes not yet delivered; with this record of %d bytes it would pass the limit of " INT64_FORMAT " bytes.",
							   buffered, len, e->max_buffered_bytes),
					 errhint("Wait for delivery (see firehose.stream_status), resume the stream if it is paused, or raise max_buffered_bytes with firehose.alter_stream().")));
	}
}

/*
 * The stream's current staging table, opened for insert.
 *
 * The protocol with the worker's truncation (fh_stage_maintain): put holds
 * RowExclusiveLock on the table it inserts into until its transaction ends,
 * and the worker truncates a table only under an AccessExclusiveLock it got
 * without waiting, so never while a put is writing it or has rows in it
 * that are not committed.  cur_table may move on between the read below
 * and the lock: the record then lands in a table that is no longer current,
 * which is harmless, because a batch scans all the tables of the ring and
 * the worker truncates a table only when every committed row in it is
 * consumed.  If the worker truncated that table in the meantime, the lock
 * waits for its commit and the insert goes into the empty table.
 */
static Relation
open_current_table(PutCacheEntry *e)
{
	uint32		cur = pg_atomic_read_u32(&e->slot->cur_table) % FH_STAGE_TABLES;
	Relation	rel = try_table_open(e->tables[cur], RowExclusiveLock);

	if (rel == NULL)
		stream_not_found(e->name);	/* dropped since the lookup */
	return rel;
}

/* fill the four columns of a staging row; data is a bytea-like varlena */
static int64
stage_values(Datum *values, Datum data, TimestampTz now)
{
	int64		id = nextval_internal(record_seq, false);

	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	values[2] = TimestampTzGetDatum(now);
	values[3] = data;
	return id;
}

/*
 * Insert one record, a varlena whose bytes are the record (bytea or text
 * as they are), into the stream's current staging table.
 */
static int64
put_one(PutCacheEntry *e, Datum data)
{
	int			len = VARSIZE_ANY_EXHDR(DatumGetPointer(data));
	Relation	rel;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	HeapTuple	tup;
	int64		id;

	check_record(e, len, 0);
	rel = open_current_table(e);
	id = stage_values(values, data, GetCurrentTimestamp());
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	/* no free space map: records stay in put order within a backend */
	heap_insert(rel, tup, GetCurrentCommandId(true), HEAP_INSERT_SKIP_FSM, NULL);
	heap_freetuple(tup);
	table_close(rel, NoLock);

	count_pending(e, 1, len);
	return id;
}

/*
 * fh_put_internal
 *		put() of a text or bytea varlena, for C callers such as the capture
 *		trigger (which builds its record in place, so it is not copied).
 */
int64
fh_put_internal(text *stream, struct varlena *record)
{
	return put_one(put_cache_lookup(stream), PointerGetDatum(record));
}

static void
record_is_null(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("record data must not be NULL"),
			 errhint("Put an empty string or a JSON null ('null'::jsonb) to send an empty or null record.")));
}

static PutCacheEntry *
stream_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream name must not be NULL")));
	return put_cache_lookup(PG_GETARG_TEXT_PP(0));
}

/*
 * The record of a datum of type typid as a varlena of its bytes: bytea and
 * text as they are (no copy unless toasted), jsonb as its text form.
 */
static Datum
record_datum(Datum d, Oid typid)
{
	if (typid == JSONBOID)
	{
		Jsonb	   *j = DatumGetJsonbP(d);

		return PointerGetDatum(cstring_to_text(JsonbToCString(NULL, &j->root, VARSIZE(j))));
	}
	return PointerGetDatum(PG_DETOAST_DATUM_PACKED(d));
}

PG_FUNCTION_INFO_V1(fh_put);
Datum
fh_put(PG_FUNCTION_ARGS)
{
	PutCacheEntry *e = stream_arg(fcinfo);

	if (PG_ARGISNULL(1))
		record_is_null();
	PG_RETURN_INT64(put_one(e, record_datum(PG_GETARG_DATUM(1),
											get_fn_expr_argtype(fcinfo->flinfo, 1))));
}

#define PUT_BATCH_CHUNK 1000

/*
 * put_batch: the records of an array, with one table open, one clock read
 * and heap_multi_insert, as COPY does.
 */
PG_FUNCTION_INFO_V1(fh_put_batch);
Datum
fh_put_batch(PG_FUNCTION_ARGS)
{
	PutCacheEntry *e = stream_arg(fcinfo);
	ArrayType  *arr;
	Oid			elemtype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int64		bytes = 0;
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	TimestampTz now = GetCurrentTimestamp();
	CommandId	cid = GetCurrentCommandId(true);

	if (PG_ARGISNULL(1))
		record_is_null();
	arr = PG_GETARG_ARRAYTYPE_P(1);
	elemtype = ARR_ELEMTYPE(arr);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		int			len;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("record data must not be NULL"),
					 errdetail("Element %d of the array is NULL.", i + 1)));
		elems[i] = record_datum(elems[i], elemtype);
		len = VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i]));
		check_record(e, len, bytes);
		bytes += len;
	}
	if (n == 0)
		PG_RETURN_INT64(0);

	rel = open_current_table(e);
	desc = RelationGetDescr(rel);
	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * Min(n, PUT_BATCH_CHUNK));
	for (int i = 0; i < Min(n, PUT_BATCH_CHUNK); i++)
		slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	for (int done = 0; done < n; done += PUT_BATCH_CHUNK)
	{
		int			chunk = Min(n - done, PUT_BATCH_CHUNK);

		for (int i = 0; i < chunk; i++)
		{
			TupleTableSlot *slot = slots[i];

			ExecClearTuple(slot);
			stage_values(slot->tts_values, elems[done + i], now);
			memset(slot->tts_isnull, 0, sizeof(bool) * 4);
			ExecStoreVirtualTuple(slot);
		}
		heap_multi_insert(rel, slots, chunk, cid, HEAP_INSERT_SKIP_FSM, bistate);
	}
	for (int i = 0; i < Min(n, PUT_BATCH_CHUNK); i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	table_close(rel, NoLock);

	count_pending(e, n, bytes);
	PG_RETURN_INT64(n);
}
