/*
 * base64.c: how fast OpenSSL's base64 encodes 134-byte records on this
 * machine, apart from the worker.  bench/delivery.sh prints it next to the
 * Firehose-format row: that row costs at least the raw row's work a record
 * plus this.  The records are encoded as util.c's fh_base64_encode does
 * (whole 3-byte groups in one EVP_EncodeBlock call, the rest in a second)
 * into one output buffer, 1M records a round, best of 5 rounds.
 *
 * Prints: "<us a record> <MB/s of input>".
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RECORDS 1000000
#define LEN 134

static double
seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int
main(void)
{
	unsigned char *src = malloc((size_t) RECORDS * LEN);
	unsigned char *dst = malloc((size_t) RECORDS * ((LEN + 2) / 3 * 4 + 1));
	double		best = 1e9;
	size_t		out = 0;

	if (src == NULL || dst == NULL)
		return 1;
	srand(1);
	for (size_t i = 0; i < (size_t) RECORDS * LEN; i++)
		src[i] = (unsigned char) rand();
	for (int round = 0; round < 5; round++)
	{
		double		t = seconds();

		out = 0;
		for (size_t i = 0; i < RECORDS; i++)
		{
			const unsigned char *r = src + i * LEN;

			out += EVP_EncodeBlock(dst + out, r, LEN / 3 * 3);
			out += EVP_EncodeBlock(dst + out, r + LEN / 3 * 3, LEN % 3);
		}
		t = seconds() - t;
		if (t < best)
			best = t;
	}
	if (out != (size_t) RECORDS * ((LEN + 2) / 3 * 4))
		return 1;				/* not what base64 makes of them */
	printf("%.4f %.0f\n", best / RECORDS * 1e6, (double) RECORDS * LEN / best / 1e6);
	return 0;
}
