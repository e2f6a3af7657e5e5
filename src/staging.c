/*-------------------------------------------------------------------------
 *
 * staging.c
 *	  Reading batches out of the staging tables, and reclaiming them.
 *
 * Each stream has a ring of FH_STAGE_TABLES tables, firehose.stage_<id>_<k>
 * (id, txid, arrival, data), unlogged unless the stream is durable, without
 * indexes.  Producers insert into the current one (a counter in the stream's
 * shared slot).
 *
 * Batches follow PgQ's ticks: the worker takes snapshots (pg_snapshot, as
 * pg_current_snapshot() returns them), and a batch is the set of records
 * whose top-level transaction is visible in its upper snapshot and not in
 * its lower one.  Commits that arrive out of record-id order therefore land
 * in the batch whose snapshot first sees them, and none is skipped.  Rows of
 * aborted transactions (or subtransactions) are never returned: each row's
 * commit is checked too (row_committed).
 *
 * A batch is read in parts, each at most what one request may carry, page by
 * page in block order from just after the last tuple read: no index, no
 * sort, and memory bounded by one part.  A batch restored after a restart jumps
 * over the stretches of its scan whose parts were recorded already.
 *
 * Nothing is deleted row by row.  After each completed batch the producers
 * move to the next table of the ring if it is empty; a table
 * that is not current is truncated once every committed row in it is
 * visible in the snapshot below which everything has been delivered.  The
 * check runs under an AccessExclusiveLock taken with NOWAIT, so a producer
 * still writing the table (or one about to) simply delays the truncation.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <sys/mman.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/detoast.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* attribute numbers of a staging row */
#define STAGE_ID		0
#define STAGE_TXID		1
#define STAGE_ARRIVAL	2
#define STAGE_DATA		3

/*
 * fh_stage_tables
 *		The oids of a stream's staging tables, firehose.stage_<id>_<k>.
 *		False when any is missing (the stream was dropped since the
 *		caller's snapshot: catalog lookups see newer state).
 */
bool
fh_stage_tables(int32 stream_id, Oid tables[FH_STAGE_TABLES])
{
	Oid			nsp = get_namespace_oid(FH_SCHEMA, false);

	for (int k = 0; k < FH_STAGE_TABLES; k++)
	{
		char		relname[NAMEDATALEN];

		snprintf(relname, sizeof(relname), "stage_%d_%d", stream_id, k);
		tables[k] = get_relname_relid(relname, nsp);
		if (!OidIsValid(tables[k]))
			return false;
	}
	return true;
}

/*
 * fh_snapshot_visible
 *		Is a transaction id "visible" in a pg_snapshot, by the snapshot's
 *		numbers alone (as pg_visible_in_snapshot() decides)?
 */
