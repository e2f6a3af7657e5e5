/*-------------------------------------------------------------------------
 *
 * hec_answer_fuzz.c
 *	  libFuzzer target of src/answers.c: Splunk HEC's answers (code, text,
 *	  ackId) and acknowledgement polls ({"acks": {"<id>": true}}), read with
 *	  PostgreSQL's frontend JSON parser (libpgcommon).
 *
 * Input: 8 bytes of the ackId looked for, then the body (any bytes, given
 * by length, in a buffer of its own size).
 *
 * Checks: an answer that is no JSON object has nothing set (code -1);
 * the text ends with a NUL inside its buffer; acked only in an object;
 * the answer is the same read twice and with white space around it; an
 * ackId read back in a poll answer {"acks": {"<ackId>": true}} is acked,
 * and with false is not.
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"
#include "fuzz.h"

static void
answer(const uint8_t *data, size_t len, const char *before, const char *after,
	   int64_t want, FhHecAnswer *a)
{
	size_t		n;
	char	   *b = fuzz_framed(data, len, before, after, &n);

	fh_hec_answer(b, n, want, a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	int64_t		want = (int64_t) fuzz_u64(&in, 8);
	FhHecAnswer a,
				again;
	char		poll[100];

	answer(in.p, in.n, "", "", want, &a);
	if (!a.object)
		fuzz_assert(a.code == -1 && !a.has_text && !a.has_ack_id && !a.acked);
	fuzz_assert_terminated(a.text, sizeof(a.text));
	fuzz_assert(strlen(a.text) <= FH_ANSWER_TEXT_MAX);
	if (!a.has_text)
		fuzz_assert(a.text[0] == '\0');
	if (!a.has_ack_id)
		fuzz_assert(a.ack_id == 0);

	answer(in.p, in.n, "", "", want, &again);
	fuzz_assert(memcmp(&a, &again, sizeof(a)) == 0);
	answer(in.p, in.n, "\r\n ", " \n", want, &again);
	fuzz_assert(memcmp(&a, &again, sizeof(a)) == 0);

	/* the ackId given comes back acknowledged in a poll's answer */
	if (a.has_ack_id)
	{
		snprintf(poll, sizeof(poll), "{\"acks\":{\"%lld\":true}}", (long long) a.ack_id);
		fh_hec_answer(poll, strlen(poll), a.ack_id, &again);
		fuzz_assert(again.object && again.acked && again.code == -1);
		snprintf(poll, sizeof(poll), "{\"acks\":{\"%lld\":false}}", (long long) a.ack_id);
		fh_hec_answer(poll, strlen(poll), a.ack_id, &again);
		fuzz_assert(again.object && !again.acked);
	}
	return 0;
}
