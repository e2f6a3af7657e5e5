/*-------------------------------------------------------------------------
 *
 * firehose.h
 *	  Private declarations shared by the files of the firehose extension,
 *	  grouped by the file that defines them.
 *
 * The moving parts:
 *	- shared memory (firehose.c) holds one slot per database with a worker
 *	  and one slot per stream with the counters that put() and the worker
 *	  exchange: records and bytes committed, cut into batches and finished,
 *	  the time of the first record waiting, and flush requests;
 *	- put() (put.c) inserts straight into the stream's current staging
 *	  table and counts what the transaction added; a commit callback adds
 *	  the counts to the stream slot and wakes the database's worker;
 *	- the worker (worker.c) cuts batches by transaction visibility and
 *	  splits them into parts that one request can carry; each part then
 *	  goes through one pipeline of stages, each with one job and one
 *	  direction:
 *	    read      staging.c: the part's records, from the staging tables;
 *	    process   processor.c: records in, records out (option processors);
 *	    encode    the sink (sink_*.c): a request in the destination's
 *	              format, from a read-only view of the records (FhPartView);
 *	    send      transport.c: the request, on the curl multi handle;
 *	    classify  the sink: a verdict on the response (FhVerdict, and for
 *	              protocols that answer per record, verdicts of records);
 *	    record    worker.c alone: deliveries, failed_records, progress.
 *	  A backup store (backup.c) is a second sink instance the worker sends
 *	  the part's failures (or all of it) to, after the destination.
 *
 * Files call each other in one direction only (scripts/callgraph checks
 * that the graph of src/ files has no cycle): the worker calls the stages,
 * sinks call options.c, verdict.c and the pure helpers, and none of them
 * calls back into the worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FIREHOSE_H
#define FIREHOSE_H

#include "postgres.h"

#include "access/transam.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/itemptr.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "netacl.h"

#define FH_STAGE_TABLES		3	/* ring of staging tables per stream */
#define FH_MAX_DATABASES	64
#define FH_SCHEMA			"firehose"
#define FH_VERSION			"0.1.0"

/* ---------- shared memory (firehose.c) ---------- */

typedef struct FhStreamSlot
{
	Oid			dbid;			/* InvalidOid: free slot */
	int32		stream_id;
	pg_atomic_uint32 cur_table;	/* staging table producers write */
	pg_atomic_uint64 committed_records;
	pg_atomic_uint64 committed_bytes;
	pg_atomic_uint64 prepares;	/* transactions prepared with records */
	pg_atomic_uint64 cut_records;	/* cut into batches by the worker */
	pg_atomic_uint64 cut_bytes;
	pg_atomic_uint64 done_records;	/* delivered or failed */
	pg_atomic_uint64 done_bytes;
	pg_atomic_uint64 first_pending;	/* TimestampTz of the first commit not
									 * yet cut, 0 when none */
	pg_atomic_uint64 oldest_inflight;	/* arrival of the oldest record
										 * cut but not finished, 0 if none */
	pg_atomic_uint64 flush_requested;
	pg_atomic_uint64 flush_done;
	/* why the worker cannot move the stream on, and since when (0: it can) */
	pg_atomic_uint32 blocked_reason;	/* FhBlocked */
	pg_atomic_uint64 blocked_since; /* TimestampTz */
	/* dynamic partitioning: objects of the parts in flight, and whether the
	 * last part split had more prefixes than max_active_partitions */
	pg_atomic_uint32 active_partitions;
	pg_atomic_uint32 partitions_exceeded;
	/* 1 while the stream is in its database's set of noted commits */
	pg_atomic_uint32 commit_noted;
} FhStreamSlot;

/* what holds a stream up, shown in stream_status.blocked_reason */
typedef enum FhBlocked
{
	FH_BLOCKED_NONE,
	FH_BLOCKED_ROW_LOCK,		/* a session holds its catalog row */
	FH_BLOCKED_RETRYING,		/* a request retries; later batches wait */
	FH_BLOCKED_BATCHES,			/* too many batches wait behind the oldest */
	FH_BLOCKED_MEMORY			/* firehose.worker_memory is in use */
} FhBlocked;

extern const char *fh_blocked_text(FhBlocked reason);

/*
 * Most streams with commits a database's worker has not looked at yet that
 * FhDbSlot lists; past that it looks at all of them.
 */
#define FH_NOTED_COMMITS	256

/*
 * A stream that a prepared transaction put records into (stream: an index
 * into fh_shared->streams), or with FH_PREPARED_RELOAD a change of the
 * streams it made: nobody's commit callback tells the worker when COMMIT
 * PREPARED makes them visible, so the worker waits for the transaction to
 * end (worker.c, "prepared transactions").
 */
typedef struct FhPreparedNote
{
	FullTransactionId fxid;
	int			stream;
} FhPreparedNote;

#define FH_PREPARED_RELOAD	(-1)
#define FH_NOTED_PREPARED	64

/*
 * A database that runs (or is to run) a worker.  Only the launcher takes a
 * free slot, so that no backend ever fails for want of one (a backend asks
 * at commit, where an ERROR would be a PANIC); a worker that finds no
 * extension gives its slot back.
 */
