/*-------------------------------------------------------------------------
 *
 * answers_test.c
 *	  Unit test of src/answers.c, what the destinations answer: the
 *	  Firehose HTTP endpoint's JSON, Splunk HEC's answers and ack polls,
 *	  OpenSearch's _bulk answer, S3's XML errors and UploadId.  The bodies
 *	  are the documented ones (../shared/reference/firehose.md, the
 *	  services' API references) and the malformed ones a receiver may send:
 *	  not JSON, the wrong type, duplicate keys, deep nesting, long texts,
 *	  bodies without a NUL at the end, XML entities.
 *
 * Built without the server: answers.c with libpgcommon's frontend JSON
 * parser (test/unit/run), parsing once as in the server
 * (FH_ANSWERS_PARSE_ONCE), so that the actions see the start of a body
 * that then turns out broken.
 *
 * Output: a FAIL line for each failing check, then "answers: N of M checks
 * pass"; exit status 1 when any check failed.
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_NAME "answers"
#include "check.h"

/*
 * A malloc'd copy of s without its NUL, so that a read past the length is
 * a read past the buffer (under a sanitizer) or of a byte that is not
 * there in the answer.
 */
static char *
body(const char *s, size_t *len)
{
	char	   *b;

	*len = strlen(s);
	b = malloc(*len ? *len : 1);
	memcpy(b, s, *len);
	return b;
}

static void
check_bool(int got, int expected, const char *what)
{
	check(got == expected, what, expected ? "true" : "false", got ? "true" : "false");
}

static void
check_long(long long got, long long expected, const char *what)
{
	char		e[32],
				g[32];

	snprintf(e, sizeof(e), "%lld", expected);
	snprintf(g, sizeof(g), "%lld", got);
	check(got == expected, what, e, g);
}

static void
check_str(const char *got, const char *expected, const char *what)
{
	check((got == NULL && expected == NULL) ||
		  (got && expected && strcmp(got, expected) == 0), what, expected, got);
}

/* a string of n copies of c followed by tail */
static char *
repeat(char c, size_t n, const char *tail)
{
	char	   *s = malloc(n + strlen(tail) + 1);

	memset(s, c, n);
	strcpy(s + n, tail);
	return s;
}

/* ---------- the Firehose HTTP endpoint ---------- */

static void
http(const char *json, FhHttpAnswer *a)
{
	size_t		len;
	char	   *b = body(json, &len);

	fh_http_answer(b, len, a);
	free(b);
}

