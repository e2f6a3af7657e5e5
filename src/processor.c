/*-------------------------------------------------------------------------
 *
 * processor.c
 *	  The process stage: stream option "processors", an ordered list of
 *	  transformations applied to every record of a part between reading it
 *	  and encoding it (Firehose's data transformation).
 *
 * A processor of type "function" is a SQL function
 *	  name(r firehose.record) RETURNS firehose.processed
 * whose result says what becomes of the record: "Ok" (deliver its data),
 * "Dropped" (done, nothing sent) or "ProcessingFailed" (into
 * failed_records with the original data).  An ERROR the function raises
 * fails that record alone, with its message.
 *
 * The function runs in the worker's transaction, right after the part is
 * read and before anything goes on the network, as the stream's owner
 * (never as the worker's role), restricted as autovacuum runs index
 * functions, under the worker's pinned search_path.  It is called through
 * fmgr with an FmgrInfo made once per configuration.  One subtransaction
 * holds the calls of a whole part; only when a call raises is it rolled
 * back, the record that raised marked failed, and the records before it
 * called again in a subtransaction of their own, so that a failing record
 * costs one rollback, not a subtransaction per record.
 *
 * This file calls no other file of the extension (the worker and the
 * option tables call in here).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

typedef struct FhProcessor
{
	Oid			fn;				/* InvalidOid: not found (error says why) */
	char	   *name;			/* schema.name, for messages */
	char	   *error;			/* why it cannot run, or NULL */
	FmgrInfo	flinfo;
} FhProcessor;

struct FhProcessors
{
	int			n;
	FhProcessor *p;
	TupleDesc	record_desc;	/* firehose.record */
};

/* the oid of type firehose.<name>, or InvalidOid */
static Oid
firehose_type(const char *name)
{
	Oid			nsp = get_namespace_oid(FH_SCHEMA, true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
						   CStringGetDatum(name), ObjectIdGetDatum(nsp));
}

/*
 * The function name(firehose.record) RETURNS firehose.processed; with
 * missing_ok, InvalidOid and *why when there is none such, else an ERROR.
 */
static Oid
lookup_processor_function(const char *name, bool missing_ok, char **why)
{
	Oid			rectype = firehose_type("record");
	Oid			proctype = firehose_type("processed");
	List	   *names;
	Oid			fn;

	if (!OidIsValid(rectype) || !OidIsValid(proctype))
		elog(ERROR, "types firehose.record and firehose.processed are missing");
	names = stringToQualifiedNameList(name);
	fn = LookupFuncName(names, 1, &rectype, true);
	if (!OidIsValid(fn))
	{
		if (missing_ok)
		{
			*why = psprintf("Processor function %s(firehose.record) does not exist.", name);
			return InvalidOid;
		}
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("processor function %s(firehose.record) does not exist", name),
				 errhint("Name it with its schema.  A processor is a function that takes firehose.record and returns firehose.processed: CREATE FUNCTION %s(r firehose.record) RETURNS firehose.processed ...", name)));
	}
	if (get_func_prokind(fn) != PROKIND_FUNCTION || get_func_retset(fn) ||
		get_func_rettype(fn) != proctype)
	{
		if (missing_ok)
		{
			*why = psprintf("Processor function %s(firehose.record) does not return firehose.processed.", name);
			return InvalidOid;
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("processor function %s(firehose.record) must return firehose.processed", name),
				 errdetail("It must be a plain function that returns one firehose.processed value, not a set, a procedure or an aggregate.")));
	}
	return fn;
}

static void
processors_error(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"processors\" is not valid"),
			 errdetail("%s", detail),
			 errhint("Give an array such as [{\"type\": \"function\", \"function\": \"myschema.transform\"}].")));
}

/*
 * fh_processors_normalize
 *		Check option "processors" (an array of processors) and return it
 *		normalized: each function named by its schema-qualified name.
 */