typedef struct FhDbSlot
{
	Oid			dbid;			/* InvalidOid: free */
	pid_t		worker_pid;		/* 0 when no worker runs */
	Latch	   *worker_latch;
	bool		dropping;		/* DROP DATABASE in progress: don't start */
	uint32		requests;		/* bumped by every fh_request_worker() */
	pg_atomic_uint32 reload;	/* stream configuration changed, or a flush */
	pg_atomic_uint32 changes;	/* bumped by each committed change of a stream */
	pg_atomic_uint32 wake;		/* a commit asked for attention */

	/*
	 * The streams that got records committed since the worker last looked
	 * (fh_note_commit, fh_take_noted_commits): the worker's pass visits
	 * these, not every stream.  Indexes into fh_shared->streams.
	 */
	slock_t		noted_lock;
	bool		noted_overflow; /* more than FH_NOTED_COMMITS: look at all */
	int			nnoted;
	int			noted[FH_NOTED_COMMITS];

	/*
	 * What transactions prepared since the worker last looked put into
	 * (fh_note_prepared, fh_take_noted_prepared), under noted_lock.  On
	 * overflow the worker lists the prepared transactions of the database
	 * and looks at every stream when each ends.
	 */
	bool		prepared_overflow;
	int			nprepared;
	FhPreparedNote prepared[FH_NOTED_PREPARED];
} FhDbSlot;

/* databases without a slot that asked for a worker, for the launcher */
#define FH_MAX_DB_REQUESTS	64

typedef struct FhShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	pid_t		launcher_pid;
	ConditionVariable flush_cv;
	FhDbSlot	dbs[FH_MAX_DATABASES];
	Oid			db_requests[FH_MAX_DB_REQUESTS];
	int			n_db_requests;
	bool		db_requests_overflowed; /* some were lost: try every database */
	int			max_streams;
	FhStreamSlot streams[FLEXIBLE_ARRAY_MEMBER];
} FhShared;

extern FhShared *fh_shared;
extern int	fh_max_streams;
extern int	fh_naptime_ms;
extern int	fh_deliveries_retention_s;
extern int	fh_failed_records_retention_s;
extern int	fh_worker_memory_kb;
extern int	fh_max_part_records;
extern bool fh_enabled;
extern char *fh_allowed_ca_dirs;
extern char *fh_test_fault;
extern char *fh_allowed_destinations;
/* the list in force (the GUC is not defined unless preloaded) */
#define FH_ALLOWED_DESTINATIONS() \
	(fh_allowed_destinations ? fh_allowed_destinations : FH_NETACL_DEFAULT)

extern void fh_fault_point(const char *point);

extern FhStreamSlot *fh_stream_slot(Oid dbid, int32 stream_id, bool create);
extern void fh_stream_slot_release(Oid dbid, int32 stream_id);
extern FhDbSlot *fh_db_slot(Oid dbid);
extern bool fh_db_slots_full(Oid dbid);
extern void fh_wake_worker(Oid dbid, bool reload);
extern void fh_streams_changed(Oid dbid);
extern void fh_note_commit(Oid dbid, FhStreamSlot *s);
extern int	fh_take_noted_commits(FhDbSlot *db, int *out, bool *all);
extern bool fh_note_prepared(FhDbSlot *db, FullTransactionId fxid, FhStreamSlot *s);
extern int	fh_take_noted_prepared(FhDbSlot *db, FhPreparedNote *out, bool *overflow);
extern void fh_request_worker(Oid dbid);
extern uint64 fh_atomic_max_u64(pg_atomic_uint64 *a, uint64 v);

/* run catalog queries as the bootstrap superuser with a safe search_path */
typedef struct FhCatalogAccess
{
	Oid			save_userid;
	int			save_sec;
	int			guc_level;
} FhCatalogAccess;
extern void fh_catalog_access_begin(FhCatalogAccess *ca);
extern void fh_catalog_access_end(FhCatalogAccess *ca);

/* ---------- options (options.c) ---------- */

typedef enum FhOptType
{
	FH_OPT_INT,					/* integer in [min, max] */
	FH_OPT_BYTES,				/* integer or size string ('5MB') */
	FH_OPT_MS,					/* integer ms or interval string */
	FH_OPT_SECONDS,				/* integer seconds or interval string */
	FH_OPT_BOOL,
	FH_OPT_STRING,
	FH_OPT_ENUM,				/* one of the strings in choices */
	FH_OPT_URL,					/* http:// or https:// URL */
	FH_OPT_STRMAP,				/* object of string values */
	FH_OPT_OBJECT,				/* an object with its own table (nested) */
	FH_OPT_ARRAY				/* an array, checked by its normalize() */
} FhOptType;

/* deepest nesting of option tables that redaction follows */
#define FH_MAX_OPTION_DEPTH 4

typedef struct FhOptionDef FhOptionDef;
struct FhOptionDef
{
	const char *name;
	FhOptType	type;
	int64		min;
	int64		max;
	const char *default_value;	/* JSON text, NULL = no default */
	const char *const *choices; /* FH_OPT_ENUM: NULL-terminated */
	bool		secret;			/* redacted in views and logs */
	bool		required;
	bool		location;		/* names where records go: a change drops
								 * the stored secrets (see options.c) */
	/* the field fh_options_load() writes the value into (FH_FIELD) */
	bool		has_field;
	size_t		offset;
	/* FH_OPT_OBJECT, FH_OPT_ARRAY: the table of its keys (objects), the
	 * function that checks and normalizes it, and what it is, for an error
	 * message */
	const FhOptionDef *nested;
	Jsonb	   *(*normalize) (Jsonb *value);
	const char *what;

	/*
	 * A string that carries a secret inside (a libpq conninfo's password,
	 * the user information of a URL that is no FH_OPT_URL): the value to
	 * show instead, with the secret parts appended to
	 * *secrets when secrets is not NULL.
	 */
	char	   *(*redact) (const char *value, List **secrets);
};

/* in an option table: the value goes into this member of the config struct */
#define FH_FIELD(type, member) .has_field = true, .offset = offsetof(type, member)

