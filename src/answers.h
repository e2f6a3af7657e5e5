/*-------------------------------------------------------------------------
 *
 * answers.h
 *	  Reading what the destinations answer (answers.c): the Firehose HTTP
 *	  endpoint's JSON answer, Splunk HEC's answers, OpenSearch's _bulk
 *	  answer and S3's XML bodies.  The sinks keep the verdicts (what is
 *	  retried, what fails); these functions only say what a body holds.
 *
 * Plain C types only, so that answers.c builds both in the server and
 * without it (the unit test test/unit/answers_test.c and the fuzz targets
 * test/fuzz/{http,hec,bulk,s3,lambda}_answer_fuzz.c and cwl_record_fuzz.c link it with PostgreSQL's
 * frontend libpgcommon, whose JSON parser is the server's).  Every function takes the body as
 * bytes and a length (not NUL-terminated), never reads past it, and copies
 * at most a bounded number of bytes of it: texts are cut at a UTF-8
 * character boundary to the size of their buffer.
 *
 * JSON is read with PostgreSQL's parser (common/jsonapi.h), never built
 * into jsonb; a body nested deeper than FH_ANSWER_MAX_DEPTH is not JSON to
 * these functions (the parser recurses once per level).  XML is read with
 * libxml2.  Duplicate JSON keys: the last one counts, as in jsonb.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FH_ANSWERS_H
#define FH_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FH_ANSWER_MAX_DEPTH		256
#define FH_ANSWER_TEXT_MAX		1024	/* bytes kept of a text */
#define FH_ANSWER_ID_MAX		256 /* of a requestId */

/*
 * The Firehose HTTP endpoint's answer:
 *	{"requestId": "<the request's>", "timestamp": <ms>, "errorMessage": ".."}
 */
typedef struct FhHttpAnswer
{
	bool		json;			/* the body is one JSON value */
	bool		object;			/* ... and an object */
	bool		has_request_id; /* "requestId" is a string ... */
	size_t		request_id_len; /* ... of this many bytes (may be more than
								 * request_id holds) */
	char		request_id[FH_ANSWER_ID_MAX + 1];
	bool		has_timestamp;	/* "timestamp" is a number */
	bool		has_error_message;	/* "errorMessage" is a string */
	char		error_message[FH_ANSWER_TEXT_MAX + 1];
} FhHttpAnswer;

extern void fh_http_answer(const char *body, size_t len, FhHttpAnswer *out);

/* is it the answer to the request with this id (a NUL-terminated id)? */
extern bool fh_http_answer_matches(const FhHttpAnswer *a, const char *request_id);

/*
 * A Splunk HEC answer: {"text": "Success", "code": 0, "ackId": 7}, and of
 * an acknowledgement poll {"acks": {"7": true}}.
 */
typedef struct FhHecAnswer
{
	bool		object;			/* the body is a JSON object */
	int			code;			/* "code"; -1: none, or not an integer that
								 * fits an int */
	bool		has_text;		/* "text" is a string */
	char		text[FH_ANSWER_TEXT_MAX + 1];
	bool		has_ack_id;		/* "ackId" is an integer of 64 bits */
	int64_t		ack_id;
	bool		acked;			/* "acks" holds "<want_ack>": true */
} FhHecAnswer;

extern void fh_hec_answer(const char *body, size_t len, int64_t want_ack,
						  FhHecAnswer *out);

/*
 * An OpenSearch _bulk answer:
 *	{"took": 3, "errors": true, "items": [
 *		{"index": {"_id": "..", "status": 201}},
 *		{"index": {"status": 429, "error": {"type": "..", "reason": ".."}}}]}
 * For each element of the top-level "items" array (whatever its action
 * key) its "status" and "error" (an object's "type" and "reason", or a
 * string as old Elasticsearch answers, taken as the reason).
 */
typedef struct FhBulkItem
{
	long		status;			/* -1: none, or not an integer */
	char	   *type;			/* NULL: none; else at most
								 * FH_ANSWER_TEXT_MAX bytes */
	char	   *reason;
} FhBulkItem;

typedef struct FhBulkAnswer
{
	bool		json;			/* the body is a JSON object */
	int			errors;			/* "errors": -1 none, 0 false, 1 anything
								 * else */
	bool		items_seen;		/* a top-level "items" array */
	int			items;			/* its elements (all of them) */
	int			max_items;
	FhBulkItem *item;			/* the first max_items of them */
} FhBulkAnswer;

