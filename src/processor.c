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
 * fails that record alone, with its message.  Its partition_keys (a JSON
 * object, or NULL) go with an Ok record to the destination: an S3 prefix's
 * !{partitionKeyFromLambda:name} reads them (dynamic partitioning).
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
 * Each type of processor is a FhProcessorKind (normalize, configure, run)
 * in the table processor_kinds; "function" is here, "json_to_csv" in
 * processor_csv.c, "lambda" in processor_lambda.c, "decompress" and
 * "cloudwatch_logs" in processor_unpack.c.  This file calls only those and
 * verdict.c (the worker and stream.c call in here).
 *
 * A Lambda processor has no run(): fh_process stops there and the worker
 * sends the records to the function over the network, outside any
 * transaction, then calls fh_process again for the processors after it.
 * Those run outside a transaction, so only kinds that need none (lambda,
 * decompress, cloudwatch_logs) may follow a Lambda; cloudwatch_logs, which
 * makes several records of one, comes last.
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

/* a processor of type "function", ready to run */
typedef struct FhFunctionProcessor
{
	Oid			fn;				/* InvalidOid: not found (error says why) */
	char	   *name;			/* schema.name, for messages */
	char	   *error;			/* why it cannot run, or NULL */
	FmgrInfo	flinfo;
	TupleDesc	record_desc;	/* firehose.record */
} FhFunctionProcessor;

static const FhProcessorKind fh_processor_function;

/* the types of processors, by option "type" */
static const FhProcessorKind *const processor_kinds[] = {
	&fh_processor_function,
	&fh_processor_json_to_csv,
	&fh_processor_lambda,
	&fh_processor_decompress,
	&fh_processor_cloudwatch_logs,
	NULL
};

/* may kind run after a Lambda processor (outside a transaction)? */
#define AFTER_LAMBDA_OK(kind) \
	((kind) == &fh_processor_lambda || (kind) == &fh_processor_decompress || \
	 (kind) == &fh_processor_cloudwatch_logs)

struct FhProcessors
{
	int			n;
	const FhProcessorKind **kind;
	void	  **config;			/* each kind's own */
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
			 errhint("Give an array such as [{\"type\": \"function\", \"function\": \"myschema.transform\"}] or [{\"type\": \"json_to_csv\", \"columns\": [\"id\", \"customer.name\"]}].")));
}

/* the kind of processor type, or NULL */
static const FhProcessorKind *
processor_kind(const char *type, int len)
{
	for (int k = 0; processor_kinds[k]; k++)
		if (strlen(processor_kinds[k]->type) == len &&
			memcmp(processor_kinds[k]->type, type, len) == 0)
			return processor_kinds[k];
	return NULL;
}

/* the kind of processor p (an object of a normalized "processors") */
static const FhProcessorKind *
kind_of(Jsonb *p)
{
	JsonbValue *type = getKeyJsonValueFromContainer(&p->root, "type", 4, NULL);

	if (type == NULL || type->type != jbvString)
		return NULL;
	return processor_kind(type->val.string.val, type->val.string.len);
}

/* why processor p has a key its kind does not take, or NULL */
static const char *
unknown_key(Jsonb *p, const FhProcessorKind *kind)
{
	JsonbIterator *it = JsonbIteratorInit(&p->root);
	JsonbValue	kv;
	JsonbIteratorToken tok;
	StringInfoData known;

	while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
	{
		int			k;

		if (tok != WJB_KEY)
			continue;
		for (k = 0; kind->keys[k]; k++)
			if (strlen(kind->keys[k]) == kv.val.string.len &&
				memcmp(kind->keys[k], kv.val.string.val, kv.val.string.len) == 0)
				break;
		if (kind->keys[k])
			continue;
		initStringInfo(&known);
		for (k = 0; kind->keys[k]; k++)
			appendStringInfo(&known, "%s\"%s\"", k ? ", " : "", kind->keys[k]);
		return psprintf("unknown key \"%.*s\"; it takes %s.",
						kv.val.string.len, kv.val.string.val, known.data);
	}
	return NULL;
}