Jsonb *
fh_processors_normalize(Jsonb *value)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData out;
	int			n = 0;

	if (!JB_ROOT_IS_ARRAY(value) || JB_ROOT_IS_SCALAR(value))
		processors_error("It must be an array of processors.");
	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	it = JsonbIteratorInit(&value->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Jsonb	   *p;
		JsonbValue *type;
		JsonbValue *fn;
		JsonbIterator *kit;
		JsonbValue	kv;
		JsonbIteratorToken ktok;
		char	   *name;
		Oid			fnoid;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			processors_error(psprintf("Processor %d is not an object.", n + 1));
		p = JsonbValueToJsonb(&v);
		type = getKeyJsonValueFromContainer(&p->root, "type", 4, NULL);
		if (type == NULL || type->type != jbvString)
			processors_error(psprintf("Processor %d has no \"type\".", n + 1));
		if (!(type->val.string.len == 8 &&
			  memcmp(type->val.string.val, "function", 8) == 0))
			processors_error(psprintf("Processor %d has unknown type \"%.*s\"; known is: function.",
									  n + 1, type->val.string.len, type->val.string.val));
		kit = JsonbIteratorInit(&p->root);
		while ((ktok = JsonbIteratorNext(&kit, &kv, true)) != WJB_DONE)
			if (ktok == WJB_KEY &&
				!(kv.val.string.len == 4 && memcmp(kv.val.string.val, "type", 4) == 0) &&
				!(kv.val.string.len == 8 && memcmp(kv.val.string.val, "function", 8) == 0))
				processors_error(psprintf("Processor %d has unknown key \"%.*s\"; a function processor takes \"type\" and \"function\".",
										  n + 1, kv.val.string.len, kv.val.string.val));
		fn = getKeyJsonValueFromContainer(&p->root, "function", 8, NULL);
		if (fn == NULL || fn->type != jbvString || fn->val.string.len == 0)
			processors_error(psprintf("Processor %d has no \"function\": the name of a SQL function.", n + 1));
		name = pnstrdup(fn->val.string.val, fn->val.string.len);
		fnoid = lookup_processor_function(name, false, NULL);
		if (n > 0)
			appendStringInfoString(&out, ", ");
		appendStringInfoString(&out, "{\"type\": \"function\", \"function\": ");
		escape_json(&out, quote_qualified_identifier(get_namespace_name(get_func_namespace(fnoid)),
													 get_func_name(fnoid)));
		appendStringInfoChar(&out, '}');
		n++;
	}
	appendStringInfoChar(&out, ']');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/*
 * fh_processors_check_execute
 *		Refuse processors whose function role may not execute: the worker
 *		runs them as the stream's owner.  processors: normalized.
 */
void
fh_processors_check_execute(Jsonb *processors, Oid role)
{
	JsonbIterator *it = JsonbIteratorInit(&processors->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Jsonb	   *p;
		JsonbValue *fn;
		char	   *name;
		Oid			fnoid;

		if (tok != WJB_ELEM || v.type != jbvBinary)
			continue;
		p = JsonbValueToJsonb(&v);
		fn = getKeyJsonValueFromContainer(&p->root, "function", 8, NULL);
		if (fn == NULL || fn->type != jbvString)
			continue;
		name = pnstrdup(fn->val.string.val, fn->val.string.len);
		fnoid = lookup_processor_function(name, false, NULL);
		if (pg_proc_aclcheck(fnoid, role, ACL_EXECUTE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for processor function %s", name),
					 errdetail("The stream's owner, role \"%s\", runs it and needs EXECUTE on it.",
							   GetUserNameFromId(role, false))));
	}
}

/*
 * fh_processors_configure
 *		The processors of normalized option "processors", ready to run, in
 *		CurrentMemoryContext; NULL when there are none.  A function that is
 *		gone (dropped since the stream was altered) is not an ERROR: the
 *		records fail with Processor.FunctionNotFound.
 */
