/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  firehose.capture(): a trigger that turns row changes into change
 *	  events in a Debezium-style envelope and puts them into a stream.
 *
 * One change is one record:
 *
 *	{"before": <row or null>, "after": <row or null>, "op": "c|u|d|t",
 *	 "ts_ms": <ms>, "source": {"version": "firehose-0.1.0",
 *	 "connector": "firehose", "db": ..., "schema": ..., "table": ...,
 *	 "txId": <top-level xid8>, "ts_ms": <ms>}}
 *
 * ts_ms is the start of the statement that made the change
 * (statement_timestamp(), in milliseconds since 1970): the commit time that
 * Debezium reports is not known inside the transaction, and the statement
 * time, unlike now(), orders the changes of one transaction.
 *
 * Rows are serialized by row_to_json() on the tuple as a composite datum,
 * so every type comes out as PostgreSQL itself writes it in JSON (numbers
 * as numbers, json and jsonb nested, arrays as arrays, composites as
 * objects, bytea as "\\x..." text), in column order, dropped columns left
 * out.  Columns named by ignore= are projected away first, through a
 * blessed row type of the kept columns.
 *
 * The record goes into the stream with fh_put_internal() in the trigger's
 * own transaction, so a rolled-back change delivers nothing.  The trigger
 * runs no SQL per row: the parsed arguments, the projection and the JSON of
 * the "source" names are built once per trigger and kept for the session in
 * a cache by trigger oid, dropped when the relcache of its table is
 * invalidated (ALTER TABLE, CREATE OR REPLACE TRIGGER, renames) or a
 * schema changes (the "source" names its schema); the envelope is built in
 * one buffer that is the record itself.
 *
 * Trigger arguments: the stream name, then key=value options:
 *	ignore=col[,col...]		leave these columns out of both row images
 *	skip_unchanged=true		no event for an UPDATE whose row images (after
 *							ignore=) are equal
 *
 * No EXECUTE privilege is checked when a trigger fires (only CREATE TRIGGER
 * checks EXECUTE on the function), so the roles that may create capture
 * triggers are those granted EXECUTE on firehose.capture(), and whoever
 * writes to a captured table needs no privilege on firehose at all.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#define FH_CAPTURE_VERSION	"firehose-" FH_VERSION

/* what one trigger needs to build its events, kept for the session */
typedef struct CaptureState
{
	Oid			tgoid;			/* hash key: the trigger */
	MemoryContext cxt;			/* holds what this points to */
	Oid			relid;			/* its table, for invalidation */
	TupleDesc	reldesc;		/* built for; rebuilt when either changes */
	text	   *stream;
	bool		skip_unchanged;
	AttrNumber *kept;			/* columns of the row images; NULL: all */
	int			nkept;
	TupleDesc	projdesc;		/* blessed row type of the kept columns */
	char	   *source;			/* ,"source":{..."table":"t","txId": */
	int			source_len;
} CaptureState;

static const char *const capture_arg_keys = "ignore, skip_unchanged";

/* CaptureState by trigger oid, for the session */
static HTAB *capture_cache = NULL;

/*
 * A relcache invalidation: the states of that table (or of all) are stale.
 * They are only marked here, as a call may be using one right now (an
 * invalidation can arrive whenever a lock is taken); capture_state()
 * rebuilds them.
 */
static void
capture_relcache_cb(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	CaptureState *st;

	hash_seq_init(&seq, capture_cache);
	while ((st = hash_seq_search(&seq)) != NULL)
		if (!OidIsValid(relid) || st->relid == relid)
			st->reldesc = NULL;
}

/*
 * A schema changed (ALTER SCHEMA ... RENAME invalidates no relcache entry):
 * every state may hold a stale schema name in its "source".
 */
static void
capture_namespace_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	capture_relcache_cb(arg, InvalidOid);
}

/*
 * The attribute number of column name in desc, or InvalidAttrNumber.
 */
static AttrNumber
column_attnum(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

static void
ignore_column(TriggerData *td, bool *ignored, const char *name)
{
	Relation	rel = td->tg_relation;
	AttrNumber	attnum = column_attnum(RelationGetDescr(rel), name);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" named in ignore= of trigger \"%s\" does not exist in table \"%s\"",
						name, td->tg_trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Recreate the trigger without that column, for example with firehose.capture_table().")));
	ignored[attnum - 1] = true;
}

/*
 * ignore=<value>: a column name, or a comma-separated list of them.  A value
 * that names a column as a whole wins, so that capture_table() can pass any
 * name, commas included.
 */
static void
parse_ignore(TriggerData *td, bool *ignored, const char *value)
{
	char	   *list;
	char	   *tok;
	char	   *save;

	if (column_attnum(RelationGetDescr(td->tg_relation), value) != InvalidAttrNumber)
	{
		ignore_column(td, ignored, value);
		return;
	}
	list = pstrdup(value);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	   *end;

		while (*tok == ' ')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && end[-1] == ' ')
			*--end = '\0';
		if (*tok != '\0')
			ignore_column(td, ignored, tok);
	}
	pfree(list);
}

