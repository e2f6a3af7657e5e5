/*-------------------------------------------------------------------------
 *
 * s3_answer_fuzz.c
 *	  libFuzzer target of src/answers.c: S3's XML bodies (an error's Code
 *	  and Message, CreateMultipartUpload's UploadId), read with libxml2.
 *
 * Input: the body (any bytes, given by length, in a buffer of its own
 * size).  libxml2 itself is not instrumented: the fuzzer's guidance
 * comes from answers.c's walk of the tree, and ASan still sees every
 * access answers.c makes.
 *
 * Checks: a body that is not XML has nothing set; texts end with a NUL
 * inside their buffers and never pass their limits (an UploadId is whole
 * or ""); a field not found is ""; the answer is the same read twice and
 * with a newline after the body (white space after the root element is
 * allowed).
 *
 *-------------------------------------------------------------------------
 */
#include "answers.h"
#include "fuzz.h"

static void
answer(const uint8_t *data, size_t len, const char *after, FhS3Answer *a)
{
	size_t		n;
	char	   *b = fuzz_framed(data, len, "", after, &n);

	fh_s3_answer(b, n, a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FhS3Answer	a,
				again;

	answer(data, size, "", &a);
	if (!a.xml)
		fuzz_assert(!a.has_code && !a.has_message && !a.has_upload_id);
	fuzz_assert_terminated(a.code, sizeof(a.code));
	fuzz_assert_terminated(a.message, sizeof(a.message));
	fuzz_assert_terminated(a.upload_id, sizeof(a.upload_id));
	if (!a.has_code)
		fuzz_assert(a.code[0] == '\0');
	if (!a.has_message)
		fuzz_assert(a.message[0] == '\0');
	if (!a.has_upload_id)
		fuzz_assert(a.upload_id[0] == '\0');

	answer(data, size, "", &again);
	fuzz_assert(memcmp(&a, &again, sizeof(a)) == 0);
	if (a.xml)
	{
		answer(data, size, "\n", &again);
		fuzz_assert(memcmp(&a, &again, sizeof(a)) == 0);
	}
	return 0;
}
