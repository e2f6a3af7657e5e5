/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  The SQL-callable helpers the install script uses around streams:
 *	  normalize the options a user gave for the stream's destination (the
 *	  option tables and their checks are in options.c), refuse options
 *	  only some roles may use, redact, changed, ownership, status and
 *	  flush().
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "parser/parse_func.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/varlena.h"


/*
 * fh_options_normalize
 *		Merge changes into current (both may be NULL) and validate the
 *		result for the destination.  A key whose value in changes is JSON
 *		null goes back to its default.  Returns the normalized options.
 */
Jsonb *
fh_options_normalize(const char *destination, Jsonb *current, Jsonb *changes)
{
	const FhSink *sink = fh_sink_lookup(destination, false);
	JsonbValue *given = fh_jsonb_get(changes, "processors");
	JsonbValue *stored = fh_jsonb_get(current, "processors");
	JsonbValue *p = given ? given : stored;

	/*
	 * The processors are checked here, not by the option table, so that
	 * options.c calls no processor (a Lambda processor calls options.c):
	 * the merged value, checked again on every change, as the table checks
	 * every option (a function dropped since shows).
	 */
	if (p && p->type == jbvBinary)
	{
		Jsonb	   *norm = fh_processors_normalize(JsonbValueToJsonb(p));
		JsonbValue	key;
		JsonbValue	val;
		JsonbParseState *state = NULL;
		JsonbIterator *it;
		JsonbValue	kv;
		JsonbIteratorToken tok;
		JsonbValue *res = NULL;

		/* changes, with "processors" the normalized value */
		key.type = jbvString;
		key.val.string.val = "processors";
		key.val.string.len = strlen("processors");
		val.type = jbvBinary;
		val.val.binary.data = &norm->root;
		val.val.binary.len = VARSIZE(norm) - VARHDRSZ;
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		if (changes && JB_ROOT_IS_OBJECT(changes))
		{
			it = JsonbIteratorInit(&changes->root);
			while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
			{
				if (tok == WJB_KEY && kv.val.string.len == key.val.string.len &&
					memcmp(kv.val.string.val, "processors", kv.val.string.len) == 0)
				{
					(void) JsonbIteratorNext(&it, &kv, true);	/* its value */
					continue;
				}
				if (tok == WJB_KEY || tok == WJB_VALUE)
					pushJsonbValue(&state, tok, &kv);
			}
		}
		else if (changes)
			return fh_options_normalize_sink(sink, current, changes, true);
		pushJsonbValue(&state, WJB_KEY, &key);
		res = pushJsonbValue(&state, WJB_VALUE, &val);
		res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
		changes = JsonbValueToJsonb(res);
	}
	return fh_options_normalize_sink(sink, current, changes, true);
}

/* ---------- options only some roles may use ---------- */

/*
 * Is path, once ".." and symbolic links are resolved, a regular file under
 * one of the directories of firehose.allowed_ca_dirs?
 */