bool
fh_snapshot_visible(const FhSnapshot *snap, uint64 txid)
{
	uint32		lo = 0,
				hi = snap->nxip;

	if (txid < U64FromFullTransactionId(snap->xmin))
		return true;
	if (txid >= U64FromFullTransactionId(snap->xmax))
		return false;
	/* xip is sorted */
	while (lo < hi)
	{
		uint32		mid = lo + (hi - lo) / 2;
		uint64		x = U64FromFullTransactionId(snap->xip[mid]);

		if (x == txid)
			return false;
		if (x < txid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return true;
}

/* pg_current_snapshot() of the active snapshot, in CurrentMemoryContext */
FhSnapshot *
fh_snapshot_current(void)
{
	LOCAL_FCINFO(fcinfo, 0);

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	return (FhSnapshot *) DatumGetPointer(pg_current_snapshot(fcinfo));
}

FhSnapshot *
fh_snapshot_copy(const FhSnapshot *snap)
{
	FhSnapshot *c = palloc(VARSIZE(snap));

	memcpy(c, snap, VARSIZE(snap));
	return c;
}

static bool
at_position(const FhBatch *b, const FhScanPos *p)
{
	return b->table_idx == p->table_idx && b->cursor_valid == p->cursor_valid &&
		(!p->cursor_valid || ItemPointerEquals((ItemPointer) &b->cursor,
											   (ItemPointer) &p->cursor));
}

/* is position a further along a batch's scan than b? */
static bool
scan_pos_after(const FhScanPos *a, const FhScanPos *b)
{
	if (a->table_idx != b->table_idx)
		return a->table_idx > b->table_idx;
	if (a->cursor_valid != b->cursor_valid)
		return a->cursor_valid;
	return a->cursor_valid &&
		ItemPointerCompare((ItemPointer) &a->cursor, (ItemPointer) &b->cursor) > 0;
}

/*
 * The index of the recorded stretch that starts where the batch stands and
 * reaches furthest, or -1.
 *
 * Every stretch holds only recorded records, so any of them may be jumped
 * over; the furthest, because two may start at one position: a worker
 * before fh_read_part returned where a part's reading began recorded a part
 * read after a jump as starting before the jump, where the stretch jumped
 * over starts too (issue 9).  Jumping to the nearer end then read that
 * part's records again and recorded them a second time.
 */
static int
skip_here(const FhBatch *b)
{
	int			found = -1;

	for (int i = 0; i < b->nskips; i++)
		if (at_position(b, &b->skips[i].start) &&
			(found < 0 || scan_pos_after(&b->skips[i].end, &b->skips[found].end)))
			found = i;
	return found;
}

/* jump over recorded stretches that start where the batch stands */
static void
apply_skips(FhBatch *b)
{
	int			i;

	while (!b->all_read && (i = skip_here(b)) >= 0)
	{
		b->table_idx = b->skips[i].end.table_idx;
		b->cursor = b->skips[i].end.cursor;
		b->cursor_valid = b->skips[i].end.cursor_valid;
		if (b->table_idx >= FH_STAGE_TABLES)
			b->all_read = true;
	}
}

/*
 * The records of a part are copied, each once, out of the shared buffers
 * into blocks of the part's memory, not into an allocation of their own: a
 * part of a quarter of a million small records would otherwise cost as many
 * pallocs and chunk headers.  Blocks grow from ARENA_FIRST_BLOCK to
 * ARENA_MAX_BLOCK, so that a part of one record stays small; a record
 * larger than that gets a block of its own.
 *
 * The 2 MB-aligned stretches of the largest blocks are offered to the
 * kernel for transparent huge pages (MADV_HUGEPAGE; the default "madvise"
 * mode of THP gives them only where asked): a bulk delivery's first parts
 * are all fresh memory, and faulting it in 4 kB at a time was a sixth of
 * the raw benchmark's worker CPU (one fault per 30 records of 134 bytes).
 * The memory is glibc's heap, reused by later parts; the advice stays with
 * it and only makes its faults coarser.
 */
#define ARENA_FIRST_BLOCK	(8 * 1024)
#define ARENA_MAX_BLOCK		(8 * 1024 * 1024)
#define HUGE_PAGE			(2 * 1024 * 1024)

/* offer the 2 MB-aligned stretch of a fresh block to the kernel's THP */
static void
advise_huge_pages(char *block, Size size)
{
#ifdef MADV_HUGEPAGE
	uintptr_t	start = TYPEALIGN(HUGE_PAGE, (uintptr_t) block);
	uintptr_t	end = TYPEALIGN_DOWN(HUGE_PAGE, (uintptr_t) block + size);

	/* advice only: an error (no THP in this kernel) changes nothing */
	if (end > start)
		(void) madvise((void *) start, end - start, MADV_HUGEPAGE);
#endif
}

typedef struct RecordArena
{
	char	   *next;			/* free space of the current block */
	Size		left;
	Size		block_size;		/* of the next block */
} RecordArena;

/*
 * A copy of a staging row's data (a bytea datum, possibly short-headered,
 * compressed or out of line) as a plain 4-byte-header bytea in the arena.
 */
static bytea *
arena_copy(RecordArena *a, Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	struct varlena *flat = NULL;
	Size		len;
	Size		need;
	bytea	   *dst;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = flat = detoast_attr(v);
	len = VARSIZE_ANY_EXHDR(v);
	need = MAXALIGN(VARHDRSZ + len);
	if (need > a->left)
	{
		Size		size = Max(a->block_size, need);

		a->next = MemoryContextAllocHuge(CurrentMemoryContext, size);
		a->left = size;
		if (size >= 2 * HUGE_PAGE)
			advise_huge_pages(a->next, size);
		a->block_size = Min(a->block_size * 2, ARENA_MAX_BLOCK);
	}
	dst = (bytea *) a->next;
	a->next += need;
	a->left -= need;
	SET_VARSIZE(dst, VARHDRSZ + len);
	memcpy(VARDATA(dst), VARDATA_ANY(v), len);
	if (flat)
		pfree(flat);
	return dst;
}

/*
 * Did the transaction that inserted a staging row commit?  The caller has
 * checked that the row's top-level transaction (its txid column) had ended
 * when the batch's upper snapshot was taken, so only committed or aborted
 * is left to tell, and the row's xmin (that transaction or one of its
 * subtransactions) answers that: hint bits if some scan set them, else the
 * commit log.
 *
 * This replaces HeapTupleSatisfiesMVCC, which sets hint bits: on a staging
 * page, read once, that dirtied every page the scan read, and the bulk-read
 * ring then wrote each one out again before reusing its buffer (5% of the
 * worker's CPU in the raw benchmark).  TransactionIdDidCommit remembers the
 * last transaction it looked up, so a put_batch() of many rows costs one
 * lookup.  A row that was deleted or locked (staging rows never are, but
 * nothing stops a superuser), and one of the worker's own transaction, are
 * left to HeapTupleSatisfiesVisibility.
 */
static bool
row_committed(HeapTuple tuple, Buffer buf)
{
	HeapTupleHeader tup = tuple->t_data;
	TransactionId xmin;

	if (!(tup->t_infomask & HEAP_XMAX_INVALID))
		return HeapTupleSatisfiesVisibility(tuple, GetActiveSnapshot(), buf);
	if (HeapTupleHeaderXminCommitted(tup))	/* or frozen */
		return true;
	if (HeapTupleHeaderXminInvalid(tup))
		return false;
	xmin = HeapTupleHeaderGetRawXmin(tup);
	if (TransactionIdDidCommit(xmin))
		return true;
	/* a put() by the worker's own transaction (a processor's SQL function) */
	if (TransactionIdIsCurrentTransactionId(xmin))
		return HeapTupleSatisfiesVisibility(tuple, GetActiveSnapshot(), buf);
	return false;
}

/*
 * The committed rows of one staging page from offset first on: their
 * offsets into offsets[] (MaxHeapTuplesPerPage long), their number
 * returned.  The page is share-locked only while its line pointers and
 * tuple headers are read, as heapam's page-at-a-time mode does; the caller
 * keeps its pin, under which the tuples stay where they are.
 *
 * Reading the staging tables this way rather than through a table scan
 * skips the scan's slot and tuple deforming: a record's four columns are
 * read where they lie (fastgetattr).
 */
static int
committed_rows(Relation rel, Buffer buf, OffsetNumber first,
			   OffsetNumber *offsets)
{
	Page		page = BufferGetPage(buf);
	BlockNumber blkno = BufferGetBlockNumber(buf);
	OffsetNumber maxoff;
	int			n = 0;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	maxoff = PageGetMaxOffsetNumber(page);
	for (OffsetNumber off = first; off <= maxoff; off++)
	{
		ItemId		lp = PageGetItemId(page, off);
		HeapTupleData tuple;

		if (!ItemIdIsNormal(lp))
			continue;
		tuple.t_data = (HeapTupleHeader) PageGetItem(page, lp);
		tuple.t_len = ItemIdGetLength(lp);
		tuple.t_tableOid = RelationGetRelid(rel);
		ItemPointerSet(&tuple.t_self, blkno, off);
		if (row_committed(&tuple, buf))
			offsets[n++] = off;
	}
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	return n;
}

/*
 * fh_read_part
 *		Read the next records of a batch, at most max_records and, unless the
 *		first record alone is larger, at most max_bytes of data and at most
 *		max_memory of data plus record_overhead per record.
 *
 * The caller is in a transaction with an active snapshot, and in the memory
 * context the records should live in.  Advances the batch's cursor; sets
 * batch->all_read when the last table has been scanned to its end.  *start
 * is where the part begins: where the batch stood, or, in a batch restored
 * after a restart, past the recorded stretches that began there.  It is the
 * part's identity in firehose.progress: a stretch recorded from where the
 * batch stood would start where a stretch recorded earlier starts too.
 * Returns the number of records read (possibly 0 at the end).
 *
 * between_pages, when given, is called after each PUMP_PAGES pages read
 * (128 kB), with no buffer pinned: the worker lets its transfers move while
 * it reads a large part.
 *
 * The tables are read page by page in block order from the cursor on
 * (committed_rows), through a bulk-read buffer ring (BAS_BULKREAD, for a
 * table over a quarter of shared_buffers, as heapam's scans decide): a
 * backlog larger than shared_buffers is then read through a small ring
 * instead of evicting every other page of the server, and the most recent
 * puts (the table's end, still in shared buffers and dirty, as unlogged
 * pages are not written by checkpoints) are not written out and read back
 * before the scan reaches them.
 */
#define PUMP_PAGES	16

int
fh_read_part(FhBatch *batch, int max_records, int64 max_bytes,
			 int64 max_memory, int record_overhead, void (*between_pages) (void),
			 FhRecord **records_out, int64 *bytes_out, FhScanPos *start)
{
	int			n = 0;
	int			pages = 0;
	int			cap;
	int64		bytes = 0;
	int64		memory = 0;
	FhRecord   *recs;
	bool		full = false;
	RecordArena arena = {NULL, 0, ARENA_FIRST_BLOCK};
	BufferAccessStrategy strategy = NULL;
	OffsetNumber offsets[MaxHeapTuplesPerPage];

	/*
	 * The batch's verdict on the last transaction looked up: the rows of a
	 * put_batch() share one, and two snapshot lookups a row were 1% of the
	 * raw benchmark's worker.
	 */
	uint64		last_txid = 0;
	bool		last_known = false;
	bool		last_in = false;

	/*
	 * Room for as many records as the memory bound lets in: the pages of an
	 * allocation are touched only as it fills, and growing the array by
	 * doubling copied it over and over (4% of the raw benchmark's CPU).
	 */
	cap = (int) Min((int64) max_records,
					max_memory / Max(record_overhead, 1) + 1);
	recs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(FhRecord) * cap);

	/*
	 * The array is fresh memory too, 24 bytes a record: faulted in 4 kB at
	 * a time it was 5% of a new worker's CPU in the raw benchmark.
	 */
	if (sizeof(FhRecord) * cap >= 2 * HUGE_PAGE)
		advise_huge_pages((char *) recs, sizeof(FhRecord) * cap);

	apply_skips(batch);
	start->table_idx = batch->table_idx;
	start->cursor = batch->cursor;
	start->cursor_valid = batch->cursor_valid;
	while (!full && (apply_skips(batch), !batch->all_read))
	{
		Relation	rel;
		TupleDesc	desc;
		BlockNumber nblocks;
		BlockNumber blkno = 0;
		OffsetNumber first = FirstOffsetNumber;
		bool		ended = true;

		rel = try_table_open(batch->tables[batch->table_idx], AccessShareLock);
		if (rel == NULL)
		{
			/* the stream was dropped under us: nothing more to read */
			batch->all_read = true;
			break;
		}
		desc = RelationGetDescr(rel);
		nblocks = RelationGetNumberOfBlocks(rel);
		if (strategy == NULL && nblocks > (BlockNumber) (NBuffers / 4) &&
			!RelationUsesLocalBuffers(rel))
			strategy = GetAccessStrategy(BAS_BULKREAD);
		if (batch->cursor_valid)
		{
			blkno = ItemPointerGetBlockNumber(&batch->cursor);
			first = ItemPointerGetOffsetNumber(&batch->cursor) + 1;
		}

		for (; ended && blkno < nblocks; blkno++, first = FirstOffsetNumber)
		{
			Buffer		buf;
			Page		page;
			int			nrows;

			CHECK_FOR_INTERRUPTS();
			buf = ReadBufferExtended(rel, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
			page = BufferGetPage(buf);
			nrows = committed_rows(rel, buf, first, offsets);
			for (int i = 0; i < nrows; i++)
			{
				ItemId		lp = PageGetItemId(page, offsets[i]);
				HeapTupleData tuple;
				bool		isnull;
				uint64		txid;
				Datum		d;
				bytea	   *data;
				int64		len;

				tuple.t_data = (HeapTupleHeader) PageGetItem(page, lp);
				tuple.t_len = ItemIdGetLength(lp);
				txid = (uint64) DatumGetInt64(fastgetattr(&tuple, STAGE_TXID + 1, desc, &isnull));
				if (!last_known || txid != last_txid)
				{
					last_known = true;
					last_txid = txid;
					last_in = fh_snapshot_visible(batch->hi, txid) &&
						!fh_snapshot_visible(batch->lo, txid);
				}
				if (!last_in)
				{
					ItemPointerSet((ItemPointer) &batch->cursor, blkno, offsets[i]);
					batch->cursor_valid = true;
					if (batch->nskips > 0 && skip_here(batch) >= 0)
					{
						ended = false;	/* jump, then go on */
						break;
					}
					continue;
				}
				d = fastgetattr(&tuple, STAGE_DATA + 1, desc, &isnull);
				/* a plain datum's size without a call (a record's usual case) */
				if (VARATT_IS_EXTERNAL(DatumGetPointer(d)) ||
					VARATT_IS_COMPRESSED(DatumGetPointer(d)))
					len = toast_raw_datum_size(d) - VARHDRSZ;
				else
					len = VARSIZE_ANY_EXHDR(DatumGetPointer(d));
				if (n > 0 && (n >= max_records || bytes + len > max_bytes ||
							  memory + len + record_overhead > max_memory))
				{
					full = true;
					ended = false;
					break;
				}
				data = arena_copy(&arena, d);
				if (n == cap)	/* only with no per-record overhead */
				{
					cap = Min(cap, INT_MAX / 2) * 2;
					recs = repalloc_huge(recs, sizeof(FhRecord) * cap);
				}
				recs[n].id = DatumGetInt64(fastgetattr(&tuple, STAGE_ID + 1, desc, &isnull));
				recs[n].arrival = DatumGetTimestampTz(fastgetattr(&tuple, STAGE_ARRIVAL + 1, desc, &isnull));
				recs[n].data = data;
				n++;
				bytes += len;
				memory += len + record_overhead;
				ItemPointerSet((ItemPointer) &batch->cursor, blkno, offsets[i]);
				batch->cursor_valid = true;
				if (batch->nskips > 0 && skip_here(batch) >= 0)
				{
					ended = false;	/* jump, then go on */
					break;
				}
			}
			ReleaseBuffer(buf);
			if (between_pages && ++pages % PUMP_PAGES == 0)
				between_pages();
		}
		table_close(rel, AccessShareLock);

		if (ended)
		{
			batch->table_idx++;
			batch->cursor_valid = false;
			if (batch->table_idx >= FH_STAGE_TABLES)
				batch->all_read = true;
		}
	}
	if (strategy)
		FreeAccessStrategy(strategy);
	*records_out = recs;
	*bytes_out = bytes;
	return n;
}

/*
 * fh_stage_has_unannounced
 *		Does any staging table hold a committed row not visible in after?
 *		For the worker's probe: such rows came without a commit-time note
 *		(prepared transactions whose notes the worker lacks, rows inserted
 *		by other means).  In a transaction with an active snapshot.
 */
bool
fh_stage_has_unannounced(Oid tables[FH_STAGE_TABLES], FhSnapshot *after)
{
	bool		found = false;

	for (int k = 0; k < FH_STAGE_TABLES && !found; k++)
	{
		Relation	rel = try_table_open(tables[k], AccessShareLock);
		TableScanDesc scan;
		TupleTableSlot *slot;

		if (rel == NULL)
			return false;
		scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
		slot = table_slot_create(rel, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			uint64		txid = (uint64) DatumGetInt64(slot_getattr(slot, STAGE_TXID + 1, &isnull));

			if (!fh_snapshot_visible(after, txid))
			{
				found = true;
				break;
			}
		}
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	return found;
}

/* does the table hold a committed row not yet visible in consumed? */
static bool
table_has_unconsumed(Relation rel, FhSnapshot *consumed)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found = false;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		uint64		txid = (uint64) DatumGetInt64(slot_getattr(slot, STAGE_TXID + 1, &isnull));

		if (!fh_snapshot_visible(consumed, txid))
		{
			found = true;
			break;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	return found;
}

/*
 * Pages a table's reading is allowed to cost before a truncation is worth
 * its walk of shared_buffers: a page read costs about as much as a thousand
 * buffer headers walked, and as much again for the current table, which
 * grows meanwhile.
 */
static BlockNumber
reclaim_pages(void)
{
	return Max(1, NBuffers / 16384);
}

/*
 * Truncate a delivered staging table, as heap_truncate_one_rel does, but
 * leave its TOAST table and that table's index alone while the TOAST table
 * is empty, as it is unless records over about 2 kB were put.  Each
 * truncation of a relation walks every buffer header of shared_buffers
 * (DropRelFileNodeBuffers) and the index is built again: truncating all
 * three was 40% of the worker's CPU with 1,000 streams of a record a second,
 * where each batch truncates a table, two thirds of it for the TOAST table
 * and its index.  An empty TOAST table has no index entries to forget: each
 * entry points at a row of the TOAST table.  A staging table given an index
 * of its own (by a superuser) takes the whole path, which rebuilds it.
 */
static void
truncate_staging(Relation rel)
{
	Oid			toastrelid = rel->rd_rel->reltoastrelid;

	if (!rel->rd_rel->relhasindex && OidIsValid(toastrelid))
	{
		Relation	toastrel = table_open(toastrelid, AccessExclusiveLock);
		bool		toast_empty = RelationGetNumberOfBlocks(toastrel) == 0;

		table_close(toastrel, NoLock);	/* lock kept until commit */
		if (toast_empty)
		{
			table_relation_nontransactional_truncate(rel);
			return;
		}
	}
	heap_truncate_one_rel(rel);
}

/*
 * fh_stage_maintain
 *		Rotate and reclaim a stream's staging tables.
 *
 * consumed: everything visible in it has been delivered or failed for good,
 * and that is committed: the truncation cannot be rolled back, so the
 * worker calls this in a transaction of its own, after the one that
 * recorded the batches up to consumed (worker.c, reclaim_staging).
 *
 * A table is truncated only when it is not the current one, and under an
 * AccessExclusiveLock taken without waiting: put() holds RowExclusiveLock
 * on the table it writes until its transaction ends (so do prepared
 * transactions), so the lock fails while any producer writes the table or
 * has rows in it that are not yet committed; those are then truncated on a
 * later pass.  A producer that read cur_table before a rotation and locks
 * the table only now waits for this transaction and inserts into the
 * truncated table: its row is read by the next batch (batches scan every
 * table of the ring) and keeps the table from being truncated until then.
 *
 * A truncation walks every buffer header of shared_buffers
 * (DropRelFileNodeBuffers: outside recovery PostgreSQL 15 does not know a
 * relation's size well enough to look its pages up instead), however small
 * the table.  With 4 GB of shared_buffers that was half a millisecond a
 * table, and 1,000 streams of a record a second kept the worker 89% busy and
 * 20 s late.  A small table is therefore left for later: deferred[k] counts
 * the pages table k held at each call that left it (the batches of the
 * meantime read them again), and the table is truncated once its pages and
 * that count reach reclaim_pages(), where the two costs meet.  A table that
 * large is truncated at once, as every table is with shared_buffers up to
 * 128 MB.  Until then the ring does not move on to it, so the current table
 * grows by the batches of the meantime; each stays within that many pages.
 */
void
fh_stage_maintain(int32 stream_id, Oid tables[FH_STAGE_TABLES],
				  FhStreamSlot *slot, FhSnapshot *consumed,
				  BlockNumber deferred[FH_STAGE_TABLES])
{
	uint32		cur = pg_atomic_read_u32(&slot->cur_table) % FH_STAGE_TABLES;
	BlockNumber nblocks[FH_STAGE_TABLES];

	for (int k = 0; k < FH_STAGE_TABLES; k++)
	{
		Relation	rel;

		rel = try_table_open(tables[k], AccessShareLock);
		if (rel == NULL)
			return;				/* stream dropped */
		nblocks[k] = RelationGetNumberOfBlocks(rel);
		table_close(rel, AccessShareLock);

		if (nblocks[k] == 0)
			deferred[k] = 0;
		if (k == (int) cur || nblocks[k] == 0)
			continue;
		if (nblocks[k] + deferred[k] < reclaim_pages())
		{
			deferred[k] += nblocks[k];	/* small: later */
			continue;
		}
		if (!ConditionalLockRelationOid(tables[k], AccessExclusiveLock))
			continue;			/* a producer still writes it: later */
		rel = table_open(tables[k], NoLock);
		if (!table_has_unconsumed(rel, consumed))
		{
			truncate_staging(rel);
			fh_fault_point("after_truncate");
			nblocks[k] = 0;
			deferred[k] = 0;
		}
		table_close(rel, NoLock);	/* lock kept until commit */
	}

	/*
	 * Move the producers on as soon as the next table is empty: the current
	 * one is then reclaimed once the batches reading it are done, so each
	 * table holds about a batch and a cut never scans much more than the
	 * records it returns.
	 */
	if (nblocks[cur] > 0 && nblocks[(cur + 1) % FH_STAGE_TABLES] == 0)
		pg_atomic_write_u32(&slot->cur_table, (cur + 1) % FH_STAGE_TABLES);
}