static void
bad_argument(TriggerData *td, const char *arg, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid argument \"%s\" of trigger \"%s\" on table \"%s\"",
					arg, td->tg_trigger->tgname,
					RelationGetRelationName(td->tg_relation)),
			 errdetail("%s", why),
			 errhint("The arguments after the stream name are key=value options; the keys are %s.",
					 capture_arg_keys)));
}

/*
 * Build the state of one trigger from its arguments and its relation.
 */
static void
capture_state_build(CaptureState *st, TriggerData *td)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext cxt;
	MemoryContext old;
	bool	   *ignored;
	bool		any_ignored = false;
	StringInfoData buf;
	char	   *dbname;
	char	   *nspname;

	if (tg->tgnargs < 1 || tg->tgargs[0][0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("firehose.capture() needs the stream name as its first trigger argument"),
				 errdetail("Trigger \"%s\" on table \"%s\" names no stream.",
						   tg->tgname, RelationGetRelationName(rel)),
				 errhint("Create the trigger with EXECUTE FUNCTION firehose.capture('stream_name'), or use firehose.capture_table().")));

	/* under the statement's context until complete: an ERROR frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "firehose capture",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	st->relid = RelationGetRelid(rel);
	st->stream = cstring_to_text(tg->tgargs[0]);

	ignored = palloc0(sizeof(bool) * Max(desc->natts, 1));
	for (int i = 1; i < tg->tgnargs; i++)
	{
		char	   *arg = tg->tgargs[i];
		char	   *eq = strchr(arg, '=');
		char	   *key;
		char	   *value;

		if (eq == NULL)
			bad_argument(td, arg, "It has no \"=\".");
		key = pnstrdup(arg, eq - arg);
		value = eq + 1;
		if (strcmp(key, "ignore") == 0)
			parse_ignore(td, ignored, value);
		else if (strcmp(key, "skip_unchanged") == 0)
		{
			if (!parse_bool(value, &st->skip_unchanged))
				bad_argument(td, arg, "skip_unchanged takes a boolean (true or false).");
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" in argument \"%s\" of trigger \"%s\" on table \"%s\"",
							key, arg, tg->tgname, RelationGetRelationName(rel)),
					 errhint("The options are %s; to capture only some rows use CREATE TRIGGER ... WHEN (condition).",
							 capture_arg_keys)));
	}

	for (int i = 0; i < desc->natts; i++)
		any_ignored |= ignored[i];
	if (any_ignored)
	{
		int			n = 0;

		st->kept = palloc(sizeof(AttrNumber) * desc->natts);
		for (int i = 0; i < desc->natts; i++)
			if (!ignored[i] && !TupleDescAttr(desc, i)->attisdropped)
				st->kept[n++] = i + 1;
		st->nkept = n;
		st->projdesc = CreateTemplateTupleDesc(n);
		for (int j = 0; j < n; j++)
			TupleDescCopyEntry(st->projdesc, j + 1, desc, st->kept[j]);
		/* a record type of its own, so that row_to_json can look it up */
		BlessTupleDesc(st->projdesc);
	}

	dbname = get_database_name(MyDatabaseId);
	nspname = get_namespace_name(RelationGetNamespace(rel));
	initStringInfo(&buf);
	appendStringInfoString(&buf, ",\"source\":{\"version\":\"" FH_CAPTURE_VERSION
						   "\",\"connector\":\"firehose\",\"db\":");
	escape_json(&buf, dbname ? dbname : "");
	appendStringInfoString(&buf, ",\"schema\":");
	escape_json(&buf, nspname ? nspname : "");
	appendStringInfoString(&buf, ",\"table\":");
	escape_json(&buf, RelationGetRelationName(rel));
	appendStringInfoString(&buf, ",\"txId\":");
	st->source = buf.data;
	st->source_len = buf.len;

	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, CacheMemoryContext);
	st->cxt = cxt;
	st->reldesc = desc;			/* complete: valid from now on */
}

/*
 * The state for this call: the cached one when it was built for this
 * trigger and this row type, else a new one.  A change of the table or of
 * the trigger invalidates the table's relcache entry, which drops the
 * state; the row type is compared too, as the table's descriptor is what
 * the projection and row_to_json() read.
 */
static CaptureState *
capture_state(TriggerData *td)
{
	Oid			tgoid = td->tg_trigger->tgoid;
	CaptureState *st;
	bool		found;

	if (capture_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CaptureState);
		ctl.hcxt = CacheMemoryContext;
		capture_cache = hash_create("firehose capture states", 16, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(capture_relcache_cb, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, capture_namespace_cb,
									  (Datum) 0);
	}
	st = hash_search(capture_cache, &tgoid, HASH_ENTER, &found);
	if (found && st->reldesc == RelationGetDescr(td->tg_relation))
		return st;
	/*
	 * A stale state's memory lives until the transaction ends: a call of
	 * this trigger further up the stack may still read it.
	 */
	if (found && st->cxt != NULL)
		MemoryContextSetParent(st->cxt, TopTransactionContext);
	memset(((char *) st) + sizeof(Oid), 0, sizeof(CaptureState) - sizeof(Oid));
	/* on an ERROR the entry stays empty (reldesc NULL: built again) */
	capture_state_build(st, td);
	return st;
}