static bool
ca_file_allowed(const char *path)
{
	char		resolved[PATH_MAX];
	char	   *dirs;
	List	   *list;
	ListCell   *lc;
	struct stat st;

	if (fh_allowed_ca_dirs == NULL || fh_allowed_ca_dirs[0] == '\0' ||
		realpath(path, resolved) == NULL ||
		stat(resolved, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	dirs = pstrdup(fh_allowed_ca_dirs);
	if (!SplitDirectoriesString(dirs, ',', &list))
		return false;
	foreach(lc, list)
	{
		char		dir[PATH_MAX];
		size_t		len;

		if (realpath((char *) lfirst(lc), dir) == NULL)
			continue;
		len = strlen(dir);
		/* "/" itself ends in a slash; any other directory does not */
		if (strncmp(resolved, dir, len) == 0 &&
			(resolved[len] == '/' || (len > 0 && dir[len - 1] == '/')))
			return true;
	}
	return false;
}

/*
 * check_option_privileges
 *		Refuse options that reach beyond the stream to a caller who is not a
 *		superuser: "credentials": "environment" (the server's own AWS
 *		identity) and "ca_file" (a file of the server, unless it lies under
 *		firehose.allowed_ca_dirs).  opts are normalized options, as they will
 *		be stored: a stream that uses them can only be altered by a role that
 *		may use them.  prefix names where opts lie ("backup.s3." or "").
 */
static void
check_option_privileges(Jsonb *opts, Oid caller, const char *prefix)
{
	char	   *s;
	JsonbValue *backup;
	JsonbValue *processors = fh_jsonb_get(opts, "processors");

	/* the stream's owner runs them: the one who sets them must be able to */
	if (processors && processors->type == jbvBinary)
		fh_processors_check_execute(JsonbValueToJsonb(processors), caller);
	if (superuser_arg(caller))
		return;
	if (fh_jsonb_get_text(opts, "credentials", &s) && strcmp(s, "environment") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use option \"%scredentials\": \"environment\"", prefix),
				 errdetail("They are the database server's own AWS credentials; only a superuser may give them to a stream."),
				 errhint("Give \"access_key_id\" and \"secret_access_key\" instead.")));
	if (fh_jsonb_get_text(opts, "ca_file", &s) && !ca_file_allowed(s))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use option \"%sca_file\": \"%s\"", prefix, s),
				 errdetail("Only a superuser may name a file of the database server, unless it is a file under one of the directories of firehose.allowed_ca_dirs."),
				 errhint("Ask a superuser to set firehose.allowed_ca_dirs to the directory of your CA certificates.")));
	if (processors && processors->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(processors->val.binary.data);
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			n = 0;

		/* a Lambda processor's credentials and the like */
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok == WJB_ELEM && v.type == jbvBinary)
				check_option_privileges(JsonbValueToJsonb(&v), caller,
										psprintf("processors[%d].", n++));
	}
	backup = fh_jsonb_get(opts, "backup");
	if (backup && backup->type == jbvBinary)
	{
		JsonbValue *s3 = fh_jsonb_get(JsonbValueToJsonb(backup), "s3");

		if (s3 && s3->type == jbvBinary)
			check_option_privileges(JsonbValueToJsonb(s3), caller, "backup.s3.");
	}
}

/* ---------- SQL-callable helpers ---------- */

/*
 * _normalize_options(destination, current, changes, caller): the options
 * to store, checked for the role caller (the one who called create_stream
 * or alter_stream, see fh_call_with_caller).
 */
PG_FUNCTION_INFO_V1(fh_normalize_options_sql);
Datum
fh_normalize_options_sql(PG_FUNCTION_ARGS)
{
	char	   *dest = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *current = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	Jsonb	   *changes = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	Oid			caller = PG_ARGISNULL(3) ? InvalidOid : PG_GETARG_OID(3);
	Jsonb	   *result = fh_options_normalize(dest, current, changes);

	check_option_privileges(result, caller, "");
	PG_RETURN_JSONB_P(result);
}

/* ---------- stream ownership ---------- */

/*
 * The role fh_call_with_caller (or fh_owned_stream_id) passes to the
 * internal function it runs now; InvalidOid when none runs.
 */
static Oid	calling_role = InvalidOid;

/*
 * _check_caller(caller): refuse a caller other than the one passed by
 * fh_call_with_caller or fh_owned_stream_id.  The internal functions that
 * take a caller are executable by no one else; this keeps a role that was
 * granted EXECUTE on them anyway from passing for another role.
 */
PG_FUNCTION_INFO_V1(fh_check_caller_sql);
Datum
fh_check_caller_sql(PG_FUNCTION_ARGS)
{
	if (!OidIsValid(calling_role) || PG_ARGISNULL(0) ||
		PG_GETARG_OID(0) != calling_role)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("firehose's internal stream functions take the caller from firehose's own functions only"),
				 errhint("Call firehose.create_stream(), alter_stream() and the like, not the functions behind them.")));
	PG_RETURN_VOID();
}