FhProcessors *
fh_processors_configure(Jsonb *processors)
{
	FhProcessors *ps;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (processors == NULL || !JB_ROOT_IS_ARRAY(processors) ||
		JB_ROOT_COUNT(processors) == 0)
		return NULL;
	ps = palloc0(sizeof(FhProcessors));
	ps->p = palloc0(sizeof(FhProcessor) * JB_ROOT_COUNT(processors));
	ps->record_desc = lookup_rowtype_tupdesc_copy(firehose_type("record"), -1);
	it = JsonbIteratorInit(&processors->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		FhProcessor *p = &ps->p[n];
		Jsonb	   *j;
		JsonbValue *fn;

		if (tok != WJB_ELEM || v.type != jbvBinary)
			continue;
		j = JsonbValueToJsonb(&v);
		fn = getKeyJsonValueFromContainer(&j->root, "function", 8, NULL);
		if (fn == NULL || fn->type != jbvString)
			continue;
		p->name = pnstrdup(fn->val.string.val, fn->val.string.len);
		p->fn = lookup_processor_function(p->name, true, &p->error);
		if (OidIsValid(p->fn))
			fmgr_info_cxt(p->fn, &p->flinfo, CurrentMemoryContext);
		n++;
	}
	ps->n = n;
	return ps;
}

static void
set_failed(FhProcessed *out, const char *code, char *message)
{
	out->result = FH_PROC_FAILED;
	out->data = NULL;
	fh_verdict_set(&out->verdict, FH_OUTCOME_FAIL, code, message);
}

/*
 * One call of p on record r, whose data is data; the outcome in *out, made
 * in result_cxt.  Runs in a context the caller resets after each call.
 */
static void
call_one(FhProcessors *ps, FhProcessor *p, const FhRecord *r, bytea *data,
		 FhProcessed *out, MemoryContext result_cxt)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Datum		result;
	HeapTupleHeader th = NULL;
	bool		isnull = true;
	char	   *res = NULL;
	bytea	   *ok_data = NULL;
	MemoryContext old;

	values[0] = Int64GetDatum(r->id);
	values[1] = PointerGetDatum(data);
	values[2] = TimestampTzGetDatum(r->arrival);
	InitFunctionCallInfoData(*fcinfo, &p->flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = HeapTupleGetDatum(heap_form_tuple(ps->record_desc, values, nulls));
	fcinfo->args[0].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	if (!fcinfo->isnull)
	{
		Datum		d;

		th = DatumGetHeapTupleHeader(result);
		d = GetAttributeByNum(th, 1, &isnull);
		if (!isnull)
			res = TextDatumGetCString(d);
		d = GetAttributeByNum(th, 2, &isnull);
		if (!isnull)
			ok_data = DatumGetByteaPP(d);
	}

	old = MemoryContextSwitchTo(result_cxt);
	if (th == NULL)
		set_failed(out, "Processor.NullResult",
				   psprintf("Processor function %s returned NULL.", p->name));
	else if (res && strcmp(res, "Ok") == 0 && ok_data == NULL)
		set_failed(out, "Processor.InvalidResult",
				   psprintf("Processor function %s returned Ok with NULL data.", p->name));
	else if (res && strcmp(res, "Ok") == 0)
	{
		int			len = VARSIZE_ANY_EXHDR(ok_data);

		out->result = FH_PROC_OK;
		out->data = palloc(len + VARHDRSZ);
		SET_VARSIZE(out->data, len + VARHDRSZ);
		memcpy(VARDATA(out->data), VARDATA_ANY(ok_data), len);
	}
	else if (res && strcmp(res, "Dropped") == 0)
	{
		out->result = FH_PROC_DROPPED;
		out->data = NULL;
	}
	else if (res && strcmp(res, "ProcessingFailed") == 0)
		set_failed(out, "Processor.ProcessingFailed",
				   psprintf("Processor function %s returned ProcessingFailed.", p->name));
	else if (res)
		set_failed(out, "Processor.InvalidResult",
				   psprintf("Processor function %s returned result \"%s\"; expected Ok, Dropped or ProcessingFailed.",
							p->name, res));
	else
		set_failed(out, "Processor.InvalidResult",
				   psprintf("Processor function %s returned a NULL result; expected Ok, Dropped or ProcessingFailed.",
							p->name));
	MemoryContextSwitchTo(old);
}