/*
 * Read a bulk answer, keeping up to max_items items.  Allocates (palloc:
 * the server's memory context, or malloc in frontend code); release with
 * fh_bulk_answer_free.  Returns out->json.
 */
extern bool fh_bulk_answer(const char *body, size_t len, int max_items,
						   FhBulkAnswer *out);
extern void fh_bulk_answer_free(FhBulkAnswer *a);

/*
 * A Lambda transformation's answer (firehose.md 4):
 *	{"records": [{"recordId": "..", "result": "Ok", "data": "<base64>",
 *				  "metadata": {"partitionKeys": {"k": "v"}}}, ...]}
 * Each element of the top-level "records" array as it came, valid or not:
 * the caller judges them (missing, duplicated and unknown ids, results).
 */
#define FH_LAMBDA_MAX_KEYS		50	/* partition keys of a record (Firehose's) */

typedef struct FhLambdaItem
{
	bool		object;			/* the element is an object */
	char	   *record_id;		/* "recordId" if a string (at most
								 * FH_ANSWER_ID_MAX bytes), else NULL */
	size_t		record_id_len;	/* its whole length */
	char	   *result;			/* "result" if a string (bounded), else NULL */
	char	   *data;			/* "data" if a string, whole (base64 as
								 * sent), else NULL */
	size_t		data_len;
	/* metadata.partitionKeys: names and values (bounded texts) */
	int			nkeys;
	char	   *keys[FH_LAMBDA_MAX_KEYS];
	char	   *values[FH_LAMBDA_MAX_KEYS];
	/* "metadata" or its "partitionKeys" is not an object, a key's value is
	 * not a string, or there are more than FH_LAMBDA_MAX_KEYS keys */
	bool		bad_metadata;
} FhLambdaItem;

typedef struct FhLambdaAnswer
{
	bool		json;			/* the body is a JSON object */
	bool		records_seen;	/* with a top-level "records" array */
	int			items;			/* its elements (all of them) */
	int			max_items;
	FhLambdaItem *item;			/* the first max_items of them */
} FhLambdaAnswer;

/*
 * Read a Lambda answer, keeping up to max_items elements.  Allocates
 * (palloc); release with fh_lambda_answer_free.  Returns out->json.
 */
extern bool fh_lambda_answer(const char *body, size_t len, int max_items,
							 FhLambdaAnswer *out);
extern void fh_lambda_answer_free(FhLambdaAnswer *a);

/*
 * A CloudWatch Logs subscription record (decompressed):
 *	{"messageType": "DATA_MESSAGE", "owner": "..", "logGroup": "..",
 *	 "logStream": "..", "subscriptionFilters": [".."],
 *	 "logEvents": [{"id": "..", "timestamp": 1, "message": ".."}, ...]}
 * or a "CONTROL_MESSAGE" CloudWatch Logs sends to check the destination.
 */
typedef struct FhCwlRecord
{
	bool		json;			/* the body is a JSON object */
	bool		control;		/* "messageType" is "CONTROL_MESSAGE" */
	bool		data_message;	/* "messageType" is "DATA_MESSAGE" */
	bool		events_seen;	/* a top-level "logEvents" array */
	bool		bad_event;		/* an event not an object with a string
								 * "message" */
	int			nmessages;		/* the events' messages, whole */
	char	  **messages;
	size_t	   *lens;
} FhCwlRecord;

/* read a CloudWatch Logs record (palloc); returns out->json */
extern bool fh_cwl_record(const char *body, size_t len, FhCwlRecord *out);

/*
 * An S3 XML body: an error (<Error><Code>..</Code><Message>..</Message>
 * ..</Error>, also in the 200 of CompleteMultipartUpload), or the answer
 * of CreateMultipartUpload (<InitiateMultipartUploadResult>..<UploadId>
 * ..</UploadId>..).  Each field is the text of the first element of that
 * name in document order, wherever it is.
 */
#define FH_S3_CODE_MAX			256
#define FH_S3_UPLOAD_ID_MAX		1024

typedef struct FhS3Answer
{
	bool		xml;			/* the body is well-formed XML */
	bool		has_code;
	char		code[FH_S3_CODE_MAX + 1];
	bool		has_message;
	char		message[FH_ANSWER_TEXT_MAX + 1];
	/* an UploadId is used as sent: "" when it does not fit whole */
	bool		has_upload_id;
	char		upload_id[FH_S3_UPLOAD_ID_MAX + 1];
} FhS3Answer;

extern void fh_s3_answer(const char *body, size_t len, FhS3Answer *out);

#endif							/* FH_ANSWERS_H */