/* parsed common options, from the normalized options of a stream */
typedef struct FhStreamConfig
{
	int64		buffer_size;
	int64		buffer_interval_ms;
	int64		retry_duration_s;
	int64		retry_duration_ms;	/* the same in milliseconds */
	int64		max_concurrency;
	int64		max_record_size;
	int64		max_buffered_bytes;
	bool		durable;
	int64		request_timeout_ms;
	int64		retry_base_ms;
	int64		retry_max_ms;
	Jsonb	   *processors;		/* NULL: none */
} FhStreamConfig;

typedef struct FhSink FhSink;
extern const FhOptionDef fh_lambda_options[];
extern Jsonb *fh_options_normalize_sink(const FhSink *sink, Jsonb *current,
										Jsonb *changes, bool with_common);
extern void fh_options_load(const FhOptionDef *defs, Jsonb *opts, void *config);
extern void fh_config_from_options(Jsonb *options, FhStreamConfig *cfg);

/*
 * Secrets shorter than this are not scrubbed from error texts: they would
 * blank out ordinary words, and are no secret worth the name.
 */
#define FH_MIN_SECRET_LEN 4
extern Jsonb *fh_options_redact(const FhSink *sink, Jsonb *opts, List **secrets);
extern char *fh_url_option_redact(const char *url, List **secrets);
extern bool fh_jsonb_get_text(Jsonb *obj, const char *key, char **out);
extern bool fh_jsonb_get_bool(Jsonb *obj, const char *key, bool def);
extern int64 fh_jsonb_get_int(Jsonb *obj, const char *key, int64 def);
extern JsonbValue *fh_jsonb_get(Jsonb *obj, const char *key);

/* ---------- streams (stream.c) ---------- */

extern Jsonb *fh_options_normalize(const char *destination, Jsonb *current,
								   Jsonb *changes);
extern int32 fh_owned_stream_id(text *name, Oid role);

/* ---------- staging (staging.c) ---------- */

/* the pg_snapshot varlena of xid8funcs.c */
typedef struct FhSnapshot
{
	int32		vl_len_;
	uint32		nxip;
	FullTransactionId xmin;
	FullTransactionId xmax;
	FullTransactionId xip[FLEXIBLE_ARRAY_MEMBER];
} FhSnapshot;

typedef struct FhRecord
{
	int64		id;
	TimestampTz arrival;
	bytea	   *data;
} FhRecord;

/* a position in a batch's scan: the table being read, the last tuple read */
typedef struct FhScanPos
{
	int			table_idx;
	ItemPointerData cursor;
	bool		cursor_valid;	/* false: before the table's first tuple */
} FhScanPos;

/* a stretch of a batch's scan whose records are recorded already */
typedef struct FhSkip
{
	FhScanPos	start;
	FhScanPos	end;
} FhSkip;

/* a batch: the records visible in hi and not in lo */
typedef struct FhBatch
{
	dlist_node	node;
	uint64		seq;
	FhSnapshot *lo;
	FhSnapshot *hi;
	uint64		flush_seq;		/* flush requests this batch satisfies */
	Oid			tables[FH_STAGE_TABLES];	/* scan order */
	int			table_idx;		/* table being read */
	ItemPointerData cursor;		/* last tuple read in that table */
	bool		cursor_valid;
	bool		all_read;
	int			parts_total;
	int			parts_done;
	int64		records;
	int64		bytes;
	uint64		committed_bytes_before;	/* slot's committed_bytes before the cut */
	uint64		committed_records_before;	/* and its committed_records */
	uint64		prepares_before;	/* and its prepares */
	int			first_table;	/* ring index of tables[0] */
	TimestampTz cut_at;
	/* restored after a restart: recorded stretches the scan jumps over */
	FhSkip	   *skips;
	int			nskips;
} FhBatch;

extern bool fh_stage_tables(int32 stream_id, Oid tables[FH_STAGE_TABLES]);
extern bool fh_snapshot_visible(const FhSnapshot *snap, uint64 txid);
extern FhSnapshot *fh_snapshot_current(void);
extern FhSnapshot *fh_snapshot_copy(const FhSnapshot *snap);
extern int	fh_read_part(FhBatch *batch, int max_records, int64 max_bytes,
						 int64 max_memory, int record_overhead,
						 void (*between_pages) (void),
						 FhRecord **records_out, int64 *bytes_out,
						 FhScanPos *start);
extern bool fh_stage_has_unannounced(Oid tables[FH_STAGE_TABLES], FhSnapshot *after);
extern void fh_stage_maintain(int32 stream_id, Oid tables[FH_STAGE_TABLES],
							  FhStreamSlot *slot, FhSnapshot *consumed,
							  BlockNumber deferred[FH_STAGE_TABLES]);

/* ---------- sinks (sink.c, sink_*.c) ---------- */

typedef enum FhOutcome
{
	FH_OUTCOME_OK,
	FH_OUTCOME_RETRY,
	FH_OUTCOME_FAIL,
	FH_OUTCOME_NEXT				/* this step is done: send the sink's next
								 * request at once (multi-request protocols) */
} FhOutcome;

typedef struct FhPart FhPart;

/*
 * A step of a PostgreSQL destination (sink_postgres.c), run by pgconn.c on
 * the stream's one libpq connection instead of a curl request: sql, one or
 * more statements sent as one simple query, whose COPY ... FROM STDIN
 * statements get their data from copy_more(copy_arg, k, out) (k: the
 * COPY's number in sql, from 0), which appends the next piece to out
 * (about COPY_PIECE_SIZE bytes) and returns false after the last: called
 * while the socket takes more, so that the data is made as it is sent.  The connection is made
 * from keywords/values (NULL-terminated) when there is none or they
 * changed; init_sql runs first on every new connection (and when
 * force_init), and when epoch is not 0 and the connection is not that one
 * any more, only init_sql runs (the sink built sql for a connection that is
 * gone: FhResponse.pg_stale).  A transaction left open is rolled back
 * before the answer.
 */