static void
test_http(void)
{
	FhHttpAnswer a;
	char	   *s;
	char	   *t;

	/* the documented answer */
	http("{\"requestId\": \"ed4acda5-034f-9f42-bba1-f29aea6d7d8f\", \"timestamp\": 1578090901599}", &a);
	check_bool(a.json && a.object, 1, "http: documented answer is a JSON object");
	check_bool(fh_http_answer_matches(&a, "ed4acda5-034f-9f42-bba1-f29aea6d7d8f"), 1,
			   "http: documented answer matches its requestId");
	check_bool(fh_http_answer_matches(&a, "ed4acda5-034f-9f42-bba1-f29aea6d7d8"), 0,
			   "http: a prefix of the requestId does not match");
	check_bool(fh_http_answer_matches(&a, "ed4acda5-034f-9f42-bba1-f29aea6d7d8f0"), 0,
			   "http: a longer requestId does not match");
	check_bool(a.has_timestamp, 1, "http: numeric timestamp");
	check_bool(a.has_error_message, 0, "http: no errorMessage");

	/* the error answer the reference quotes */
	http("{\"requestId\": \"109777ac\", \"timestamp\": 1594266081268, \"errorMessage\": \"Unauthorized\"}", &a);
	check_bool(a.has_error_message, 1, "http: errorMessage present");
	check_str(a.error_message, "Unauthorized", "http: errorMessage text");

	http("{\"requestId\":\"x\",\"timestamp\":\"1578090901599\"}", &a);
	check_bool(a.has_timestamp, 0, "http: a timestamp as a string is no timestamp");
	http("{\"requestId\":\"x\",\"timestamp\":null}", &a);
	check_bool(a.has_timestamp, 0, "http: a null timestamp is no timestamp");
	http("{\"timestamp\":1}", &a);
	check_bool(a.has_request_id, 0, "http: requestId missing");
	check_bool(fh_http_answer_matches(&a, ""), 0, "http: a missing requestId matches nothing");
	http("{\"requestId\":7,\"timestamp\":1}", &a);
	check_bool(a.has_request_id, 0, "http: a numeric requestId is none");
	http("{\"x\":{\"requestId\":\"id\",\"timestamp\":1}}", &a);
	check_bool(a.has_request_id || a.has_timestamp, 0, "http: nested members do not count");
	http("[{\"requestId\":\"id\",\"timestamp\":1}]", &a);
	check_bool(a.json, 1, "http: an array is JSON");
	check_bool(a.object || fh_http_answer_matches(&a, "id"), 0, "http: an array is no answer");
	http("{\"requestId\":\"a\",\"timestamp\":1,\"requestId\":\"b\"}", &a);
	check_bool(fh_http_answer_matches(&a, "b") && !fh_http_answer_matches(&a, "a"), 1,
			   "http: the last of duplicate keys counts");
	http("{\"requestId\":\"a\",\"timestamp\":1,\"requestId\":7}", &a);
	check_bool(a.has_request_id || a.request_id[0] != '\0', 0,
			   "http: a duplicate requestId that is no string takes the first away");
	http("{\"errorMessage\":\"e\",\"errorMessage\":null}", &a);
	check_bool(a.has_error_message || a.error_message[0] != '\0', 0,
			   "http: a duplicate null errorMessage takes the first away");
	http("{\"requestId\":\"a\",\"timestamp\":1,\"timestamp\":\"x\"}", &a);
	check_bool(a.has_timestamp, 0, "http: a duplicate timestamp replaces the first");
	http("{\"requestId\":\"\\u0061bc\",\"timestamp\":1}", &a);
	check_bool(fh_http_answer_matches(&a, "abc"), 1, "http: escapes are decoded");

	/* not JSON */
	http("", &a);
	check_bool(a.json, 0, "http: empty body");
	http("OK", &a);
	check_bool(a.json, 0, "http: plain text");
	http("{\"requestId\":\"x\",\"timestamp\":1", &a);
	check_bool(a.json, 0, "http: unterminated object");
	http("{\"requestId\":\"x\",\"timestamp\":1} {}", &a);
	check_bool(a.json, 0, "http: two values");
	http("{\"requestId\":\"x\",\"timestamp\":1,\"errorMessage\":\"e\",", &a);
	check_bool(a.has_request_id || a.has_timestamp || a.has_error_message ||
			   a.request_id[0] || a.error_message[0], 0,
			   "http: nothing of a body broken at the end counts");
	http("{\"requestId\" \"x\"}", &a);
	check_bool(a.json, 0, "http: a missing colon");
	http("{\"requestId\":\"a\\u0000b\",\"timestamp\":1}", &a);
	check_bool(a.json, 0, "http: \\u0000 is refused");
	http("{\"requestId\":\"\\ud800\",\"timestamp\":1}", &a);
	check_bool(a.json, 0, "http: a lone surrogate is refused");

	/* the length is the end, not a NUL */
	fh_http_answer("{\"requestId\":\"x\",\"timestamp\":1}garbage",
				   strlen("{\"requestId\":\"x\",\"timestamp\":1}"), &a);
	check_bool(a.json && fh_http_answer_matches(&a, "x"), 1, "http: the body ends at its length");

	/* nesting: up to FH_ANSWER_MAX_DEPTH levels, then not JSON */
	s = repeat('[', FH_ANSWER_MAX_DEPTH, "");
	t = repeat(']', FH_ANSWER_MAX_DEPTH, "");
	{
		char	   *both = malloc(2 * FH_ANSWER_MAX_DEPTH + 1);

		sprintf(both, "%s%s", s, t);
		http(both, &a);
		check_bool(a.json, 1, "http: 256 levels of nesting are JSON");
		free(both);
	}
	free(s);
	free(t);
	s = repeat('[', FH_ANSWER_MAX_DEPTH + 1, "");
	t = repeat(']', FH_ANSWER_MAX_DEPTH + 1, "");
	{
		char	   *both = malloc(2 * FH_ANSWER_MAX_DEPTH + 3);

		sprintf(both, "%s%s", s, t);
		http(both, &a);
		check_bool(a.json, 0, "http: 257 levels of nesting are refused");
		free(both);
	}
	free(s);
	free(t);
	/* a megabyte of "[" crashes PostgreSQL 15's frontend parser unguarded */
	s = repeat('[', 1 << 20, "");
	http(s, &a);
	check_bool(a.json, 0, "http: a megabyte of [ is refused without a crash");
	free(s);

	/* long texts: cut at a character boundary, the length kept */
	s = repeat('a', 300, "");
	t = malloc(400);
	snprintf(t, 400, "{\"requestId\":\"%s\",\"timestamp\":1}", s);
	http(t, &a);
	check_long((long long) a.request_id_len, 300, "http: a long requestId's length");
	check_long((long long) strlen(a.request_id), FH_ANSWER_ID_MAX, "http: a long requestId is cut");
	check_bool(fh_http_answer_matches(&a, s), 0, "http: an id longer than kept matches nothing");
	free(s);
	free(t);
	s = repeat('a', FH_ANSWER_TEXT_MAX - 1, "\xc3\xa9\"}");
	t = malloc(strlen(s) + 40);
	sprintf(t, "{\"errorMessage\":\"%s", s);
	http(t, &a);
	check_long((long long) strlen(a.error_message), FH_ANSWER_TEXT_MAX - 1,
			   "http: a long errorMessage is cut before a character that does not fit");
	free(s);
	free(t);
}

