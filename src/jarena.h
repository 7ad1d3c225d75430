/*
 * jarena - where jansson's values live in the server: blocks carved by a
 * bump pointer, for the thread that runs the event loop.
 *
 * Decoding one client message makes a dozen small allocations (objects,
 * their tables, strings, numbers) that all die when the message has been
 * handled. Carving them from a 64 KiB block and rewinding the block when
 * its last allocation is freed replaces a malloc/free pair per JSON value
 * with a pointer bump and a counter. Each allocation carries a header
 * naming its block, so a value kept longer pins only its own block, never
 * the whole arena. Requests larger than a quarter block, and every request
 * from another thread, go to malloc as before.
 *
 * Under AddressSanitizer es_jarena_install() does nothing, so that every
 * jansson allocation stays visible to it.
 */
#ifndef EARSHOT_JARENA_H
#define EARSHOT_JARENA_H

#include <stddef.h>

#define ES_JARENA_BLOCK (64 * 1024)

/* Make jansson allocate through the arena; the calling thread owns it. Call
 * once, before any jansson value exists. */
void es_jarena_install(void);

/* The allocator itself (what jansson calls once installed). */
void *es_jarena_alloc(size_t n);
void es_jarena_free(void *p);

/* Claim the arena for the calling thread (es_jarena_install does this). */
void es_jarena_own(void);

/* For tests: arena allocations not yet freed, and blocks held
 * (in use or kept as the one spare). */
size_t es_jarena_live(void);
size_t es_jarena_blocks(void);

#endif