/*
 * fh_owned_stream_id
 *		The id of the named stream if role may manage it (its owner, a role
 *		with the owner's privileges, a superuser); ERROR 42501 if not, 42704
 *		if there is no such stream.  The policy is firehose._owned_stream_id.
 */
int32
fh_owned_stream_id(text *name, Oid role)
{
	FhCatalogAccess ca;
	Oid			types[2] = {TEXTOID, REGROLEOID};
	Datum		values[2] = {PointerGetDatum(name), ObjectIdGetDatum(role)};
	Oid			save_role = calling_role;
	bool		isnull;
	int32		id = 0;

	fh_catalog_access_begin(&ca);
	SPI_connect();
	calling_role = role;
	PG_TRY();
	{
		if (SPI_execute_with_args("SELECT firehose._owned_stream_id($1, $2)",
								  2, types, values, NULL, true, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not check the owner of a firehose stream");
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	}
	PG_FINALLY();
	{
		calling_role = save_role;
	}
	PG_END_TRY();
	SPI_finish();
	fh_catalog_access_end(&ca);
	return id;
}

/*
 * inner_function
 *		The FmgrInfo of the internal function behind the user-facing C
 *		function being called: the one of the same name with an underscore,
 *		taking the same arguments and, with add_caller, a regrole last.
 *		Looked up once per call site (fn_extra).
 */
#define FH_CALL_MAX_ARGS 8

static FmgrInfo *
inner_function(FunctionCallInfo fcinfo, bool add_caller)
{
	FmgrInfo   *inner = fcinfo->flinfo->fn_extra;
	HeapTuple	tup;
	Form_pg_proc proc;
	Oid			argtypes[FH_CALL_MAX_ARGS];
	int			nargs;
	List	   *name;

	if (inner != NULL)
		return inner;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->pronargs >= FH_CALL_MAX_ARGS)
		elog(ERROR, "too many arguments for an internal firehose function");
	memcpy(argtypes, proc->proargtypes.values, proc->pronargs * sizeof(Oid));
	nargs = proc->pronargs;
	if (add_caller)
		argtypes[nargs++] = REGROLEOID;
	name = list_make2(makeString(get_namespace_name(proc->pronamespace)),
					  makeString(psprintf("_%s", NameStr(proc->proname))));
	inner = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
	fmgr_info_cxt(LookupFuncName(name, nargs, argtypes, false),
				  inner, fcinfo->flinfo->fn_mcxt);
	ReleaseSysCache(tup);
	fcinfo->flinfo->fn_extra = inner;
	return inner;
}

/*
 * fh_call_with_caller
 *		The C body of a user-facing function such as firehose.create_stream:
 *		calls firehose._create_stream with the same arguments and one more,
 *		the role that called (a regrole).
 *
 * The internal function is SECURITY DEFINER, to work on the catalog that
 * the caller may not touch; inside it, current_user is the extension's
 * owner and session_user may be anyone (a SECURITY DEFINER function of a
 * third role may call us), so neither tells who called.  Here, still in
 * the caller's rights, GetUserId() does.  The internal function is not
 * executable by PUBLIC, so no one passes a role of their choosing; this
 * call goes through fmgr, which checks no privilege, as PostgreSQL checked
 * EXECUTE on this function already.
 */
PG_FUNCTION_INFO_V1(fh_call_with_caller);
Datum
fh_call_with_caller(PG_FUNCTION_ARGS)
{
	FmgrInfo   *inner = inner_function(fcinfo, true);
	LOCAL_FCINFO(call, FH_CALL_MAX_ARGS);
	Datum		result;
	Oid			save_role;

	InitFunctionCallInfoData(*call, inner, fcinfo->nargs + 1,
							 fcinfo->fncollation, NULL, NULL);
	for (int i = 0; i < fcinfo->nargs; i++)
		call->args[i] = fcinfo->args[i];
	call->args[fcinfo->nargs].value = ObjectIdGetDatum(GetUserId());
	call->args[fcinfo->nargs].isnull = false;
	save_role = calling_role;
	calling_role = GetUserId();
	PG_TRY();
	{
		result = FunctionCallInvoke(call);
	}
	PG_FINALLY();
	{
		calling_role = save_role;
	}
	PG_END_TRY();
	fcinfo->isnull = call->isnull;
	return result;
}

/*
 * capture_table(tbl, stream, options): refused unless the calling role may
 * manage the stream, then firehose._capture_table(tbl, stream, options),
 * which creates the triggers in the caller's rights (neither function is
 * SECURITY DEFINER).  The check is made here, in C, so that no internal
 * function has to be executable by the roles that capture tables; the
 * internal one is called through fmgr, which checks no privilege.
 */
PG_FUNCTION_INFO_V1(fh_capture_table);
Datum
fh_capture_table(PG_FUNCTION_ARGS)
{
	FmgrInfo   *inner;
	LOCAL_FCINFO(call, 3);

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and stream must not be NULL")));
	(void) fh_owned_stream_id(PG_GETARG_TEXT_PP(1), GetUserId());

	inner = inner_function(fcinfo, false);
	InitFunctionCallInfoData(*call, inner, 3, fcinfo->fncollation, NULL, NULL);
	for (int i = 0; i < 3; i++)
		call->args[i] = fcinfo->args[i];
	(void) FunctionCallInvoke(call);
	PG_RETURN_VOID();
}


/*
 * _target(destination, options): where the stream's records go, as a URL
 * without secrets (firehose.streams.target): the sink's target() of the
 * redacted options.
 */
PG_FUNCTION_INFO_V1(fh_target_sql);
Datum
fh_target_sql(PG_FUNCTION_ARGS)
{
	const FhSink *sink = fh_sink_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	char	   *t;

	if (sink == NULL || sink->target == NULL)
		PG_RETURN_NULL();
	t = sink->target(fh_options_redact(sink, PG_GETARG_JSONB_P(1), NULL));
	if (t == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(t));
}

/* _redact_options(destination, options): fh_options_redact, for the view */
PG_FUNCTION_INFO_V1(fh_redact_options_sql);
Datum
fh_redact_options_sql(PG_FUNCTION_ARGS)
{
	const FhSink *sink = fh_sink_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);

	PG_RETURN_JSONB_P(fh_options_redact(sink, PG_GETARG_JSONB_P(1), NULL));
}