/* ---------- Splunk HEC ---------- */

static void
hec(const char *json, long long want, FhHecAnswer *a)
{
	size_t		len;
	char	   *b = body(json, &len);

	fh_hec_answer(b, len, want, a);
	free(b);
}

static void
test_hec(void)
{
	FhHecAnswer a;

	hec("{\"text\":\"Success\",\"code\":0}", 0, &a);
	check_bool(a.object, 1, "hec: success is an object");
	check_long(a.code, 0, "hec: success code");
	check_str(a.has_text ? a.text : NULL, "Success", "hec: success text");
	check_bool(a.has_ack_id, 0, "hec: no ackId without ack");

	hec("{\"text\":\"Success\",\"code\":0,\"ackId\":7}", 0, &a);
	check_bool(a.has_ack_id, 1, "hec: ackId present");
	check_long(a.ack_id, 7, "hec: ackId");
	hec("{\"text\":\"Success\",\"code\":0,\"ackId\":9223372036854775807}", 0, &a);
	check_bool(a.has_ack_id && a.ack_id == 9223372036854775807LL, 1, "hec: the largest ackId");
	hec("{\"code\":0,\"ackId\":9223372036854775808}", 0, &a);
	check_bool(a.has_ack_id, 0, "hec: an ackId beyond 64 bits is none");
	hec("{\"code\":0,\"ackId\":\"7\"}", 0, &a);
	check_bool(a.has_ack_id, 0, "hec: an ackId as a string is none");
	hec("{\"code\":0,\"ackId\":7.5}", 0, &a);
	check_bool(a.has_ack_id, 0, "hec: a fractional ackId is none");

	/* HEC's error answers */
	hec("{\"text\":\"Invalid token\",\"code\":4}", 0, &a);
	check_long(a.code, 4, "hec: invalid token code");
	hec("{\"text\":\"ACK is disabled\",\"code\":14}", 0, &a);
	check_long(a.code, 14, "hec: ack disabled code");
	check_str(a.text, "ACK is disabled", "hec: ack disabled text");
	hec("{\"text\":\"x\",\"code\":1.5}", 0, &a);
	check_long(a.code, -1, "hec: a fractional code is none");
	hec("{\"code\":1e3}", 0, &a);
	check_long(a.code, -1, "hec: an exponent code is none");
	hec("{\"code\":99999999999}", 0, &a);
	check_long(a.code, -1, "hec: a code beyond int is none");
	hec("{\"code\":\"4\"}", 0, &a);
	check_long(a.code, -1, "hec: a code as a string is none");
	hec("{\"code\":4,\"code\":{}}", 0, &a);
	check_long(a.code, -1, "hec: the last of duplicate codes counts");
	hec("{\"text\":\"t\",\"ackId\":3,\"text\":1,\"ackId\":\"3\"}", 0, &a);
	check_bool(a.has_text || a.text[0] != '\0' || a.has_ack_id || a.ack_id != 0, 0,
			   "hec: duplicate text and ackId of another type take the first away");
	hec("{\"x\":{\"code\":3}}", 0, &a);
	check_long(a.code, -1, "hec: a nested code does not count");
	hec("[{\"code\":3,\"text\":\"t\"}]", 0, &a);
	check_bool(a.object || a.code != -1 || a.has_text, 0, "hec: an array is no answer");
	hec("{\"code\":4,\"text\":\"t\",\"ackId\":2,\"acks\":{\"0\":true}", 0, &a);
	check_bool(a.object || a.code != -1 || a.has_text || a.has_ack_id || a.acked, 0,
			   "hec: nothing of a body broken at the end counts");
	hec("Service Unavailable", 0, &a);
	check_bool(a.object || a.code != -1, 0, "hec: plain text is no answer");

	/* acknowledgement polls */
	hec("{\"acks\":{\"7\":true}}", 7, &a);
	check_bool(a.acked, 1, "hec: ack 7 true");
	hec("{\"acks\":{\"7\":true}}", 8, &a);
	check_bool(a.acked, 0, "hec: ack 8 not in the answer");
	hec("{\"acks\":{\"6\":true,\"7\":false,\"8\":true}}", 7, &a);
	check_bool(a.acked, 0, "hec: ack 7 false");
	hec("{\"acks\":{\"7\":\"true\"}}", 7, &a);
	check_bool(a.acked, 0, "hec: ack as a string is no ack");
	hec("{\"acks\":{\"07\":true}}", 7, &a);
	check_bool(a.acked, 0, "hec: key 07 is not ack 7");
	hec("{\"acks\":{\"7\":{\"7\":true}}}", 7, &a);
	check_bool(a.acked, 0, "hec: a nested true is no ack");
	hec("{\"acks\":[{\"7\":true}]}", 7, &a);
	check_bool(a.acked, 0, "hec: acks as an array is no ack");
	hec("{\"acks\":{\"7\":true},\"acks\":{}}", 7, &a);
	check_bool(a.acked, 0, "hec: the last of duplicate acks counts");
	hec("{\"other\":{\"7\":true}}", 7, &a);
	check_bool(a.acked, 0, "hec: another member's true is no ack");
	hec("{\"acks\":{\"-3\":true}}", -3, &a);
	check_bool(a.acked, 1, "hec: a negative ackId is looked up as written");
}

