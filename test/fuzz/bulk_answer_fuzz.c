/*-------------------------------------------------------------------------
 *
 * bulk_answer_fuzz.c
 *	  libFuzzer target of src/answers.c: OpenSearch's _bulk answer (errors,
 *	  and per item its status and error type and reason), read with
 *	  PostgreSQL's frontend JSON parser (libpgcommon).
 *
 * Input: 1 byte of the number of items kept (0 to 255), then the body
 * (any bytes, given by length, in a buffer of its own size).
 *
 * Checks: an answer that is no JSON object has nothing set; items are
 * counted only in a top-level "items" array; each kept item's texts are
 * NULL or at most FH_ANSWER_TEXT_MAX bytes; the items are the same read
 * twice and with white space around the body; fh_bulk_answer_free frees
 * everything (the run checks leaks).
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"
#include "fuzz.h"

static bool
answer(const uint8_t *data, size_t len, const char *before, const char *after,
	   int max, FhBulkAnswer *a)
{
	size_t		n;
	char	   *b = fuzz_framed(data, len, before, after, &n);
	bool		r = fh_bulk_answer(b, n, max, a);

	free(b);
	return r;
}

static bool
same_text(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

static void
assert_same(const FhBulkAnswer *a, const FhBulkAnswer *b)
{
	fuzz_assert(a->json == b->json && a->errors == b->errors &&
				a->items_seen == b->items_seen && a->items == b->items &&
				a->max_items == b->max_items);
	for (int i = 0; i < a->max_items; i++)
		fuzz_assert(a->item[i].status == b->item[i].status &&
					same_text(a->item[i].type, b->item[i].type) &&
					same_text(a->item[i].reason, b->item[i].reason));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	int			max = (int) fuzz_u64(&in, 1);
	FhBulkAnswer a,
				again;
	bool		json;

	json = answer(in.p, in.n, "", "", max, &a);
	fuzz_assert(json == a.json && a.max_items == max && a.item != NULL);
	if (!a.json)
		fuzz_assert(a.errors == -1 && !a.items_seen && a.items == 0);
	fuzz_assert(a.errors >= -1 && a.errors <= 1);
	fuzz_assert(a.items >= 0 && (a.items_seen || a.items == 0));
	for (int i = 0; i < max; i++)
	{
		FhBulkItem *it = &a.item[i];

		/* items not in the answer are untouched */
		if (i >= a.items)
			fuzz_assert(it->status == 0 && it->type == NULL && it->reason == NULL);
		else
			fuzz_assert(it->status >= -1);
		fuzz_assert(it->type == NULL || strlen(it->type) <= FH_ANSWER_TEXT_MAX);
		fuzz_assert(it->reason == NULL || strlen(it->reason) <= FH_ANSWER_TEXT_MAX);
	}

	answer(in.p, in.n, "", "", max, &again);
	assert_same(&a, &again);
	fh_bulk_answer_free(&again);
	answer(in.p, in.n, "\n  ", "\r\n", max, &again);
	assert_same(&a, &again);
	fh_bulk_answer_free(&again);

	fh_bulk_answer_free(&a);
	fuzz_assert(a.item == NULL);
	return 0;
}
