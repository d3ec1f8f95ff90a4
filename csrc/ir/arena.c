/* The arena: chunks of at least 16 KiB, bump-allocated, freed together.
 * Guarantees: every block is zeroed and 16-byte aligned; a request larger than a
 * chunk gets a chunk of its own. */
#include "ir/ir.h"

#define CHUNK 16384

struct tj_arena_chunk {
    tj_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *tj_arena_alloc(tj_arena *a, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    if (!bytes) bytes = 16;
    tj_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < bytes) {
        size_t cap = bytes > CHUNK ? bytes : CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        if (a->head && bytes > CHUNK) {   /* keep filling the current chunk */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

void tj_arena_free(tj_arena *a) {
    for (tj_arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}