/* ---------- OpenSearch _bulk ---------- */

static void
bulk(const char *json, int max, FhBulkAnswer *a)
{
	size_t		len;
	char	   *b = body(json, &len);

	fh_bulk_answer(b, len, max, a);
	free(b);
}

static void
test_bulk(void)
{
	FhBulkAnswer a;
	char	   *s;
	char	   *t;

	/* OpenSearch's documented answer */
	bulk("{\"took\":11,\"errors\":false,\"items\":[{\"index\":{\"_index\":\"movies\",\"_id\":\"tt1979320\","
		 "\"_version\":1,\"result\":\"created\",\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},"
		 "\"_seq_no\":1,\"_primary_term\":1,\"status\":201}}]}", 1, &a);
	check_bool(a.json, 1, "bulk: documented answer parses");
	check_long(a.errors, 0, "bulk: errors false");
	check_bool(a.items_seen, 1, "bulk: items seen");
	check_long(a.items, 1, "bulk: one item");
	check_long(a.item[0].status, 201, "bulk: its status");
	check_bool(a.item[0].type == NULL && a.item[0].reason == NULL, 1, "bulk: no error");
	fh_bulk_answer_free(&a);
	check_bool(a.item == NULL, 1, "bulk: free forgets the items");

	/* per-item errors of every kind */
	bulk("{\"took\":3,\"errors\":true,\"items\":["
		 "{\"create\":{\"_id\":\"1\",\"status\":201}},"
		 "{\"index\":{\"_id\":\"2\",\"status\":429,\"error\":{\"type\":\"es_rejected_execution_exception\","
		 "\"reason\":\"rejected execution\"}}},"
		 "{\"index\":{\"_id\":\"3\",\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\","
		 "\"reason\":\"failed to parse field [n]\",\"caused_by\":{\"type\":\"number_format_exception\","
		 "\"reason\":\"For input string\"}}}},"
		 "{\"create\":{\"_id\":\"4\",\"status\":409,\"error\":{\"type\":\"version_conflict_engine_exception\","
		 "\"reason\":\"document already exists\"}}},"
		 "{\"index\":{\"_id\":\"5\",\"error\":\"old string error\",\"status\":500}},"
		 "{\"index\":{\"_id\":\"6\"}}]}", 6, &a);
	check_bool(a.json, 1, "bulk: error answer parses");
	check_long(a.errors, 1, "bulk: errors true");
	check_long(a.items, 6, "bulk: six items");
	check_long(a.item[0].status, 201, "bulk: item 1 status");
	check_long(a.item[1].status, 429, "bulk: item 2 status");
	check_str(a.item[1].type, "es_rejected_execution_exception", "bulk: item 2 type");
	check_str(a.item[1].reason, "rejected execution", "bulk: item 2 reason");
	check_str(a.item[2].type, "mapper_parsing_exception", "bulk: item 3 type, not caused_by's");
	check_str(a.item[2].reason, "failed to parse field [n]", "bulk: item 3 reason, not caused_by's");
	check_long(a.item[3].status, 409, "bulk: item 4 status");
	check_str(a.item[4].reason, "old string error", "bulk: a string error is the reason");
	check_str(a.item[4].type, NULL, "bulk: a string error has no type");
	check_long(a.item[4].status, 500, "bulk: status after the error");
	check_long(a.item[5].status, -1, "bulk: an item without status");
	fh_bulk_answer_free(&a);

	/* more items than sent: counted, the first kept */
	bulk("{\"errors\":true,\"items\":[{\"index\":{\"status\":201}},{\"index\":{\"status\":400,"
		 "\"error\":{\"type\":\"t\",\"reason\":\"r\"}}}]}", 1, &a);
	check_long(a.items, 2, "bulk: every item counted");
	check_long(a.max_items, 1, "bulk: one kept");
	check_long(a.item[0].status, 201, "bulk: the first kept");
	fh_bulk_answer_free(&a);

	bulk("{\"errors\":true}", 3, &a);
	check_bool(a.json && !a.items_seen && a.items == 0, 1, "bulk: no items");
	fh_bulk_answer_free(&a);
	bulk("{\"items\":[]}", 3, &a);
	check_bool(a.items_seen && a.items == 0 && a.errors == -1, 1, "bulk: empty items, no errors member");
	fh_bulk_answer_free(&a);
	bulk("{\"errors\":\"no\",\"items\":[{\"index\":{\"status\":201.0}}]}", 1, &a);
	check_long(a.errors, 1, "bulk: errors not false counts as true");
	check_long(a.item[0].status, -1, "bulk: a fractional status is none");
	fh_bulk_answer_free(&a);
	bulk("{\"other\":{\"items\":[{\"index\":{\"status\":201}}]}}", 1, &a);
	check_bool(a.items_seen, 0, "bulk: nested items do not count");
	fh_bulk_answer_free(&a);
	bulk("  {\"errors\":false,\"items\":[{\"index\":{\"status\":200}}]}\n", 1, &a);
	check_bool(a.json && a.items == 1, 1, "bulk: white space around the answer");
	fh_bulk_answer_free(&a);
	bulk("{\"errors\":true,\"items\":[{\"index\":{\"status\":400,\"error\":{\"type\":\"t\"}}}]", 1, &a);
	check_bool(a.json || a.errors != -1 || a.items_seen || a.items != 0 ||
			   a.item[0].status != 0 || a.item[0].type != NULL, 0,
			   "bulk: nothing of a body broken at the end counts");
	fh_bulk_answer_free(&a);
	bulk("[{\"errors\":false}]", 1, &a);
	check_bool(a.json, 0, "bulk: an array is no answer");
	fh_bulk_answer_free(&a);
	bulk("<html>502 Bad Gateway</html>", 1, &a);
	check_bool(a.json, 0, "bulk: html is no answer");
	fh_bulk_answer_free(&a);
	bulk("{\"errors\":true,\"items\":[{\"index\":{\"status\":400,\"error\":{\"type\":\"a\",\"type\":\"b\"}}}]}",
		 1, &a);
	check_str(a.item[0].type, "b", "bulk: the last of duplicate types counts");
	fh_bulk_answer_free(&a);

	/* a long reason is cut to the text limit */
	s = repeat('r', 5000, "");
	t = malloc(6000);
	snprintf(t, 6000, "{\"errors\":true,\"items\":[{\"index\":{\"status\":400,\"error\":{\"reason\":\"%s\"}}}]}", s);
	bulk(t, 1, &a);
	check_long(a.item[0].reason ? (long long) strlen(a.item[0].reason) : -1, FH_ANSWER_TEXT_MAX,
			   "bulk: a long reason is cut");
	fh_bulk_answer_free(&a);
	free(s);
	free(t);
}