/*
 * _stream_changed(stream_id): after create/alter/drop/pause/resume, at
 * commit: backends drop their cached stream lookups, the worker reloads.
 */
PG_FUNCTION_INFO_V1(fh_stream_changed_sql);
Datum
fh_stream_changed_sql(PG_FUNCTION_ARGS)
{
	Oid			stream_rel = get_relname_relid("stream",
											   get_namespace_oid(FH_SCHEMA, false));

	CacheInvalidateRelcacheByRelid(stream_rel);
	fh_reload_at_commit();

	/*
	 * The launcher gives this database a worker after commit; tell now if it
	 * cannot (the commit itself must not fail for it).
	 */
	if (fh_shared && fh_db_slots_full(MyDatabaseId))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no firehose worker can run for this database now"),
				 errdetail("All %d database slots are taken by other databases that use firehose.",
						   FH_MAX_DATABASES),
				 errhint("Records are kept, and delivered once another database drops the extension or is dropped.")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(fh_forget_slot_sql);
Datum
fh_forget_slot_sql(PG_FUNCTION_ARGS)
{
	fh_stream_slot_release(MyDatabaseId, PG_GETARG_INT32(0));
	PG_RETURN_VOID();
}

/*
 * _slot_status(stream_id): the shared counters of one stream.
 *
 * firehose.stream_status calls it, and a view's functions run with the
 * rights of the role querying the view, so it is executable by PUBLIC.  It
 * therefore answers only roles that may read that view: to others it would
 * show what the view hides from them.
 */
/* the words of stream_status.blocked_reason */
const char *
fh_blocked_text(FhBlocked reason)
{
	switch (reason)
	{
		case FH_BLOCKED_NONE:
			break;
		case FH_BLOCKED_ROW_LOCK:
			return "another session holds a lock on the stream's row of firehose.stream";
		case FH_BLOCKED_RETRYING:
			return "a request is being retried; later batches wait for it";
		case FH_BLOCKED_BATCHES:
			return "too many batches wait behind the oldest one";
		case FH_BLOCKED_MEMORY:
			return "waiting for firehose.worker_memory";
	}
	return NULL;
}

PG_FUNCTION_INFO_V1(fh_slot_status_sql);
Datum
fh_slot_status_sql(PG_FUNCTION_ARGS)
{
	int32		stream_id = PG_GETARG_INT32(0);
	Oid			view = get_relname_relid("stream_status",
										 get_namespace_oid(FH_SCHEMA, false));
	FhStreamSlot *slot;
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10] = {false};
	uint32		partitions = 0;
	bool		exceeded = false;
	uint64		blocked_since = 0;
	FhBlocked	blocked = FH_BLOCKED_NONE;
	uint64		committed_r = 0,
				committed_b = 0,
				cut_r = 0,
				cut_b = 0,
				done_r = 0,
				done_b = 0,
				oldest = 0;

	if (!OidIsValid(view) ||
		pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function _slot_status"),
				 errdetail("It shows what firehose.stream_status shows, to roles that may read that view."),
				 errhint("Grant SELECT on firehose.stream_status, and query the view.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	slot = fh_shared ? fh_stream_slot(MyDatabaseId, stream_id, false) : NULL;
	if (slot)
	{
		/* read in this order so that no difference goes negative */
		done_r = pg_atomic_read_u64(&slot->done_records);
		done_b = pg_atomic_read_u64(&slot->done_bytes);
		pg_read_barrier();
		cut_r = pg_atomic_read_u64(&slot->cut_records);
		cut_b = pg_atomic_read_u64(&slot->cut_bytes);
		pg_read_barrier();
		committed_r = pg_atomic_read_u64(&slot->committed_records);
		committed_b = pg_atomic_read_u64(&slot->committed_bytes);
		oldest = pg_atomic_read_u64(&slot->oldest_inflight);
		if (oldest == 0)
			oldest = pg_atomic_read_u64(&slot->first_pending);
		blocked = (FhBlocked) pg_atomic_read_u32(&slot->blocked_reason);
		blocked_since = pg_atomic_read_u64(&slot->blocked_since);
		partitions = pg_atomic_read_u32(&slot->active_partitions);
		exceeded = pg_atomic_read_u32(&slot->partitions_exceeded) != 0;
	}
	values[0] = Int64GetDatum(committed_r > cut_r ? committed_r - cut_r : 0);
	values[1] = Int64GetDatum(committed_b > cut_b ? committed_b - cut_b : 0);
	values[2] = Int64GetDatum(cut_r > done_r ? cut_r - done_r : 0);
	values[3] = Int64GetDatum(cut_b > done_b ? cut_b - done_b : 0);
	if (oldest)
		values[4] = TimestampTzGetDatum((TimestampTz) oldest);
	else
		nulls[4] = true;
	{
		FhDbSlot   *db = fh_shared ? fh_db_slot(MyDatabaseId) : NULL;

		values[5] = BoolGetDatum(db != NULL && db->worker_pid != 0);
	}
	if (blocked != FH_BLOCKED_NONE && blocked_since != 0)
	{
		values[6] = TimestampTzGetDatum((TimestampTz) blocked_since);
		values[7] = CStringGetTextDatum(fh_blocked_text(blocked));
	}
	else
		nulls[6] = nulls[7] = true;
	values[8] = Int32GetDatum((int32) partitions);
	values[9] = BoolGetDatum(exceeded);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * flush(stream, wait, timeout): ask the worker to cut a batch now; with
 * wait, return once everything committed before the call was delivered or
 * failed (true), or when the timeout passed (false).  For the streams the
 * caller may manage: one (else 42501), or with stream NULL all of those.
 */
PG_FUNCTION_INFO_V1(fh_flush_sql);
Datum
fh_flush_sql(PG_FUNCTION_ARGS)
{
	bool		wait = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	Interval   *timeout = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	int64		timeout_ms = 30000;
	List	   *ids = NIL;
	int			n;
	FhStreamSlot **slots;
	uint64	   *targets;
	TimestampTz deadline;
	bool		done = true;

	if (timeout)
		timeout_ms = (timeout->time + (int64) timeout->day * USECS_PER_DAY +
					  (int64) timeout->month * DAYS_PER_MONTH * USECS_PER_DAY) / 1000;

	if (!PG_ARGISNULL(0))
	{
		bool		paused;
		int32		id;

		(void) fh_owned_stream_id(PG_GETARG_TEXT_PP(0), GetUserId());
		id = fh_stream_id_by_name(PG_GETARG_TEXT_PP(0), &paused);

		if (paused)
		{
			ereport(NOTICE,
					(errmsg("stream \"%s\" is paused; nothing is delivered until it is resumed",
							text_to_cstring(PG_GETARG_TEXT_PP(0)))));
			PG_RETURN_BOOL(false);
		}
		ids = lappend_int(ids, id);
	}
	else
	{
		FhCatalogAccess ca;
		MemoryContext outer = CurrentMemoryContext;
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(GetUserId())};

		/* all streams: those the caller may manage, as for one */
		fh_catalog_access_begin(&ca);
		SPI_connect();
		SPI_execute_with_args("SELECT id FROM firehose.stream "
							  "WHERE status OPERATOR(pg_catalog.=) 'ACTIVE' "
							  "AND firehose._may_manage(owner, $1)",
							  1, argtypes, args, NULL, true, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
			MemoryContext spi = MemoryContextSwitchTo(outer);

			ids = lappend_int(ids, id);
			MemoryContextSwitchTo(spi);
		}
		SPI_finish();
		fh_catalog_access_end(&ca);
	}

	n = list_length(ids);
	slots = palloc(sizeof(FhStreamSlot *) * (n + 1));
	targets = palloc(sizeof(uint64) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		slots[i] = fh_stream_slot(MyDatabaseId, list_nth_int(ids, i), true);
		targets[i] = pg_atomic_add_fetch_u64(&slots[i]->flush_requested, 1);
	}
	fh_request_worker(MyDatabaseId);
	fh_wake_worker(MyDatabaseId, true);

	if (!wait || n == 0)
		PG_RETURN_BOOL(true);

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	ConditionVariablePrepareToSleep(&fh_shared->flush_cv);
	for (;;)
	{
		long		remaining;

		done = true;
		for (int i = 0; i < n; i++)
		{
			/* a stream dropped meanwhile has nothing left to wait for */
			if (slots[i]->dbid != MyDatabaseId ||
				slots[i]->stream_id != list_nth_int(ids, i))
				continue;
			if (pg_atomic_read_u64(&slots[i]->flush_done) < targets[i])
				done = false;
		}
		if (done)
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			break;
		/* wake now and then even without a broadcast, to recheck */
		ConditionVariableTimedSleep(&fh_shared->flush_cv, Min(remaining, 1000),
									PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	PG_RETURN_BOOL(done);
}
