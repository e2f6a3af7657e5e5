/*-------------------------------------------------------------------------
 *
 * processor_unpack.c
 *	  The processors that unpack records, as Firehose's Decompression and
 *	  CloudWatchLogProcessing do (firehose.md 1.8):
 *
 *	- {"type": "decompress", "format": "gzip"}: a record is replaced by its
 *	  decompressed bytes; one that does not decompress fails unchanged
 *	  with Decompression.Failed (Firehose's decompression-failed).
 *	- {"type": "cloudwatch_logs"}: a CloudWatch Logs subscription record
 *	  (gzip-compressed as CloudWatch Logs sends it, or decompressed by an
 *	  earlier processor) becomes one record per log event, its message
 *	  (Firehose's message extraction); CONTROL_MESSAGE records are dropped,
 *	  as Firehose drops them.
 *
 * Neither needs a transaction nor raises an ERROR for a bad record: they
 * may run in the worker outside of one, after a Lambda processor's answer.
 * JSON is read with PostgreSQL's parser (answers.c), gzip with zlib.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "answers.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

/* the most a record may grow to when decompressed */
#define MAX_DECOMPRESSED	(64 * 1024 * 1024)

#define DECOMPRESSION_FAILED	FH_DECOMPRESSION_FAILED
#define CWL_INVALID				"CloudWatchLogs.InvalidRecord"

/* normalize a decompress processor; see FhProcessorKind */
static const char *
decompress_normalize(Jsonb *p, StringInfo out)
{
	JsonbValue *format = fh_jsonb_get(p, "format");

	if (format && !(format->type == jbvString && format->val.string.len == 4 &&
					memcmp(format->val.string.val, "gzip", 4) == 0))
		return "\"format\" must be \"gzip\", the one Firehose decompresses.";
	appendStringInfoString(out, "{\"type\": \"decompress\", \"format\": \"gzip\"}");
	return NULL;
}

static const char *
cloudwatch_logs_normalize(Jsonb *p, StringInfo out)
{
	appendStringInfoString(out, "{\"type\": \"cloudwatch_logs\"}");
	return NULL;
}

static void *
no_configure(Jsonb *p)
{
	return NULL;
}

static void
unpack_failed(FhProcessed *out, const char *code, const char *why)
{
	fh_processed_fail(out, code, pstrdup(why));
}

static bytea *
to_bytea(const char *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

/* out (Ok, its data in) becomes the gzip-decompressed data, or fails */
static void
decompress_one(const bytea *in, FhProcessed *out)
{
	StringInfoData buf;
	const char *why;

	initStringInfo(&buf);
	why = fh_gunzip(VARDATA_ANY(in), VARSIZE_ANY_EXHDR(in), MAX_DECOMPRESSED, &buf);
	if (why)
		unpack_failed(out, DECOMPRESSION_FAILED, why);
	else
		out->data = to_bytea(buf.data, buf.len);
	pfree(buf.data);
}

/*
 * out (Ok, its data in) becomes the messages of the log events of a
 *		CloudWatch Logs record, each a record (data, then more); a control
 *		message or one without events is dropped; anything else fails.
 */
static void
cloudwatch_logs_one(const bytea *in, FhProcessed *out)
{
	const char *data = VARDATA_ANY(in);
	size_t		len = VARSIZE_ANY_EXHDR(in);
	StringInfoData buf;
	FhCwlRecord r;

	buf.data = NULL;
	/* as CloudWatch Logs sends it: gzip (0x1f 0x8b) */
	if (len >= 2 && (unsigned char) data[0] == 0x1f && (unsigned char) data[1] == 0x8b)
	{
		const char *why;

		initStringInfo(&buf);
		why = fh_gunzip(data, len, MAX_DECOMPRESSED, &buf);
		if (why)
		{
			unpack_failed(out, DECOMPRESSION_FAILED, why);
			pfree(buf.data);
			return;
		}
		data = buf.data;
		len = buf.len;
	}
	if (!fh_cwl_record(data, len, &r))
		unpack_failed(out, CWL_INVALID, "The record is not a CloudWatch Logs record: not a JSON object.");
	else if (r.control)
	{
		/* CloudWatch Logs checking that the destination is reachable */
		out->result = FH_PROC_DROPPED;
		out->data = NULL;
	}
	else if (!r.data_message || !r.events_seen || r.bad_event)
		unpack_failed(out, CWL_INVALID,
					  "The record is not a CloudWatch Logs record: it needs \"messageType\": \"DATA_MESSAGE\" and \"logEvents\", an array of objects with a string \"message\".");
	else if (r.nmessages == 0)
	{
		out->result = FH_PROC_DROPPED;
		out->data = NULL;
	}
	else
	{
		out->data = to_bytea(r.messages[0], r.lens[0]);
		out->nmore = r.nmessages - 1;
		out->more = out->nmore ? palloc(sizeof(bytea *) * out->nmore) : NULL;
		for (int i = 1; i < r.nmessages; i++)
			out->more[i - 1] = to_bytea(r.messages[i], r.lens[i]);
	}
	for (int i = 0; i < r.nmessages; i++)
		pfree(r.messages[i]);
	if (r.messages)
	{
		pfree(r.messages);
		pfree(r.lens);
	}
	if (buf.data)
		pfree(buf.data);
}

/* run a decompress processor on the records still Ok; see FhProcessorKind */
static void
decompress_run(void *config, Oid owner, const FhRecord *records, int n, FhProcessed *out)
{
	for (int i = 0; i < n; i++)
		if (out[i].result == FH_PROC_OK)
			decompress_one(out[i].data, &out[i]);
}

static void
cloudwatch_logs_run(void *config, Oid owner, const FhRecord *records, int n,
					FhProcessed *out)
{
	for (int i = 0; i < n; i++)
		if (out[i].result == FH_PROC_OK)
			cloudwatch_logs_one(out[i].data, &out[i]);
}

static const char *const decompress_keys[] = {"type", "format", NULL};
static const char *const cloudwatch_logs_keys[] = {"type", NULL};

const FhProcessorKind fh_processor_decompress = {
	.type = "decompress",
	.keys = decompress_keys,
	.normalize = decompress_normalize,
	.configure = no_configure,
	.run = decompress_run,
};

const FhProcessorKind fh_processor_cloudwatch_logs = {
	.type = "cloudwatch_logs",
	.keys = cloudwatch_logs_keys,
	.normalize = cloudwatch_logs_normalize,
	.configure = no_configure,
	.run = cloudwatch_logs_run,
};
