/*-------------------------------------------------------------------------
 *
 * lambda_answer_fuzz.c
 *	  libFuzzer target of src/answers.c: a Lambda transformation's answer
 *	  ({"records": [{"recordId", "result", "data", "metadata":
 *	  {"partitionKeys": {..}}}, ..]}), read with PostgreSQL's frontend JSON
 *	  parser (libpgcommon).
 *
 * Input: 1 byte of the number of records kept (0 to 255), then the body
 * (any bytes, given by length, in a buffer of its own size).
 *
 * Checks what answers.h promises: an answer that is no JSON object has
 * nothing set; records are counted only in a top-level "records" array,
 * and those past the kept ones are untouched; a record that is no object
 * has nothing set; a recordId is at most FH_ANSWER_ID_MAX bytes and whole
 * when it fits, "data" is whole (data_len), the other texts bounded, at
 * most FH_LAMBDA_MAX_KEYS partition keys; the answer is the same read
 * twice and with white space around it; a byte of garbage after it makes
 * it no JSON; and the kept records, written back as JSON, read back the
 * same (escapes both ways).  fh_lambda_answer_free frees everything (the
 * run checks leaks).
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"
#include "fuzz.h"

static bool
answer(const uint8_t *data, size_t len, const char *before, const char *after,
	   int max, FhLambdaAnswer *a)
{
	size_t		n;
	char	   *b = fuzz_framed(data, len, before, after, &n);
	bool		r = fh_lambda_answer(b, n, max, a);

	free(b);
	return r;
}

static bool
same_text(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

/* the fields of a record that a reading keeps, compared */
static void
assert_same_item(const FhLambdaItem *a, const FhLambdaItem *b, bool metadata)
{
	fuzz_assert(same_text(a->record_id, b->record_id) &&
				same_text(a->result, b->result) &&
				same_text(a->data, b->data) && a->data_len == b->data_len);
	if (!metadata)
		return;
	fuzz_assert(a->bad_metadata == b->bad_metadata && a->nkeys == b->nkeys);
	for (int k = 0; k < a->nkeys; k++)
		fuzz_assert(strcmp(a->keys[k], b->keys[k]) == 0 &&
					strcmp(a->values[k], b->values[k]) == 0);
}

static void
assert_same(const FhLambdaAnswer *a, const FhLambdaAnswer *b)
{
	fuzz_assert(a->json == b->json && a->records_seen == b->records_seen &&
				a->items == b->items && a->max_items == b->max_items);
	for (int i = 0; i < a->max_items; i++)
	{
		fuzz_assert(a->item[i].object == b->item[i].object &&
					a->item[i].record_id_len == b->item[i].record_id_len);
		assert_same_item(&a->item[i], &b->item[i], true);
	}
}

static void
assert_bounded(const FhLambdaItem *it)
{
	if (it->record_id)
	{
		size_t		kept = strlen(it->record_id);

		/* JSON strings hold no NUL: a recordId that fits is all there */
		fuzz_assert(kept <= FH_ANSWER_ID_MAX && kept <= it->record_id_len);
		if (it->record_id_len <= FH_ANSWER_ID_MAX)
			fuzz_assert(kept == it->record_id_len);
	}
	fuzz_assert(it->result == NULL || strlen(it->result) <= FH_ANSWER_TEXT_MAX);
	fuzz_assert(it->data == NULL || strlen(it->data) == it->data_len);
	fuzz_assert(it->nkeys >= 0 && it->nkeys <= FH_LAMBDA_MAX_KEYS);
	for (int k = 0; k < FH_LAMBDA_MAX_KEYS; k++)
	{
		if (k < it->nkeys)
			fuzz_assert(it->keys[k] && strlen(it->keys[k]) <= FH_ANSWER_TEXT_MAX &&
						it->values[k] && strlen(it->values[k]) <= FH_ANSWER_TEXT_MAX);
		else
			fuzz_assert(it->keys[k] == NULL && it->values[k] == NULL);
	}
	/* an element that is no object (an array, a scalar) has no fields */
	if (!it->object)
		fuzz_assert(it->record_id == NULL && it->result == NULL &&
					it->data == NULL && it->nkeys == 0 && !it->bad_metadata);
}