/*
 * fh_processors_normalize
 *		Check option "processors" (an array of processors) and return it
 *		normalized by each processor's kind (a function named by its
 *		schema-qualified name, every option of the others given).
 */
Jsonb *
fh_processors_normalize(Jsonb *value)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData out;
	int			n = 0;
	bool		after_lambda = false;
	bool		after_unpack = false;

	if (!JB_ROOT_IS_ARRAY(value) || JB_ROOT_IS_SCALAR(value))
		processors_error("It must be an array of processors.");
	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	it = JsonbIteratorInit(&value->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Jsonb	   *p;
		JsonbValue *type;
		const FhProcessorKind *kind;
		const char *why;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			processors_error(psprintf("Processor %d is not an object.", n + 1));
		p = JsonbValueToJsonb(&v);
		type = getKeyJsonValueFromContainer(&p->root, "type", 4, NULL);
		if (type == NULL || type->type != jbvString)
			processors_error(psprintf("Processor %d has no \"type\".", n + 1));
		kind = processor_kind(type->val.string.val, type->val.string.len);
		if (kind == NULL)
		{
			StringInfoData known;

			initStringInfo(&known);
			for (int k = 0; processor_kinds[k]; k++)
				appendStringInfo(&known, "%s%s", k ? ", " : "", processor_kinds[k]->type);
			processors_error(psprintf("Processor %d has unknown type \"%.*s\"; known are: %s.",
									  n + 1, type->val.string.len, type->val.string.val,
									  known.data));
		}
		if (after_unpack)
			processors_error(psprintf("Processor %d follows a cloudwatch_logs processor, which must be the last.",
									  n + 1));
		if (after_lambda && !AFTER_LAMBDA_OK(kind))
			processors_error(psprintf("Processor %d (%s) follows a lambda processor; only lambda, decompress and cloudwatch_logs processors may (%s processors come first).",
									  n + 1, kind->type, kind->type));
		after_lambda |= kind == &fh_processor_lambda;
		after_unpack |= kind == &fh_processor_cloudwatch_logs;
		if (n > 0)
			appendStringInfoString(&out, ", ");
		why = unknown_key(p, kind);
		if (why == NULL)
			why = kind->normalize(p, &out);
		if (why)
			processors_error(psprintf("Processor %d (%s): %s", n + 1, kind->type, why));
		n++;
	}
	appendStringInfoChar(&out, ']');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/* normalize a processor of type "function"; see FhProcessorKind */
static const char *
function_normalize(Jsonb *p, StringInfo out)
{
	JsonbValue *fn;
	Oid			fnoid;

	fn = getKeyJsonValueFromContainer(&p->root, "function", 8, NULL);
	if (fn == NULL || fn->type != jbvString || fn->val.string.len == 0)
		return "no \"function\": the name of a SQL function.";
	fnoid = lookup_processor_function(pnstrdup(fn->val.string.val, fn->val.string.len),
									  false, NULL);
	appendStringInfoString(out, "{\"type\": \"function\", \"function\": ");
	escape_json(out, quote_qualified_identifier(get_namespace_name(get_func_namespace(fnoid)),
												get_func_name(fnoid)));
	appendStringInfoChar(out, '}');
	return NULL;
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
		if (kind_of(p) != &fh_processor_function || fn == NULL || fn->type != jbvString)
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
 *		CurrentMemoryContext; NULL when there are none.
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
	ps->kind = palloc0(sizeof(FhProcessorKind *) * JB_ROOT_COUNT(processors));
	ps->config = palloc0(sizeof(void *) * JB_ROOT_COUNT(processors));
	it = JsonbIteratorInit(&processors->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Jsonb	   *j;

		if (tok != WJB_ELEM || v.type != jbvBinary)
			continue;
		j = JsonbValueToJsonb(&v);
		ps->kind[n] = kind_of(j);
		if (ps->kind[n] == NULL)
			continue;
		ps->config[n] = ps->kind[n]->configure(j);
		n++;
	}
	ps->n = n;
	return ps;
}

/*
 * Configure a processor of type "function".  A function that is gone
 * (dropped since the stream was altered) is not an ERROR: the records fail
 * with Processor.FunctionNotFound.
 */