typedef struct FhPgRequest
{
	const char *key;			/* the connection's owner: the stream */
	const char *const *keywords;
	const char *const *values;
	const char *conn_signature; /* keywords and values as one text */
	const char *init_sql;
	bool		force_init;
	uint64		epoch;
	const char *sql;			/* NULL: init_sql alone */
	bool		(*copy_more) (void *copy_arg, int k, StringInfo out);
	void	   *copy_arg;
} FhPgRequest;

#define COPY_PIECE_SIZE		(256 * 1024)

/* one result of a step (a statement's, or the error that ended it) */
typedef struct FhPgResult
{
	bool		init;			/* of init_sql */
	bool		ok;
	char		sqlstate[6];	/* errors: "" if the server sent none */
	char	   *message;		/* errors: the server's (or libpq's) message */
	char	   *context;		/* errors: e.g. "COPY t, line 3, column a" */
	char	   *cmd_tuples;		/* rows the command touched, as text */
	int			nrows;
	int			ncols;
	char	  **values;			/* nrows * ncols texts, NULL for NULLs */
} FhPgResult;

/* what a sink asks the transport to send */
typedef struct FhRequest
{
	const char *method;			/* NULL: POST */
	char	   *url;
	struct curl_slist *headers;
	StringInfoData body;		/* the body, unless data is set */
	const char *data;			/* or a body that lives elsewhere (in the
								 * part's memory), sent without a copy */
	size_t		len;

	/*
	 * Or, when piece is set, a body of stream_len bytes made piece by piece
	 * while curl sends it, so that it is never whole in memory and records
	 * are not copied once more: piece(piece_arg, k, ...) gives piece k
	 * (0, 1, ... on every attempt) either as *data, memory that lives as
	 * long as the request, or by appending it to scratch, whose room
	 * (piece_room bytes, made by the transport) it never exceeds: it runs
	 * inside a curl callback and must not raise an error.  False after the
	 * last piece.
	 */
	bool		(*piece) (void *piece_arg, int64 k, const char **data, size_t *len,
						  StringInfo scratch);

	/*
	 * And, optionally, fill(piece_arg, &k, buf, room): writes pieces k,
	 * k + 1, ... straight into curl's buffer buf while each fits whole,
	 * advances k past them and returns the bytes written.  The pieces are
	 * those piece() gives, byte for byte; one that does not fit is left to
	 * piece() and sent across buffers.  This saves a call, a copy and the
	 * bookkeeping per piece, two pieces a record.  Inside a curl callback
	 * too: no error.
	 */
	size_t		(*fill) (void *piece_arg, int64 *k, char *buf, size_t room);
	void	   *piece_arg;
	size_t		stream_len;
	size_t		piece_room;
	/* the transport's reading state of a streamed body */
	StringInfoData scratch;
	int64		piece_next;
	const char *piece_data;
	size_t		piece_left;
	bool		piece_end;

	int64		max_response;	/* bytes of response body kept; 0: 1 MiB */
	bool		tls_verify;
	char	   *ca_file;
	FhPgRequest *pg;			/* not NULL: a PostgreSQL step, not HTTP */
} FhRequest;

/* what came back */
typedef struct FhResponse
{
	long		status;			/* 0: no HTTP response */
	int			curl_code;		/* CURLcode */
	char	   *curl_error;
	char	   *content_type;
	bool		has_content_encoding;
	bool		has_content_length;
	char	   *etag;
	StringInfoData body;
	bool		body_truncated; /* longer than the limit: cut off there */
	int64		header_bytes;
	bool		headers_too_large;	/* cut off: no response (status 0) */
	/* firehose.allowed_destinations refused this host or address ("" if not) */
	char		refused[64];
	bool		refused_host;	/* the URL's host itself: no connection at all */
	bool		no_fd;			/* a socket was refused: no fd free (transport.c) */

	/*
	 * A PostgreSQL step's: its results in order (an error ends them), the
	 * connection's epoch, whether init_sql ran, whether sql was left out
	 * (the connection was not the one asked for), and the connection's
	 * error when it broke or could not be made (NULL if none), with the
	 * SQLSTATE of the server's refusal when the server refused it ("" if
	 * not: no answer, a broken connection).
	 */
	FhPgResult *pg_results;
	int			pg_nresults;
	uint64		pg_epoch;
	bool		pg_init_ran;
	bool		pg_stale;
	char	   *pg_error;
	char		pg_error_sqlstate[6];
} FhResponse;

/* the classification of a response, with Firehose's error code */
typedef struct FhVerdict
{
	FhOutcome	outcome;
	const char *error_code;		/* e.g. HttpEndpoint.DestinationException */
	char	   *error_message;
	int64		delay_ms;		/* NEXT: wait this long before the next step */

	/*
	 * RETRY: how long this attempt waited on the destination's say-so
	 * (Splunk's indexer acknowledgement); retry_duration does not count it,
	 * as Firehose's does not (set to 0 before every classify()).
	 */
	int64		waited_ms;
} FhVerdict;

/* the fate of one record of a part, for protocols that report per record */
#define FH_REC_PENDING		0	/* follows the part's verdict */
#define FH_REC_DELIVERED	1
#define FH_REC_FAILED		2	/* for good, with its own verdict */