/*
 * One row image as JSON text, by row_to_json() on the tuple as a composite
 * datum (of the kept columns only, when columns are ignored).
 */
static text *
row_json(CaptureState *st, Relation rel, HeapTuple tuple)
{
	Datum		row;

	if (st->kept == NULL)
		row = heap_copy_tuple_as_datum(tuple, RelationGetDescr(rel));
	else
	{
		TupleDesc	desc = RelationGetDescr(rel);
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *nulls = palloc(sizeof(bool) * desc->natts);
		Datum	   *pvalues = palloc(sizeof(Datum) * Max(st->nkept, 1));
		bool	   *pnulls = palloc(sizeof(bool) * Max(st->nkept, 1));
		HeapTuple	proj;

		heap_deform_tuple(tuple, desc, values, nulls);
		for (int j = 0; j < st->nkept; j++)
		{
			pvalues[j] = values[st->kept[j] - 1];
			pnulls[j] = nulls[st->kept[j] - 1];
		}
		proj = heap_form_tuple(st->projdesc, pvalues, pnulls);
		/* flattens TOAST pointers taken over from the table's tuple */
		row = HeapTupleGetDatum(proj);
	}
	return DatumGetTextPP(DirectFunctionCall1(row_to_json, row));
}

static void
append_row(StringInfo buf, text *json)
{
	if (json == NULL)
		appendStringInfoString(buf, "null");
	else
		appendBinaryStringInfo(buf, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
}

static bool
same_json(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

PG_FUNCTION_INFO_V1(fh_capture);
Datum
fh_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	TriggerEvent event;
	CaptureState *st;
	text	   *before = NULL;
	text	   *after = NULL;
	const char *op;
	int64		ts;
	StringInfoData buf;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("firehose.capture() must be called as a trigger"),
				 errhint("Use it in CREATE TRIGGER, or call firehose.capture_table().")));
	td = (TriggerData *) fcinfo->context;
	event = td->tg_event;

	if (!TRIGGER_FIRED_AFTER(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("firehose.capture() must be fired AFTER the change"),
				 errdetail("Trigger \"%s\" on table \"%s\" is a BEFORE or INSTEAD OF trigger.",
						   td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation)),
				 errhint("Create it as AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW, and AFTER TRUNCATE ... FOR EACH STATEMENT; firehose.capture_table() does both.")));

	if (TRIGGER_FIRED_BY_TRUNCATE(event))
	{
		/* PostgreSQL has only statement-level TRUNCATE triggers */
		if (TRIGGER_FIRED_FOR_ROW(event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("firehose.capture() must be fired FOR EACH STATEMENT for TRUNCATE")));
		op = "t";
	}
	else if (!TRIGGER_FIRED_FOR_ROW(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("firehose.capture() must be fired FOR EACH ROW for INSERT, UPDATE and DELETE"),
				 errdetail("Trigger \"%s\" on table \"%s\" is a statement-level trigger.",
						   td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation)),
				 errhint("Create it as AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW; firehose.capture_table() does that.")));
	else if (TRIGGER_FIRED_BY_INSERT(event))
		op = "c";
	else if (TRIGGER_FIRED_BY_UPDATE(event))
		op = "u";
	else
		op = "d";

	st = capture_state(td);

	switch (op[0])
	{
		case 'c':
			after = row_json(st, td->tg_relation, td->tg_trigtuple);
			break;
		case 'u':
			before = row_json(st, td->tg_relation, td->tg_trigtuple);
			after = row_json(st, td->tg_relation, td->tg_newtuple);
			if (st->skip_unchanged && same_json(before, after))
				return PointerGetDatum(NULL);
			break;
		case 'd':
			before = row_json(st, td->tg_relation, td->tg_trigtuple);
			break;
	}

	/*
	 * The envelope, in one buffer sized for it, that is the record: a text
	 * varlena whose header is set at the end.
	 */
	ts = fh_epoch_ms(GetCurrentStatementStartTimestamp());
	initStringInfo(&buf);
	enlargeStringInfo(&buf, VARHDRSZ + 160 + st->source_len +
					  (before ? VARSIZE_ANY_EXHDR(before) : 0) +
					  (after ? VARSIZE_ANY_EXHDR(after) : 0));
	buf.len = VARHDRSZ;
	appendStringInfoString(&buf, "{\"before\":");
	append_row(&buf, before);
	appendStringInfoString(&buf, ",\"after\":");
	append_row(&buf, after);
	appendStringInfo(&buf, ",\"op\":\"%s\",\"ts_ms\":" INT64_FORMAT, op, ts);
	appendBinaryStringInfo(&buf, st->source, st->source_len);
	appendStringInfo(&buf, UINT64_FORMAT ",\"ts_ms\":" INT64_FORMAT "}}",
					 U64FromFullTransactionId(GetTopFullTransactionId()), ts);
	SET_VARSIZE(buf.data, buf.len);

	fh_put_internal(st->stream, (struct varlena *) buf.data);
	pfree(buf.data);

	return PointerGetDatum(NULL);
}