static void *
function_configure(Jsonb *j)
{
	FhFunctionProcessor *p = palloc0(sizeof(FhFunctionProcessor));
	JsonbValue *fn = getKeyJsonValueFromContainer(&j->root, "function", 8, NULL);

	p->record_desc = lookup_rowtype_tupdesc_copy(firehose_type("record"), -1);
	p->name = pnstrdup(fn->val.string.val, fn->val.string.len);
	p->fn = lookup_processor_function(p->name, true, &p->error);
	if (OidIsValid(p->fn))
		fmgr_info_cxt(p->fn, &p->flinfo, CurrentMemoryContext);
	return p;
}

/*
 * One call of p on record r, whose data is data; the outcome in *out, made
 * in result_cxt.  Runs in a context the caller resets after each call.
 */
static void
call_one(FhFunctionProcessor *p, const FhRecord *r, bytea *data,
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
	Jsonb	   *keys = NULL;
	MemoryContext old;

	values[0] = Int64GetDatum(r->id);
	values[1] = PointerGetDatum(data);
	values[2] = TimestampTzGetDatum(r->arrival);
	InitFunctionCallInfoData(*fcinfo, &p->flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = HeapTupleGetDatum(heap_form_tuple(p->record_desc, values, nulls));
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
		d = GetAttributeByNum(th, 3, &isnull);
		if (!isnull)
			keys = DatumGetJsonbP(d);
	}

	old = MemoryContextSwitchTo(result_cxt);
	if (th == NULL)
		fh_processed_fail(out, "Processor.NullResult",
				   psprintf("Processor function %s returned NULL.", p->name));
	else if (res && strcmp(res, "Ok") == 0 && ok_data == NULL)
		fh_processed_fail(out, "Processor.InvalidResult",
				   psprintf("Processor function %s returned Ok with NULL data.", p->name));
	else if (res && strcmp(res, "Ok") == 0)
	{
		int			len = VARSIZE_ANY_EXHDR(ok_data);

		out->result = FH_PROC_OK;
		out->data = palloc(len + VARHDRSZ);
		SET_VARSIZE(out->data, len + VARHDRSZ);
		memcpy(VARDATA(out->data), VARDATA_ANY(ok_data), len);
		/* a later processor's keys replace an earlier one's */
		if (keys)
			out->partition_keys = (Jsonb *) PG_DETOAST_DATUM_COPY(JsonbPGetDatum(keys));
	}
	else if (res && strcmp(res, "Dropped") == 0)
	{
		out->result = FH_PROC_DROPPED;
		out->data = NULL;
	}
	else if (res && strcmp(res, "ProcessingFailed") == 0)
		fh_processed_fail(out, "Processor.ProcessingFailed",
				   psprintf("Processor function %s returned ProcessingFailed.", p->name));
	else if (res)
		fh_processed_fail(out, "Processor.InvalidResult",
				   psprintf("Processor function %s returned result \"%s\"; expected Ok, Dropped or ProcessingFailed.",
							p->name, res));
	else
		fh_processed_fail(out, "Processor.InvalidResult",
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
run_function(FhFunctionProcessor *p, const FhRecord *records, int n,
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
				call_one(p, &records[i], input[i], &out[i], cxt);
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
			fh_processed_fail(&out[i], "Processor.FunctionError",
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
 * Run a processor of type "function" (config) on the records whose result
 * is still Ok, as role owner (the current user).
 */
static void
function_run(void *config, Oid owner, const FhRecord *records, int n, FhProcessed *out)
{
	FhFunctionProcessor *p = config;
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
				fh_processed_fail(&out[i], code, why);
		return;
	}
	run_function(p, records, n, out);
}

static const char *const function_keys[] = {"type", "function", NULL};

static const FhProcessorKind fh_processor_function = {
	.type = "function",
	.keys = function_keys,
	.normalize = function_normalize,
	.configure = function_configure,
	.run = function_run,
};

/* the Lambda processor k of ps (the worker runs it) */
FhLambda *
fh_processors_lambda_at(FhProcessors *ps, int k)
{
	Assert(k >= 0 && k < ps->n && ps->kind[k] == &fh_processor_lambda);
	return ps->config[k];
}

/*
 * fh_processors_tail
 *		A copy of processors k, k + 1, ... of ps in CurrentMemoryContext,
 *		for a part that waits at Lambda processor k while the stream's
 *		configuration may be replaced (only kinds whose configuration is a
 *		Lambda's or none follow a Lambda).
 */
FhProcessors *
fh_processors_tail(FhProcessors *ps, int k)
{
	FhProcessors *t = palloc0(sizeof(FhProcessors));

	t->n = ps->n - k;
	t->kind = palloc0(sizeof(FhProcessorKind *) * Max(t->n, 1));
	t->config = palloc0(sizeof(void *) * Max(t->n, 1));
	for (int i = 0; i < t->n; i++)
	{
		Assert(AFTER_LAMBDA_OK(ps->kind[k + i]));
		t->kind[i] = ps->kind[k + i];
		if (t->kind[i] == &fh_processor_lambda)
			t->config[i] = fh_lambda_copy(ps->config[k + i]);
	}
	return t;
}

/*
 * fh_process
 *		Run the processors from the one numbered from (0: the first) on the
 *		n records, up to a Lambda processor, which the worker runs over the
 *		network: its number is returned, and the worker calls again from
 *		the next one when the answers are in; -1 when all ran.  out[i] is
 *		what becomes of record i, with its data when Ok (allocated in
 *		CurrentMemoryContext).  Processors run as role owner; the first call
 *		is in a transaction with a snapshot, the later ones (only kinds that
 *		need neither) outside of one.
 */
int
fh_process(FhProcessors *ps, int from, Oid owner, const FhRecord *records, int n,
		   FhProcessed *out)
{
	Oid			save_uid;
	int			save_sec;
	StringInfoData header;
	int			stop = -1;

	if (from == 0)
		for (int i = 0; i < n; i++)
		{
			memset(&out[i], 0, sizeof(FhProcessed));
			out[i].result = FH_PROC_OK;
			out[i].data = records[i].data;
		}
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	for (int k = from; k < ps->n && stop < 0; k++)
	{
		if (ps->kind[k]->run == NULL)
			stop = k;			/* a Lambda */
		else
			ps->kind[k]->run(ps->config[k], owner, records, n, out);
	}
	SetUserIdAndSecContext(save_uid, save_sec);
	if (stop >= 0)
		return stop;

	/*
	 * A header goes before the first record that is delivered, so that each
	 * object or request starts with it; added after every processor ran, so
	 * that no later one drops it.  (A part split into objects by prefix puts
	 * it before the first record of each: worker.c, make_child.)
	 */
	fh_processors_header(ps, &header);
	for (int i = 0; i < n && header.len > 0; i++)
		if (out[i].result == FH_PROC_OK)
		{
			out[i].data = fh_with_header(&header, out[i].data);
			break;
		}
	pfree(header.data);
	return -1;
}

/*
 * fh_processors_header
 *		The header line ps puts before a request's or object's records
 *		(initialized into header; empty when none).  The last processor
 *		that has one wins.
 */
void
fh_processors_header(FhProcessors *ps, StringInfo header)
{
	initStringInfo(header);
	for (int k = ps->n - 1; k >= 0 && header->len == 0; k--)
		if (ps->kind[k]->header)
			ps->kind[k]->header(ps->config[k], header);
}

/* does data start with header?  (data is a record, possibly short-headered) */
bool
fh_has_header(const StringInfo header, const bytea *data)
{
	return header->len > 0 && VARSIZE_ANY_EXHDR(data) >= (Size) header->len &&
		memcmp(VARDATA_ANY(data), header->data, header->len) == 0;
}

/* a copy of record data with header before it, in CurrentMemoryContext */
bytea *
fh_with_header(const StringInfo header, const bytea *data)
{
	int			len = VARSIZE_ANY_EXHDR(data);
	bytea	   *d = palloc(VARHDRSZ + header->len + len);

	SET_VARSIZE(d, VARHDRSZ + header->len + len);
	memcpy(VARDATA(d), header->data, header->len);
	memcpy(VARDATA(d) + header->len, VARDATA_ANY(data), len);
	return d;
}
