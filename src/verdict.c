/*-------------------------------------------------------------------------
 *
 * verdict.c
 *	  The verdicts sinks return about a part and, for protocols that answer
 *	  per record (OpenSearch's _bulk items, Splunk's refused events), about
 *	  single records of it.
 *
 * A sink writes its decisions into the view it was given (FhPartView) and
 * nowhere else; the worker reads them when the part is finished and alone
 * records the outcomes.  Here too is the error record of a failed record
 * (Firehose's format, firehose.md 3.8), which the worker sends to a backup
 * store and the S3 sink writes for the records it could not convert.  This
 * file calls only util.c, so the sinks and the worker both call in here
 * without a cycle.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "utils/json.h"

/* set a verdict's outcome and error (no error: code and message NULL) */
void
fh_verdict_set(FhVerdict *v, FhOutcome outcome, const char *code, char *message)
{
	v->outcome = outcome;
	v->error_code = code;
	v->error_message = message;
}

/* a processor failed a record (out), with code and message */
void
fh_processed_fail(FhProcessed *out, const char *code, char *message)
{
	out->result = FH_PROC_FAILED;
	out->data = NULL;
	out->nmore = 0;
	out->more = NULL;
	out->partition_keys = NULL;
	fh_verdict_set(&out->verdict, FH_OUTCOME_FAIL, code, message);
}

/* per-record states, made when a sink first decides a record alone */
static void
track_records(FhPartView *part)
{
	if (part->rec_state == NULL)
	{
		part->rec_state = MemoryContextAllocZero(part->cxt, part->nrecords);
		part->rec_verdict = MemoryContextAllocZero(part->cxt,
												   sizeof(FhVerdict) * part->nrecords);
	}
}

/* is record i still to be sent (not decided alone)? */
bool
fh_view_pending(const FhPartView *part, int i)
{
	return part->rec_state == NULL || part->rec_state[i] == FH_REC_PENDING;
}

/* record i is delivered, whatever the rest of the part does */
void
fh_view_deliver(FhPartView *part, int i)
{
	track_records(part);
	part->rec_state[i] = FH_REC_DELIVERED;
}

/* record i fails for good, alone, with its own error */
void
fh_view_fail(FhPartView *part, int i, const char *code, char *message)
{
	track_records(part);
	part->rec_state[i] = FH_REC_FAILED;
	fh_verdict_set(&part->rec_verdict[i], FH_OUTCOME_FAIL, code, message);
}

/* why record i failed: its own error, or part_verdict, the part's */
const FhVerdict *
fh_view_verdict(const FhPartView *part, int i, const FhVerdict *part_verdict)
{
	if (part->rec_state && part->rec_state[i] == FH_REC_FAILED)
		return &part->rec_verdict[i];
	return part_verdict;
}

/* did record i fail for good, when the part's verdict is part_verdict? */
bool
fh_view_failed(const FhPartView *part, int i, const FhVerdict *part_verdict)
{
	if (part->rec_state && part->rec_state[i] == FH_REC_DELIVERED)
		return false;
	return fh_view_verdict(part, i, part_verdict)->outcome == FH_OUTCOME_FAIL;
}

/*
 * fh_error_record
 *		The error record (firehose.md 3.8) of record r, which failed with
 *		verdict v after attempts attempts, the last ending at attempt_end:
 *		one JSON line, with the fields of the destination (sink, config) of
 *		record i of its view part (sink NULL: none, a processing failure).  Allocated in CurrentMemoryContext.
 */
bytea *
fh_error_record(const FhRecord *r, const FhVerdict *v, int attempts,
				TimestampTz attempt_end, const FhSink *sink, void *config,
				const FhPartView *part, int i)
{
	StringInfoData out;
	bytea	   *result;

	initStringInfo(&out);
	appendBinaryStringInfo(&out, "1234", VARHDRSZ);	/* room for the header */
	appendStringInfo(&out, "{\"attemptsMade\":%d,\"arrivalTimestamp\":" INT64_FORMAT ",\"errorCode\":",
					 attempts, fh_epoch_ms(r->arrival));
	escape_json(&out, v->error_code ? v->error_code : "");
	appendStringInfoString(&out, ",\"errorMessage\":");
	escape_json(&out, v->error_message ? v->error_message : "");
	appendStringInfo(&out, ",\"attemptEndingTimestamp\":" INT64_FORMAT ",\"rawData\":\"",
					 fh_epoch_ms(attempt_end));
	fh_base64_append(&out, VARDATA_ANY(r->data), VARSIZE_ANY_EXHDR(r->data));
	appendStringInfoChar(&out, '"');
	if (sink && sink->error_fields)
		sink->error_fields(config, part, i, &out);
	appendStringInfoString(&out, "}\n");
	result = (bytea *) out.data;
	SET_VARSIZE(result, out.len);
	return result;
}