/* the kept records that are objects, written back as an answer */
static char *
write_back(const FhLambdaAnswer *a, int n, size_t *len)
{
	FuzzText	t = {0};

	fuzz_append_str(&t, "{\"records\": [");
	for (int i = 0; i < n; i++)
	{
		const FhLambdaItem *it = &a->item[i];

		fuzz_append_str(&t, i ? ", {\"result\": " : "{\"result\": ");
		if (it->result)
			fuzz_append_json_string(&t, it->result);
		else
			fuzz_append_str(&t, "null");
		if (it->record_id)
		{
			fuzz_append_str(&t, ", \"recordId\": ");
			fuzz_append_json_string(&t, it->record_id);
		}
		if (it->data)
		{
			fuzz_append_str(&t, ", \"data\": ");
			fuzz_append_json_string(&t, it->data);
		}
		if (!it->bad_metadata && it->nkeys > 0)
		{
			fuzz_append_str(&t, ", \"metadata\": {\"partitionKeys\": {");
			for (int k = 0; k < it->nkeys; k++)
			{
				if (k)
					fuzz_append_str(&t, ", ");
				fuzz_append_json_string(&t, it->keys[k]);
				fuzz_append_str(&t, ": ");
				fuzz_append_json_string(&t, it->values[k]);
			}
			fuzz_append_str(&t, "}}");
		}
		fuzz_append_str(&t, "}");
	}
	fuzz_append_str(&t, "]}");
	*len = t.len;
	return t.data;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	int			max = (int) fuzz_u64(&in, 1);
	FhLambdaAnswer a,
				again;
	bool		json;
	int			kept;
	bool		all_objects = true;

	json = answer(in.p, in.n, "", "", max, &a);
	fuzz_assert(json == a.json && a.max_items == max && a.item != NULL);
	if (!a.json)
		fuzz_assert(!a.records_seen && a.items == 0);
	fuzz_assert(a.items >= 0 && (a.records_seen || a.items == 0));
	kept = a.items < max ? a.items : max;
	for (int i = 0; i < max; i++)
	{
		FhLambdaItem *it = &a.item[i];

		if (i >= kept)
		{
			/* records not in the answer are untouched */
			fuzz_assert(!it->object && it->record_id == NULL && it->result == NULL &&
						it->data == NULL && it->nkeys == 0 && !it->bad_metadata);
			continue;
		}
		assert_bounded(it);
		all_objects &= it->object;
	}

	/* the same bytes, the same answer; white space around changes nothing */
	answer(in.p, in.n, "", "", max, &again);
	assert_same(&a, &again);
	fh_lambda_answer_free(&again);
	answer(in.p, in.n, "\n  ", " \r\n", max, &again);
	assert_same(&a, &again);
	fh_lambda_answer_free(&again);
	if (a.json)
	{
		answer(in.p, in.n, "", "]", max, &again);
		fuzz_assert(!again.json && again.items == 0);
		fh_lambda_answer_free(&again);
	}

	/* what was kept reads back the same from the JSON it makes */
	if (a.json && a.records_seen && all_objects)
	{
		size_t		n;
		char	   *b = write_back(&a, kept, &n);

		fuzz_assert(fh_lambda_answer(b, n, max, &again));
		fuzz_assert(again.records_seen && again.items == kept);
		for (int i = 0; i < kept; i++)
			assert_same_item(&a.item[i], &again.item[i], !a.item[i].bad_metadata);
		fh_lambda_answer_free(&again);
		free(b);
	}

	fh_lambda_answer_free(&a);
	fuzz_assert(a.item == NULL);
	return 0;
}