/*
 * What a sink sees of a part.  The records and the part's identity are the
 * worker's, read only.  The rest is the sink's answer besides the verdicts
 * its encode() and classify() return: its own state across retries and
 * steps, and, for protocols that answer per record, the records it decided
 * alone (fh_view_deliver/fh_view_fail, verdict.c).  The worker alone turns
 * all that into outcomes (deliveries, failed_records, progress).
 */
typedef struct FhPartView
{
	const FhRecord *records;
	int			nrecords;
	int64		bytes;			/* of the records' data when known; 0: count
								 * them, as a view made by a sink is not */
	const char *request_id;
	const unsigned char *object_id; /* 16 bytes, the same across retries and
									 * worker restarts */
	TimestampTz oldest_arrival;
	/* the partition_keys the processors gave each record (NULL: none) */
	Jsonb	  **partition_keys;

	/*
	 * Dynamic partitioning: the evaluated prefix of this object, which its
	 * key starts with (NULL: the sink evaluates its own).
	 */
	const char *prefix;

	/*
	 * Not NULL when the records are the error records of another
	 * destination's failures (a backup store's): their
	 * !{firehose:error-output-type}.  Error records end in their own line
	 * feed.
	 */
	const char *error_output_type;
	MemoryContext cxt;			/* the part's: what the sink keeps lives here */

	/*
	 * For a sink that keeps a ledger of what it loaded (postgres
	 * exactly_once), set before each encode(): the xmax of the upper
	 * snapshot of the part's batch, and of the stream's consumed snapshot,
	 * everything visible in which is recorded for good (committed and
	 * flushed: no retry and no worker after a crash sends it again).
	 * Snapshots are taken in time order, so the records of a batch whose
	 * xmax is below done_xmax are all visible in consumed.
	 */
	uint64		batch_xmax;
	uint64		done_xmax;
	/* the sink's: */
	void	   *state;			/* NULL before the first encode() */
	uint8	   *rec_state;		/* FH_REC_*; NULL: the verdict is every
								 * record's */
	FhVerdict  *rec_verdict;	/* of FH_REC_FAILED records */
	int64		possible_duplicates;	/* records sent again after an
										 * ambiguous outcome */
} FhPartView;

/*
 * One object of a part that its sink splits (dynamic partitioning): the
 * view indexes of its records, and the evaluated prefix of their object;
 * or, with error_output_type set, records the sink failed alone
 * (fh_view_fail), whose error records go under the error output prefix.
 */
typedef struct FhObjectGroup
{
	int		   *index;
	int			nrecords;
	char	   *prefix;
	const char *error_output_type;
} FhObjectGroup;

struct FhSink
{
	const char *name;
	const FhOptionDef *options; /* destination options, {NULL} terminated */
	int64		default_retry_duration_s;
	int64		default_buffer_interval_ms; /* 0: the common default */
	int64		default_buffer_size;	/* 0: the common default */

	/*
	 * buffer_size is a hint, not a limit of the destination (S3: a part is an
	 * object): the last part of a batch may run over it by a quarter rather
	 * than leave a small part behind.
	 */
	bool		buffer_size_is_hint;
	/* the !{firehose:error-output-type} of this destination's failures */
	const char *error_output_type;

	/*
	 * Does this destination itself store the error records of the records
	 * processors failed, when the stream has no backup store (as
	 * Firehose's S3 destination does, under its error prefix)?
	 */
	bool		keeps_processing_errors;
	/* extra checks across options, after types were checked */
	void		(*validate) (Jsonb *options);
	/* parse options into a sink-private config in CurrentMemoryContext */
	void	   *(*configure) (Jsonb *options, const char *stream, int32 version);
	/* limits of one part */
	void		(*limits) (void *config, int *max_records, int64 *max_bytes);

	/*
	 * Optional: the objects part is to be sent as (dynamic partitioning),
	 * in the worker's transaction, before anything is sent: their number
	 * and *groups (in the part's memory), or 0 when the part goes whole.
	 * *exceeded: records were failed for want of room for more groups.
	 */
	int			(*split) (void *config, FhPartView *part, FhObjectGroup **groups,
						  bool *exceeded);

	/*
	 * Build the next request for part (in the part's memory context).  When
	 * it makes none (req->url left NULL), verdict says why (or that nothing
	 * was left to send).
	 */
	void		(*encode) (void *config, FhPartView *part, FhRequest *req,
						   FhVerdict *verdict);
	/*
	 * optional: how many copies of a part's records its request holds at
	 * once (0: the body is made as it is sent); NULL: one
	 */
	int			(*body_copies) (void *config);
	/* judge the response: OK, RETRY, FAIL, or NEXT (send the next step) */
	void		(*classify) (void *config, FhPartView *part, FhResponse *resp,
							 FhVerdict *verdict);
	/* optional: part is failing for good with verdict; true if one more
	 * (clean-up) request is to be sent, whose classify() has the final one */
	bool		(*give_up) (void *config, FhPartView *part, const FhVerdict *verdict);
	/* where records go, for people (no secrets): a URL */
	char	   *(*target) (Jsonb *options);
	/* optional: the destination's own fields of record i's error record */
	void		(*error_fields) (void *config, const FhPartView *part, int i,
								 StringInfo out);
};

/* in verdict.c: a sink's decisions on single records */
extern bool fh_view_pending(const FhPartView *part, int i);
extern void fh_view_deliver(FhPartView *part, int i);
extern void fh_view_fail(FhPartView *part, int i, const char *code, char *message);
extern const FhVerdict *fh_view_verdict(const FhPartView *part, int i,
										const FhVerdict *part_verdict);
extern bool fh_view_failed(const FhPartView *part, int i,
						   const FhVerdict *part_verdict);
extern void fh_verdict_set(FhVerdict *v, FhOutcome outcome, const char *code,
						   char *message);