/*
 * Run p on the records i with out[i].result FH_PROC_OK (their data is
 * out[i].data), replacing out[i] by p's outcome.  See the file header for
 * the subtransactions.
 */
static void
run_function(FhProcessors *ps, FhProcessor *p, const FhRecord *records, int n,
			 FhProcessed *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner resowner = CurrentResourceOwner;
	MemoryContext call_cxt;
	bytea	  **input = palloc(sizeof(bytea *) * n);
	bool	   *todo = palloc(sizeof(bool) * n);
	volatile int start = 0;
	volatile int end = n;

	for (int i = 0; i < n; i++)
	{
		todo[i] = out[i].result == FH_PROC_OK;
		input[i] = out[i].data;
	}
	call_cxt = AllocSetContextCreate(cxt, "firehose processor call", ALLOCSET_DEFAULT_SIZES);

	/* [start, end): the records to call in the next subtransaction */
	while (start < n)
	{
		volatile int i = start;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(call_cxt);
		PG_TRY();
		{
			for (; i < end; i++)
			{
				if (!todo[i])
					continue;
				call_one(ps, p, &records[i], input[i], &out[i], cxt);
				MemoryContextReset(call_cxt);
			}
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = resowner;
			start = end;
			end = n;
		}
		PG_CATCH();
		{
			ErrorData  *ed;

			MemoryContextSwitchTo(cxt);
			ed = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = resowner;
			MemoryContextReset(call_cxt);

			/*
			 * Record i fails alone, with the function's message; what the
			 * calls before it did was rolled back with it, so they are made
			 * again (from their input, which their outcome replaced).
			 */
			set_failed(&out[i], "Processor.FunctionError",
					   psprintf("Processor function %s failed: %s", p->name, ed->message));
			todo[i] = false;
			for (int j = start; j < i; j++)
				if (todo[j])
				{
					out[j].result = FH_PROC_OK;
					out[j].data = input[j];
				}
			end = i;
			FreeErrorData(ed);
		}
		PG_END_TRY();
	}
	MemoryContextDelete(call_cxt);
}

/*
 * fh_process
 *		Run the processors on the n records, as role owner: out[i] is what
 *		becomes of record i, with its data when Ok (allocated in
 *		CurrentMemoryContext).  In a transaction, with a snapshot.
 */
void
fh_process(FhProcessors *ps, Oid owner, const FhRecord *records, int n,
		   FhProcessed *out)
{
	Oid			save_uid;
	int			save_sec;

	for (int i = 0; i < n; i++)
	{
		out[i].result = FH_PROC_OK;
		out[i].data = records[i].data;
	}
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	for (int k = 0; k < ps->n; k++)
	{
		FhProcessor *p = &ps->p[k];
		char	   *why = p->error;
		const char *code = "Processor.FunctionNotFound";

		if (why == NULL && pg_proc_aclcheck(p->fn, owner, ACL_EXECUTE) != ACLCHECK_OK)
		{
			why = psprintf("Role \"%s\", the stream's owner, may not execute processor function %s.",
						   GetUserNameFromId(owner, false), p->name);
			code = "Processor.PermissionDenied";
		}
		if (why)
		{
			for (int i = 0; i < n; i++)
				if (out[i].result == FH_PROC_OK)
					set_failed(&out[i], code, why);
			break;
		}
		run_function(ps, p, records, n, out);
	}
	SetUserIdAndSecContext(save_uid, save_sec);
}
