/*-------------------------------------------------------------------------
 *
 * http_answer_fuzz.c
 *	  libFuzzer target of src/answers.c: the Firehose HTTP endpoint's JSON
 *	  answer ({"requestId", "timestamp", "errorMessage"}), read with
 *	  PostgreSQL's frontend JSON parser (libpgcommon).
 *
 * Input: a NUL-terminated request id, then the body (any bytes, given by
 * length: it is copied to a buffer of its own size, so a read past the
 * length is a read past the buffer).
 *
 * Checks what answers.h promises: an answer that is no JSON object has
 * nothing set; texts end with a NUL inside their buffers and never pass
 * their limits; a requestId kept whole matches itself, and the request id
 * matches only that; the answer is the same for the body read twice and
 * with white space around it; and a body that is JSON is no longer JSON
 * with a byte of garbage after it.
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"
#include "fuzz.h"

/* the answer of body (len bytes) in a buffer of exactly its size */
static void
answer(const uint8_t *data, size_t len, const char *before, const char *after,
	   FhHttpAnswer *a)
{
	size_t		n;
	char	   *b = fuzz_framed(data, len, before, after, &n);

	fh_http_answer(b, n, a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	char	   *id = fuzz_string(&in);
	FhHttpAnswer a,
				again;

	if (id == NULL)
		return 0;
	answer(in.p, in.n, "", "", &a);

	if (!a.object)
		fuzz_assert(!a.has_request_id && !a.has_timestamp && !a.has_error_message);
	if (!a.json)
		fuzz_assert(!a.object);
	fuzz_assert_terminated(a.request_id, sizeof(a.request_id));
	fuzz_assert_terminated(a.error_message, sizeof(a.error_message));
	if (a.has_request_id)
	{
		size_t		kept = strlen(a.request_id);

		/* JSON strings hold no NUL: a requestId kept whole is all there */
		fuzz_assert(kept <= a.request_id_len && kept <= FH_ANSWER_ID_MAX);
		if (a.request_id_len <= FH_ANSWER_ID_MAX)
			fuzz_assert(kept == a.request_id_len);
		fuzz_assert(fh_http_answer_matches(&a, a.request_id) ==
					(a.request_id_len <= FH_ANSWER_ID_MAX));
	}
	else
		fuzz_assert(a.request_id[0] == '\0' && !fh_http_answer_matches(&a, ""));
	if (fh_http_answer_matches(&a, id))
		fuzz_assert(strcmp(id, a.request_id) == 0);
	if (!a.has_error_message)
		fuzz_assert(a.error_message[0] == '\0');

	/* the same bytes, the same answer (every byte of it: no stale state) */
	answer(in.p, in.n, "", "", &again);
	fuzz_assert(memcmp(&a, &again, sizeof(a)) == 0);
	/* white space around a JSON value changes nothing */
	answer(in.p, in.n, " \n", "\t\r ", &again);
	fuzz_assert(memcmp(&a, &again, sizeof(a)) == 0);
	/* a value then garbage is not JSON */
	if (a.json)
	{
		answer(in.p, in.n, "", "x", &again);
		fuzz_assert(!again.json);
	}
	free(id);
	return 0;
}