extern bytea *fh_error_record(const FhRecord *r, const FhVerdict *v, int attempts,
							  TimestampTz attempt_end, const FhSink *sink,
							  void *config, const FhPartView *part, int i);

extern const FhSink *fh_sink_lookup(const char *name, bool missing_ok);
extern const char *fh_sink_names(void);
extern const FhSink fh_sink_http;
/* the http sink's parts, which the partner presets (sink_presets.c) share */
extern void *fh_http_configure(Jsonb *options, const char *stream, int32 version);
extern int	fh_http_body_copies(void *config);
extern void fh_http_limits(void *config, int *max_records, int64 *max_bytes);
extern void fh_http_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *v);
extern void fh_http_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *v);
extern void fh_http_error_fields(void *config, const FhPartView *part, int i, StringInfo out);
extern const FhSink fh_sink_datadog;
extern const FhSink fh_sink_newrelic;
extern const FhSink fh_sink_honeycomb;
extern const FhSink fh_sink_sumologic;
extern const FhSink fh_sink_coralogix;
extern const FhSink fh_sink_elastic;
extern const FhSink fh_sink_logicmonitor;
extern const FhSink fh_sink_logzio;
extern const FhSink fh_sink_mongodb;
extern const FhSink fh_sink_dynatrace;
extern const FhSink fh_sink_s3;
extern const FhSink fh_sink_opensearch;
extern const FhSink fh_sink_splunk;
extern const FhSink fh_sink_postgres;
extern const FhSink fh_sink_redshift;

extern const FhOptionDef fh_s3_options[];

/*
 * The S3 stage of another destination (sink_redshift.c), with a config of
 * fh_sink_s3.configure(): the key of part's object (folder NULL) or of its
 * file in folder (an error output type such as "manifests"), or NULL
 * with *why; its s3:// URL; a PutObject of data to key; and the verdict on
 * a PutObject's response (what: the step, for messages).
 */
extern char *fh_s3_key(void *config, FhPartView *part, const char *folder,
					   char **why);
extern char *fh_s3_url(void *config, const char *key);
extern void fh_s3_put(void *config, const char *key, const char *data, size_t len,
					  const char *content_type, FhRequest *req);
extern void fh_s3_put_classify(FhResponse *resp, const char *what, FhVerdict *v);

/*
 * A libpq connection of another destination (sink_redshift.c), as the
 * postgres destination makes it (sink_postgres.c): its options' checks
 * and redaction, and the parameters of its FhPgRequest.
 */
typedef struct FhPgConnection
{
	const char **keywords;		/* NULL-terminated, with values */
	const char **values;
	char	   *signature;		/* keywords and values as one text */
	char	   *target;			/* postgres://host:port/db, for people */
} FhPgConnection;
extern const char *const fh_pg_sslmodes[];
extern void fh_pg_conninfo_validate(const char *conninfo);
extern char *fh_pg_conninfo_redact(const char *value, List **secrets);
extern void fh_pg_connection(const char *conninfo, const char *sslmode,
							 const char *ca_file, FhPgConnection *conn);
extern void fh_pg_split_table(const char *option, const char *s, char **schema,
							  char **name);
extern Jsonb *fh_pg_column_names(Jsonb *value, const char *option, int max);

/*
 * The backup store of a destination (backup.c): a second sink instance, an
 * S3 one, configured from option "backup" like any destination, that
 * receives the error records of the failed records (and with mode "all" a
 * copy of every record).
 */
typedef struct FhBackup
{
	bool		all;			/* every record, not only the failed ones */
	const FhSink *sink;
	void	   *config;
} FhBackup;
extern Jsonb *fh_backup_normalize(Jsonb *backup);
extern FhBackup *fh_backup_configure(Jsonb *backup, const char *stream, int32 version);
extern const FhOptionDef fh_backup_options[];

/* the "backup" option of a destination's table */
#define FH_BACKUP_OPTION \
	{"backup", FH_OPT_OBJECT, .nested = fh_backup_options, \
	 .normalize = fh_backup_normalize, \
	 .what = "an object such as {\"mode\": \"failed\", \"s3\": {\"bucket\": ...}}"}

/* ---------- processors (processor.c) ---------- */

typedef struct FhProcessors FhProcessors;

/* what a processor made of a record */
typedef enum FhProcResult
{
	FH_PROC_OK,					/* deliver data */
	FH_PROC_DROPPED,			/* done, nothing sent */
	FH_PROC_FAILED				/* into failed_records, with verdict */
} FhProcResult;

typedef struct FhProcessed
{
	FhProcResult result;
	bytea	   *data;			/* FH_PROC_OK: what the destination gets */
	/* FH_PROC_OK: more records made of the same one (cloudwatch_logs: one
	 * per log event), delivered after data, and failing with it */
	int			nmore;
	bytea	  **more;
	FhVerdict	verdict;		/* FH_PROC_FAILED: why */
	Jsonb	   *partition_keys;	/* FH_PROC_OK: the keys of
									 * !{partitionKeyFromLambda:...} (a
									 * function's partition_keys, a Lambda's
									 * metadata.partitionKeys), or NULL */
} FhProcessed;

/*
 * A type of processor (option "type"), its functions in a table like a
 * sink's.  normalize: check processor p, whose keys are among keys, and
 * append its normalized form (every option given) to out; returns why it
 * is not valid, or NULL.  configure: what run needs, from the normalized
 * form, in CurrentMemoryContext.  run: replace out[i] of every record whose
 * out[i].result is FH_PROC_OK (its data is out[i].data) by what the
 * processor made of it, allocated in CurrentMemoryContext; called as role
 * owner, in a transaction with a snapshot.  header, optional: append the
 * text that is to start each part's output (an object, a request).
 */
