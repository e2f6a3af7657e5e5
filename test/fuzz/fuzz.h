/*-------------------------------------------------------------------------
 *
 * fuzz.h
 *	  What the libFuzzer targets of test/fuzz share: cutting the fuzzer's
 *	  bytes into inputs (NUL-separated strings, integers) and failing with
 *	  a message when a property of the code under test does not hold.
 *
 * A target's input is a few leading bytes of integers, then strings
 * separated by NUL bytes: the strings the code under test takes are C
 * strings, so NUL is the one byte they cannot contain, and every other
 * byte (control characters, invalid UTF-8) reaches the code.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FH_FUZZ_H
#define FH_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct FuzzInput
{
	const uint8_t *p;
	size_t		n;
} FuzzInput;

/* up to 8 bytes as a little-endian integer; 0 when the input is used up */
static inline uint64_t
fuzz_u64(FuzzInput *in, int bytes)
{
	uint64_t	v = 0;

	for (int i = 0; i < bytes && in->n > 0; i++, in->p++, in->n--)
		v |= (uint64_t) in->p[0] << (8 * i);
	return v;
}

/*
 * The bytes up to the next NUL (or the end) as a malloc'd C string, the
 * NUL consumed; NULL when the input is used up.  Free with free().
 */
static inline char *
fuzz_string(FuzzInput *in)
{
	const uint8_t *end;
	size_t		len;
	char	   *s;

	if (in->n == 0)
		return NULL;
	end = memchr(in->p, '\0', in->n);
	len = end ? (size_t) (end - in->p) : in->n;
	s = malloc(len + 1);
	if (s == NULL)
		abort();
	memcpy(s, in->p, len);
	s[len] = '\0';
	in->p += len;
	in->n -= len;
	if (end)
	{
		in->p++;
		in->n--;
	}
	return s;
}

/*
 * before, then len bytes of data, then after, in a malloc'd buffer of
 * exactly that size (*size), so that a read past the end is a read past
 * the buffer.  Free with free().
 */
static inline char *
fuzz_framed(const uint8_t *data, size_t len, const char *before,
			const char *after, size_t *size)
{
	size_t		nb = strlen(before),
				na = strlen(after);
	char	   *b = malloc(nb + len + na + 1);

	if (b == NULL)
		abort();
	memcpy(b, before, nb);
	memcpy(b + nb, data, len);
	memcpy(b + nb + len, after, na);
	*size = nb + len + na;
	return b;
}

/* a growing malloc'd text, for the JSON a target writes back */
typedef struct FuzzText
{
	char	   *data;
	size_t		len;
	size_t		room;
} FuzzText;

static inline void
fuzz_append(FuzzText *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->room)
	{
		t->room = (t->len + n + 1) * 2;
		t->data = realloc(t->data, t->room);
		if (t->data == NULL)
			abort();
	}
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = '\0';
}

static inline void
fuzz_append_str(FuzzText *t, const char *s)
{
	fuzz_append(t, s, strlen(s));
}

/*
 * s as a JSON string: '"' and '\\' escaped, control characters as \u00XX,
 * every other byte as it is (the parsers under test take any byte >= 0x20)
 */
static inline void
fuzz_append_json_string(FuzzText *t, const char *s)
{
	fuzz_append(t, "\"", 1);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;
		char		esc[8];

		if (c == '"' || c == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) c;
			fuzz_append(t, esc, 2);
		}
		else if (c < 0x20)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			fuzz_append(t, esc, 6);
		}
		else
			fuzz_append(t, s, 1);
	}
	fuzz_append(t, "\"", 1);
}

/* a property of the code under test: abort (a libFuzzer crash) if broken */
#define fuzz_assert(cond) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "%s:%d: property broken: %s\n", \
					__FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* a fixed-size string buffer the code filled: NUL-terminated inside it */
#define fuzz_assert_terminated(buf, size) \
	fuzz_assert(memchr((buf), '\0', (size)) != NULL)

#endif							/* FH_FUZZ_H */
