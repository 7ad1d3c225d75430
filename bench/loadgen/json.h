/*
 * A minimal JSON reader for the few shapes earshot sends: an envelope
 * object, an array of strings, an object of strings, a string. It checks
 * syntax strictly enough to notice a mangled message, decodes string
 * escapes (\uXXXX to UTF-8, surrogate pairs included) and never allocates.
 */
#ifndef LG_JSON_H
#define LG_JSON_H

#include <stddef.h>

typedef struct {
    const char *p, *end;
} lg_jcur;

/* Skip whitespace; return the next byte or -1 at the end. */
int lg_j_peek(lg_jcur *c);
/* Consume byte ch after whitespace: 0, or -1 when it is not there. */
int lg_j_expect(lg_jcur *c, char ch);
/* Read a string into out (cap bytes, NUL-terminated). A string that does
 * not fit is an error. out may be NULL to skip. *len gets the decoded length. */
int lg_j_string(lg_jcur *c, char *out, size_t cap, size_t *len);
/* Skip any value. */
int lg_j_skip(lg_jcur *c);

/*
 * Split an envelope {"type": "...", "data": ...} (any key order, other keys
 * ignored): type into type_out, data as a cursor over its value (NULL p when
 * absent). 0 on success.
 */
int lg_j_envelope(const char *s, size_t n, char *type_out, size_t type_cap, lg_jcur *data);

#endif