typedef struct FhProcessorKind
{
	const char *type;
	const char *const *keys;	/* NULL terminated */
	const char *(*normalize) (Jsonb *p, StringInfo out);
	void	   *(*configure) (Jsonb *p);
	void		(*run) (void *config, Oid owner, const FhRecord *records, int n,
						FhProcessed *out);
	void		(*header) (void *config, StringInfo out);
} FhProcessorKind;

/* in verdict.c */
extern void fh_processed_fail(FhProcessed *out, const char *code, char *message);

/* in processor_csv.c */
extern const FhProcessorKind fh_processor_json_to_csv;

/* in processor_unpack.c */
extern const FhProcessorKind fh_processor_decompress;
extern const FhProcessorKind fh_processor_cloudwatch_logs;

extern Jsonb *fh_processors_normalize(Jsonb *value);
extern void fh_processors_check_execute(Jsonb *processors, Oid role);
extern FhProcessors *fh_processors_configure(Jsonb *processors);
extern int	fh_process(FhProcessors *ps, int from, Oid owner, const FhRecord *records,
					   int n, FhProcessed *out);

/*
 * A Lambda processor (processor_lambda.c): the records of a part go to an
 * HTTP endpoint in invocations of Firehose's Lambda event, sent by the
 * worker on its curl multi handle like a destination's requests.  An
 * FhLambdaRun is one part's way through one Lambda processor, in the
 * part's memory.
 */
typedef struct FhLambda FhLambda;
typedef struct FhLambdaRun FhLambdaRun;

extern const FhProcessorKind fh_processor_lambda;
extern FhLambda *fh_processors_lambda_at(FhProcessors *ps, int k);
extern FhProcessors *fh_processors_tail(FhProcessors *ps, int k);
extern void fh_processors_header(FhProcessors *ps, StringInfo header);
extern bool fh_has_header(const StringInfo header, const bytea *data);
extern bytea *fh_with_header(const StringInfo header, const bytea *data);
extern FhLambda *fh_lambda_copy(FhLambda *l);
extern FhLambdaRun *fh_lambda_start(FhLambda *l, const char *stream,
									const FhRecord *records, int n,
									FhProcessed *out, int64 retry_base_ms,
									int64 retry_max_ms);
extern bool fh_lambda_encode(FhLambdaRun *run, FhRequest *req, int64 *timeout_ms);
extern int64 fh_lambda_judge(FhLambdaRun *run, const FhResponse *resp);
extern void fh_lambda_fail(FhLambdaRun *run, const char *code, const char *message);

/* ---------- record format conversion (format_parquet.c) ---------- */

/* the errorCode of a record that does not convert */
#define FH_FORMAT_ERROR_CODE		"S3.FormatConversionFailed"
#define FH_FORMAT_ERROR_OUTPUT_TYPE	"format-conversion-failed"

typedef struct FhFormat FhFormat;
extern const FhOptionDef fh_format_options[];
extern Jsonb *fh_format_normalize(Jsonb *format);
extern FhFormat *fh_format_configure(Jsonb *format);
extern int	fh_format_convert(FhFormat *f, FhPartView *part, StringInfo out);
extern void fh_format_table(FhFormat *f, char **schema, char **table);

/* ---------- AWS requests (aws_request.c) ---------- */

typedef struct FhAwsTarget
{
	const char *scheme;			/* "https" */
	const char *host;			/* Host header: name[:port] */
	const char *region;
	const char *service;		/* "s3", "es", "aoss" */
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
} FhAwsTarget;

extern void fh_aws_sign_request(const FhAwsTarget *t, FhRequest *req, const char *method,
								const char *path, const char *query,
								const char *data, size_t len,
								const char *const *extra, int nextra,
								const char *content_type);
extern void fh_aws_credentials(Jsonb *o, FhAwsTarget *t);
extern bool fh_aws_missing_credentials(const FhAwsTarget *t, FhVerdict *verdict,
									   const char *code);
extern void fh_aws_validate_credentials(Jsonb *o, const char *what);

/* ---------- transport (transport.c) ---------- */

extern void fh_transport_init(void);
extern void fh_transport_start(FhPart *part, FhRequest *req, int64 timeout_ms);
extern void fh_transport_cancel(FhPart *part);
extern void fh_transport_release_body(FhPart *part);
extern int	fh_transport_wait(long timeout_ms, FhPart **done, int max_done);
extern void fh_transport_pump(void);
extern int	fh_transport_running(void);

/* ---------- PostgreSQL connections (pgconn.c) ---------- */

/* a socket of a connection and what to wait for (WL_SOCKET_*) */
typedef struct FhPgWatch
{
	int			fd;
	uint32		events;
} FhPgWatch;

extern void fh_pg_start(FhPart *part, FhRequest *req, int64 timeout_ms);
extern void fh_pg_cancel(FhPart *part);
extern int	fh_pg_watches(FhPgWatch *out, int max, bool *changed);
extern void fh_pg_service(int fd);
extern long fh_pg_timeout(long timeout_ms);
extern int	fh_pg_done(FhPart **done, int max_done);
extern int	fh_pg_running(void);

/* ---------- worker (worker.c) ---------- */