/* ---------- S3 ---------- */

static void
s3(const char *xml, FhS3Answer *a)
{
	size_t		len;
	char	   *b = body(xml, &len);

	fh_s3_answer(b, len, a);
	free(b);
}

static void
test_s3(void)
{
	FhS3Answer a;
	char	   *s;
	char	   *t;

	/* S3's documented error body */
	s3("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchKey</Code>\n"
	   "  <Message>The resource you requested does not exist</Message>\n"
	   "  <Resource>/mybucket/myfoto.jpg</Resource>\n  <RequestId>4442587FB7D0A2F9</RequestId>\n</Error>", &a);
	check_bool(a.xml, 1, "s3: error body is XML");
	check_str(a.has_code ? a.code : NULL, "NoSuchKey", "s3: error Code");
	check_str(a.has_message ? a.message : NULL, "The resource you requested does not exist",
			  "s3: error Message");
	check_bool(a.has_upload_id, 0, "s3: no UploadId in an error");

	s3("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
	   "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>example-bucket</Bucket>"
	   "<Key>example-object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
	   "</InitiateMultipartUploadResult>", &a);
	check_str(a.has_upload_id ? a.upload_id : NULL,
			  "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA", "s3: UploadId");
	check_bool(a.has_code, 0, "s3: no Code in a CreateMultipartUpload answer");

	/* CompleteMultipartUpload: a 200 with an error, and a success */
	s3("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError</Code>"
	   "<Message>We encountered an internal error. Please try again.</Message></Error>", &a);
	check_str(a.code, "InternalError", "s3: Complete's 200 error Code");
	s3("<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	   "<Location>http://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket><Key>k</Key>"
	   "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag></CompleteMultipartUploadResult>", &a);
	check_bool(a.xml && !a.has_code && !a.has_message, 1, "s3: Complete's success has no Code");

	s3("", &a);
	check_bool(a.xml, 0, "s3: empty body");
	s3("Bad Gateway", &a);
	check_bool(a.xml || a.has_code, 0, "s3: text is not XML");
	s3("<Error><Code>SlowDown</Code>", &a);
	check_bool(a.xml, 0, "s3: unterminated XML");
	fh_s3_answer("<Error><Code>SlowDown</Code></Error>trailing",
				 strlen("<Error><Code>SlowDown</Code></Error>"), &a);
	check_str(a.has_code ? a.code : NULL, "SlowDown", "s3: the body ends at its length");

	s3("<Error><Code>A&amp;B</Code><Message><![CDATA[x < y]]></Message></Error>", &a);
	check_str(a.code, "A&B", "s3: predefined entities are text");
	check_str(a.message, "x < y", "s3: CDATA is text");
	s3("<Error><Code>First</Code><Code>Second</Code></Error>", &a);
	check_str(a.code, "First", "s3: the first Code counts");
	s3("<Error><Code>A<b>B</b>C</Code></Error>", &a);
	check_str(a.code, "AC", "s3: an element's own text only");
	s3("<R><Deep><Code>In</Code></Deep></R>", &a);
	check_str(a.has_code ? a.code : NULL, "In", "s3: a Code anywhere counts");
	s3("<Error><Code/></Error>", &a);
	check_bool(a.has_code && a.code[0] == '\0', 1, "s3: an empty Code is an empty Code");

	/* a document's own entities are not expanded */
	s3("<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY x \"AccessDenied\">]>"
	   "<Error><Code>&x;</Code><Message>m</Message></Error>", &a);
	check_bool(a.xml, 1, "s3: a DTD is XML");
	check_str(a.has_code ? a.code : NULL, "", "s3: an entity reference is not followed");
	check_str(a.has_message ? a.message : NULL, "m", "s3: the walk goes on after an entity reference");
	s3("<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
	   "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"
	   "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">"
	   "<!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\"><!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">]>"
	   "<Error><Code>&h;</Code><Message>&h;&h;</Message></Error>", &a);
	check_bool(a.code[0] == '\0' && a.message[0] == '\0', 1,
			   "s3: nested entities (a billion laughs) are not expanded");

	/* long texts */
	s = repeat('m', 3000, "");
	t = malloc(3100);
	snprintf(t, 3100, "<Error><Code>X</Code><Message>%s</Message></Error>", s);
	s3(t, &a);
	check_long((long long) strlen(a.message), FH_ANSWER_TEXT_MAX, "s3: a long Message is cut");
	snprintf(t, 3100, "<R><UploadId>%s</UploadId></R>", s);
	s3(t, &a);
	check_bool(a.has_upload_id && a.upload_id[0] == '\0', 1, "s3: an UploadId too long is \"\"");
	free(s);
	free(t);
	s = repeat('u', FH_S3_UPLOAD_ID_MAX, "");
	t = malloc(FH_S3_UPLOAD_ID_MAX + 100);
	snprintf(t, FH_S3_UPLOAD_ID_MAX + 100, "<R><UploadId>%s</UploadId></R>", s);
	s3(t, &a);
	check_str(a.upload_id, s, "s3: an UploadId of the longest kept is whole");
	free(s);
	free(t);
}

