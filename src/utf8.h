/*-------------------------------------------------------------------------
 *
 * utf8.h
 *	  Decoding one UTF-8 character, for the pure C files (s3_keys.c,
 *	  os_index.c) that check names the way Firehose's Java does: strictly,
 *	  and counting UTF-16 units.  No PostgreSQL headers, so the unit tests
 *	  build it alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FH_UTF8_H
#define FH_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decode the character at s (len bytes left) into *cp; returns its length
 * in bytes, or 0 when it is not well-formed UTF-8 (overlong forms,
 * surrogates and values above U+10FFFF included).
 */
extern int	fh_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

#endif							/* FH_UTF8_H */
