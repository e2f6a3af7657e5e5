/*-------------------------------------------------------------------------
 *
 * cwl_record_fuzz.c
 *	  libFuzzer target of src/answers.c: a CloudWatch Logs subscription
 *	  record, decompressed ({"messageType", "logEvents": [{"message"},
 *	  ..]}), read with PostgreSQL's frontend JSON parser (libpgcommon).
 *
 * Input: the record (any bytes, given by length, in a buffer of its own
 * size).
 *
 * Checks what answers.h promises: a record that is no JSON object has
 * nothing set; it is a control or a data message, not both; messages come
 * only from a top-level "logEvents" array and are whole (lens); the record
 * is the same read twice and with white space around it; a byte of
 * garbage after it makes it no JSON; and the messages of a record without
 * bad events, written back twice over as a record, read back the same
 * (escapes both ways) with no bad event.  The messages are freed here (the run checks
 * leaks): the server frees them with their memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"
#include "fuzz.h"

static void
record_free(FhCwlRecord *r)
{
	for (int i = 0; i < r->nmessages; i++)
		free(r->messages[i]);
	free(r->messages);
	free(r->lens);
}

static bool
record(const uint8_t *data, size_t len, const char *before, const char *after,
	   FhCwlRecord *r)
{
	size_t		n;
	char	   *b = fuzz_framed(data, len, before, after, &n);
	bool		json = fh_cwl_record(b, n, r);

	free(b);
	return json;
}

static void
assert_same_messages(const FhCwlRecord *a, const FhCwlRecord *b)
{
	fuzz_assert(a->nmessages == b->nmessages);
	for (int i = 0; i < a->nmessages; i++)
		fuzz_assert(a->lens[i] == b->lens[i] &&
					memcmp(a->messages[i], b->messages[i], a->lens[i]) == 0);
}

static void
assert_same(const FhCwlRecord *a, const FhCwlRecord *b)
{
	fuzz_assert(a->json == b->json && a->control == b->control &&
				a->data_message == b->data_message &&
				a->events_seen == b->events_seen && a->bad_event == b->bad_event);
	assert_same_messages(a, b);
}

/* the record's messages, twice over, written back as a data message */
static char *
write_back(const FhCwlRecord *r, size_t *len)
{
	FuzzText	t = {0};

	fuzz_append_str(&t, "{\"messageType\": \"DATA_MESSAGE\", \"owner\": \"123456789012\", "
					"\"logGroup\": \"g\", \"logStream\": \"s\", \"subscriptionFilters\": [\"f\"], "
					"\"logEvents\": [");
	for (int i = 0; i < 2 * r->nmessages; i++)
	{
		char		head[64];

		snprintf(head, sizeof(head), "%s{\"id\": \"%d\", \"timestamp\": %d, \"message\": ",
				 i ? ", " : "", i, 1700000000 + i);
		fuzz_append_str(&t, head);
		fuzz_append_json_string(&t, r->messages[i % r->nmessages]);
		fuzz_append_str(&t, "}");
	}
	fuzz_append_str(&t, "]}");
	*len = t.len;
	return t.data;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FhCwlRecord r,
				again;
	bool		json;

	json = record(data, size, "", "", &r);
	fuzz_assert(json == r.json);
	if (!r.json)
		fuzz_assert(!r.control && !r.data_message && !r.events_seen &&
					!r.bad_event && r.nmessages == 0 && r.messages == NULL &&
					r.lens == NULL);
	fuzz_assert(!(r.control && r.data_message));
	fuzz_assert(r.nmessages >= 0 && (r.events_seen || r.nmessages == 0));
	for (int i = 0; i < r.nmessages; i++)
		fuzz_assert(r.messages[i] != NULL && strlen(r.messages[i]) == r.lens[i]);

	record(data, size, "", "", &again);
	assert_same(&r, &again);
	record_free(&again);
	record(data, size, "\t\n ", "\r\n", &again);
	assert_same(&r, &again);
	record_free(&again);
	if (r.json)
	{
		record(data, size, "", "}", &again);
		fuzz_assert(!again.json && again.nmessages == 0);
		record_free(&again);
	}

	if (r.json && r.events_seen && !r.bad_event)
	{
		size_t		n;
		char	   *b = write_back(&r, &n);

		fuzz_assert(fh_cwl_record(b, n, &again));
		fuzz_assert(again.data_message && again.events_seen && !again.bad_event);
		fuzz_assert(again.nmessages == 2 * r.nmessages);
		for (int i = 0; i < again.nmessages; i++)
		{
			int			j = i % r.nmessages;

			fuzz_assert(again.lens[i] == r.lens[j] &&
						memcmp(again.messages[i], r.messages[j], r.lens[j]) == 0);
		}
		record_free(&again);
		free(b);
	}
	record_free(&r);
	return 0;
}