/* ---------- a Lambda's answer, a CloudWatch Logs record ---------- */

static void
cwl_free(FhCwlRecord *r)
{
	for (int i = 0; i < r->nmessages; i++)
		free(r->messages[i]);
	if (r->messages)
	{
		free(r->messages);
		free(r->lens);
	}
}

static void
lambda(const char *json, int max, FhLambdaAnswer *a)
{
	size_t		len;
	char	   *b = body(json, &len);

	fh_lambda_answer(b, len, max, a);
	free(b);
}

static void
test_lambda(void)
{
	FhLambdaAnswer a;
	FhCwlRecord r;
	size_t		len;
	char	   *b;

	/* aws-lambda-go's test response, with partition keys */
	lambda("{\"records\":[{\"recordId\":\"record1\",\"result\":\"Ok\",\"data\":\"SEVMTE8=\","
		   "\"metadata\":{\"partitionKeys\":{\"customerId\":\"123\",\"year\":\"2024\"}}},"
		   "{\"recordId\":\"record2\",\"result\":\"Dropped\"},"
		   "{\"recordId\":\"record3\",\"result\":\"ProcessingFailed\",\"data\":null}]}", 8, &a);
	check_bool(a.json && a.records_seen, 1, "lambda: documented answer parses");
	check_long(a.items, 3, "lambda: three records");
	check_str(a.item[0].record_id, "record1", "lambda: recordId");
	check_str(a.item[0].result, "Ok", "lambda: result");
	check_str(a.item[0].data, "SEVMTE8=", "lambda: data whole");
	check_long(a.item[0].nkeys, 2, "lambda: two partition keys");
	check_str(a.item[0].keys[1], "year", "lambda: a key's name");
	check_str(a.item[0].values[1], "2024", "lambda: its value");
	check_bool(a.item[0].bad_metadata, 0, "lambda: good metadata");
	check_str(a.item[1].result, "Dropped", "lambda: Dropped");
	check_bool(a.item[2].data == NULL, 1, "lambda: null data is none");
	fh_lambda_answer_free(&a);
	check_bool(a.item == NULL, 1, "lambda: free forgets the records");

	lambda("{\"records\":[{\"recordId\":7,\"result\":\"Ok\",\"data\":\"eA==\","
		   "\"metadata\":{\"partitionKeys\":{\"n\":1}}},"
		   "{\"recordId\":\"b\",\"metadata\":[1]}]}", 8, &a);
	check_bool(a.item[0].record_id == NULL, 1, "lambda: a number is no recordId");
	check_bool(a.item[0].bad_metadata, 1, "lambda: a key's value must be a string");
	check_bool(a.item[1].bad_metadata, 1, "lambda: metadata must be an object");
	fh_lambda_answer_free(&a);

	lambda("{\"records\":[{},{},{}]}", 2, &a);
	check_long(a.items, 3, "lambda: every element counted");
	fh_lambda_answer_free(&a);
	lambda("{\"records\":{}}", 2, &a);
	check_bool(a.json && !a.records_seen, 1, "lambda: records must be an array");
	fh_lambda_answer_free(&a);
	lambda("{\"records\":[{\"recordId\":\"a\"}", 2, &a);
	check_bool(!a.json && a.items == 0, 1, "lambda: a cut answer is none");
	fh_lambda_answer_free(&a);

	b = body("{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"g\",\"logEvents\":["
			 "{\"id\":\"1\",\"timestamp\":1,\"message\":\"one\"},"
			 "{\"id\":\"2\",\"timestamp\":2,\"message\":\"two \\u00e9\"}]}", &len);
	fh_cwl_record(b, len, &r);
	free(b);
	check_bool(r.json && r.data_message && r.events_seen && !r.bad_event, 1, "cwl: a data message");
	check_long(r.nmessages, 2, "cwl: two events");
	check_str(r.messages[1], "two \xc3\xa9", "cwl: a message, unescaped");
	cwl_free(&r);
	b = body("{\"messageType\":\"CONTROL_MESSAGE\",\"logEvents\":[]}", &len);
	fh_cwl_record(b, len, &r);
	free(b);
	check_bool(r.control && !r.data_message, 1, "cwl: a control message");
	cwl_free(&r);
	b = body("{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[{\"id\":\"1\"}]}", &len);
	fh_cwl_record(b, len, &r);
	free(b);
	check_bool(r.bad_event, 1, "cwl: an event without a message");
	cwl_free(&r);

	/*
	 * An event that is an array is no event, and its strings are no
	 * messages, even right after an event whose last member was "message"
	 */
	b = body("{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":["
			 "{\"id\":\"1\",\"message\":\"one\"},[\"two\"]]}", &len);
	fh_cwl_record(b, len, &r);
	free(b);
	check_bool(r.bad_event, 1, "cwl: an event that is an array");
	check_long(r.nmessages, 1, "cwl: no message from an array");
	cwl_free(&r);
	b = body("{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[[]]}", &len);
	fh_cwl_record(b, len, &r);
	free(b);
	check_bool(r.bad_event, 1, "cwl: an empty array as an event");
	cwl_free(&r);
}

int
main(void)
{
	test_http();
	test_hec();
	test_bulk();
	test_s3();
	test_lambda();
	printf("answers: %d of %d checks pass\n", checks_run - checks_failed, checks_run);
	return checks_failed ? 1 : 0;
}
