/*-------------------------------------------------------------------------
 *
 * os_index_fuzz.c
 *	  libFuzzer target of src/os_index.c: IndexName checks, rotation
 *	  periods and index names with their time suffix, from arbitrary bytes.
 *
 * Input: 8 bytes of time (epoch ms), 1 of rotation, 2 of output buffer
 * size, then NUL-separated strings: index name, rotation period name.
 *
 * Checks what os_index.h promises: a name and a NUL never pass the given
 * size, and a failure leaves ""; a valid index gets a name for every
 * instant of the years 1 to 9999 and every rotation, which starts with the
 * index, has the suffix's fixed width and fits FH_OS_INDEX_BUFSIZE.
 *
 *-------------------------------------------------------------------------
 */
#include "os_index.h"
#include "fuzz.h"

#define MIN_MS	INT64_C(-62135596800000)	/* 0001-01-01T00:00Z */
#define MAX_MS	INT64_C(253402300799999)	/* 9999-12-31T23:59:59.999Z */

/* the suffix of each rotation: "", "-yyyy-MM-dd-HH", "-yyyy-MM-dd", ... */
static const size_t suffix_len[] = {0, 14, 11, 9, 8};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	int64_t		t = (int64_t) fuzz_u64(&in, 8);
	unsigned	r = (unsigned) fuzz_u64(&in, 1);
	size_t		outsize = (size_t) fuzz_u64(&in, 2) % (FH_OS_INDEX_BUFSIZE + 16);
	char	   *index = fuzz_string(&in);
	char	   *period = fuzz_string(&in);
	char		canary[FH_OS_INDEX_BUFSIZE + 32];
	char	   *out;
	const char *why = "unset";
	FhOsRotation rot;
	bool		valid;
	size_t		n;

	/* any rotation value, any time, any room: stays inside the room */
	out = malloc(outsize ? outsize : 1);
	if (out == NULL)
		abort();
	n = fh_os_index_name(index, (FhOsRotation) (r % 7), t, out, outsize);
	if (outsize > 0)
	{
		fuzz_assert(n < outsize && strlen(out) == n);
		if (n == 0)
			fuzz_assert(out[0] == '\0');
	}
	else
		fuzz_assert(n == 0);
	free(out);

	rot = (FhOsRotation) 99;
	if (fh_os_rotation_parse(period, &rot))
		fuzz_assert(rot >= FH_OS_ROTATE_NONE && rot <= FH_OS_ROTATE_MONTH);
	else
		fuzz_assert(rot == (FhOsRotation) 99);

	valid = fh_os_index_valid(index, &why);
	fuzz_assert(valid ? why == NULL : why != NULL);
	if (valid)
	{
		size_t		ilen = strlen(index);

		t = MIN_MS + (int64_t) ((uint64_t) t % (uint64_t) (MAX_MS - MIN_MS + 1));
		for (int k = FH_OS_ROTATE_NONE; k <= FH_OS_ROTATE_MONTH; k++)
		{
			memset(canary, 0x5a, sizeof(canary));
			n = fh_os_index_name(index, (FhOsRotation) k, t, canary,
								 FH_OS_INDEX_BUFSIZE);
			fuzz_assert(n == ilen + suffix_len[k]);
			fuzz_assert(strncmp(canary, index, ilen) == 0 && canary[n] == '\0');
			for (size_t j = FH_OS_INDEX_BUFSIZE; j < sizeof(canary); j++)
				fuzz_assert(canary[j] == 0x5a);
		}
	}
	free(index);
	free(period);
	return 0;
}
