/*-------------------------------------------------------------------------
 *
 * utf8.c
 *	  Decoding one UTF-8 character (see utf8.h).
 *
 *-------------------------------------------------------------------------
 */
#include "utf8.h"

int
fh_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t	c = s[0];
	int			n;
	int			i;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		n = 2;
		c &= 0x1F;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		c &= 0x0F;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		c &= 0x07;
	}
	else
		return 0;
	if ((size_t) n > len)
		return 0;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
		(c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
		return 0;
	*cp = c;
	return n;
}