struct FhPart
{
	dlist_node	node;
	struct FhWorkerStream *stream;
	FhBatch    *batch;
	int			partno;
	FhScanPos	start;			/* the batch's scan position before and */
	FhScanPos	end;			/* after reading this part */
	MemoryContext cxt;
	FhRecord   *records;
	int			nrecords;
	int64		bytes;
	int64		memory;			/* its share of firehose.worker_memory */
	char		request_id[40];
	unsigned char object_id[16];	/* the same for this part's records
									 * across retries and worker restarts */
	FhPartView	view;			/* what the destination's sink sees */
	/* the process stage's outcome of each record read (NULL: no processors:
	 * the view's records are the records read) and its index in the view
	 * (-1: dropped or failed) */
	FhProcessed *processed;
	int		   *view_index;
	int			dropped;		/* records the processors dropped, */
	int			processing_failed;	/* failed, */
	int64		processing_us;	/* and the time they took (-1: none) */
	TimestampTz processing_start;
	TimestampTz processed_at;
	/* while the part waits for a Lambda processor (over the network): its
	 * number in procs, the processors from it on (the part's copy), and
	 * the part's way through it; lambda is NULL when processing is done */
	int			proc_wait;
	FhProcessors *procs;
	FhLambdaRun *lambda;
	bool		stepping;		/* the last answer was NEXT */

	/*
	 * Dynamic partitioning: a part its sink split is sent as child parts,
	 * one per object, and waits for them (children_left > 0); a child's
	 * record i is its parent's view record parent_index[i] (or the error
	 * record of that record, for a child with an error output type).
	 */
	FhPart	   *parent;
	int		   *parent_index;
	int			nchildren;
	int			children_left;
	FhVerdict	last_retry;		/* the last error retried, if any */
	/* the backup phases: the error records of the records processors
	 * failed, then of those that failed at the destination, then (mode
	 * all) a copy of every source record, written to the backup store,
	 * which sees them through backup_view */
	int			backup_phase;	/* 0: the destination; FH_BACKUP_* */
	FhPartView	backup_view;
	FhVerdict	primary;		/* the destination's verdict meanwhile */
	int			primary_attempts;
	char	   *backup_error;	/* why the backup failed, or NULL */
	TimestampTz last_attempt_end;
	int			attempts;
	TimestampTz first_attempt;
	TimestampTz first_failure;
	TimestampTz next_attempt;
	TimestampTz attempt_started;
	TimestampTz oldest_arrival;
	bool		in_flight;
	bool		finished;
	FhVerdict	verdict;
	long		last_status;
	/* transport state */
	void	   *easy;
	FhRequest	request;
	FhResponse	response;
};

#define FH_BACKUP_PROCESSING 1	/* error records of processing failures */
#define FH_BACKUP_DECOMPRESSION 2	/* ... of those that failed to decompress */
#define FH_BACKUP_ERRORS	3	/* error records of delivery failures */
#define FH_BACKUP_ALL		4	/* every source record */
#define FH_BACKUP_DONE		5

/* the !{firehose:error-output-type} of records processors failed */
#define FH_PROCESSING_ERROR_OUTPUT_TYPE "processing-failed"
/* a record that would not decompress: its code, and Firehose's own folder */
#define FH_DECOMPRESSION_FAILED "Decompression.Failed"
#define FH_DECOMPRESSION_ERROR_OUTPUT_TYPE "decompression-failed"


PGDLLEXPORT void fh_launcher_main(Datum arg);
/* in put.c */
extern void fh_reload_at_commit(void);
extern int32 fh_stream_id_by_name(text *name, bool *paused);
extern int64 fh_put_internal(text *stream, struct varlena *record);
PGDLLEXPORT void fh_worker_main(Datum arg);

/* ---------- utilities (util.c) ---------- */

extern void fh_uuid_from(uint64 a, uint64 b, uint64 c, char *out);
/* the exact length of the base64 of n bytes */
#define FH_BASE64_LEN(n)	((((size_t) (n) + 2) / 3) * 4)
extern size_t fh_base64_encode(const char *data, size_t len, char *dst);
extern void fh_base64_append(StringInfo buf, const char *data, int len);
extern bool fh_gzip(const char *in, size_t inlen, StringInfo out);
extern const char *fh_gunzip(const char *in, size_t inlen, size_t max, StringInfo out);
extern int64 fh_backoff_ms(int attempt, int64 base_ms, int64 max_ms);
extern int64 fh_epoch_ms(TimestampTz t);
extern size_t fh_url_trimmed_len(const char *url);
extern bool fh_is_json(const char *data, int len);
extern Jsonb *fh_jsonb_parse(const char *text, char **error);
extern char *fh_jsonb_path_scalar(Jsonb *doc, Datum path, bool booleans, bool *found);
extern char *fh_jsonb_scalar_text(const JsonbValue *jv, bool booleans);
extern void fh_url_split(const char *url, char **scheme, char **hostport, char **path);
extern char *fh_url_escape(const char *s);
extern bool fh_url_userinfo(const char *url, size_t *start, size_t *len);
extern char *fh_url_redact(const char *url);

/* longest error text stored in deliveries, failed_records, stream_stats */
#define FH_MAX_ERROR_LEN 8192
extern char *fh_error_text(const char *msg, List *secrets);
extern void fh_append_answer(StringInfo out, const FhResponse *resp, int max);

/* ---------- compression (compress.c) ---------- */

typedef enum FhCompression
{
	FH_COMPRESS_NONE,
	FH_COMPRESS_GZIP,
	FH_COMPRESS_ZSTD,
	FH_COMPRESS_SNAPPY,			/* the Snappy framing format */
	FH_COMPRESS_HADOOP_SNAPPY	/* Hadoop's block format */
} FhCompression;

extern const char *const fh_compression_names[];	/* by FhCompression, NULL
													 * terminated */
extern FhCompression fh_compression_from_name(const char *name);
extern bool fh_compress(FhCompression kind, const char *in, size_t len, StringInfo out);

#endif							/* FIREHOSE_H */
