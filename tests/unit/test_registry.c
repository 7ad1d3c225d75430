/*
 * test_registry - the client_id -> session table, checked against a model
 * through many inserts, lookups and removals (open addressing with
 * backward-shift deletion), plus the send queue it travels with.
 */
#include "helpers.h"

#include "buf.h"
#include "idtable.h"
#include "sendq.h"

static es_session *mk(const char *id)
{
    es_session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    size_t n = strlen(id);
    assert_true(n <= ES_ID_MAX);
    memcpy(s->id, id, n + 1);
    s->id_len = n;
    return s;
}

static void count_each(es_session *s, void *ud)
{
    (void)s;
    (*(size_t *)ud)++;
}

TEST(t_empty)
{
    es_idtable r;
    es_idtable_init(&r);
    assert_int_equal(r.count, 0);
    assert_null(es_idtable_find(&r, "a", 1));
    size_t n = 0;
    es_idtable_each(&r, count_each, &n);
    assert_int_equal(n, 0);
    es_idtable_free(&r);
}

TEST(t_insert_find_remove)
{
    es_idtable r;
    es_idtable_init(&r);
    es_session *a = mk("alice"), *b = mk("bob"), *c = mk("b");
    es_idtable_insert(&r, a);
    es_idtable_insert(&r, b);
    es_idtable_insert(&r, c);
    assert_int_equal(r.count, 3);
    assert_ptr_equal(es_idtable_find(&r, "alice", 5), a);
    assert_ptr_equal(es_idtable_find(&r, "bob", 3), b);
    assert_ptr_equal(es_idtable_find(&r, "b", 1), c);
    assert_null(es_idtable_find(&r, "bo", 2));
    assert_null(es_idtable_find(&r, "alicex", 6));
    /* lookups use the length, not a NUL */
    assert_ptr_equal(es_idtable_find(&r, "bobby", 3), b);
    es_idtable_remove(&r, b);
    assert_int_equal(r.count, 2);
    assert_null(es_idtable_find(&r, "bob", 3));
    assert_ptr_equal(es_idtable_find(&r, "b", 1), c);
    es_idtable_remove(&r, b); /* not there: no-op */
    assert_int_equal(r.count, 2);
    es_idtable_free(&r);
    free(a), free(b), free(c);
}

TEST(t_remove_only_the_holder)
{
    es_idtable r;
    es_idtable_init(&r);
    es_session *holder = mk("x"), *other = mk("x");
    es_idtable_insert(&r, holder);
    es_idtable_remove(&r, other); /* same id, not the holder */
    assert_int_equal(r.count, 1);
    assert_ptr_equal(es_idtable_find(&r, "x", 1), holder);
    es_idtable_free(&r);
    free(holder), free(other);
}

TEST(t_ids_utf8)
{
    es_idtable r;
    es_idtable_init(&r);
    es_session *u = mk("\xC3\xA9t\xC3\xA9"), *e = mk("ete");
    es_idtable_insert(&r, u);
    es_idtable_insert(&r, e);
    assert_ptr_equal(es_idtable_find(&r, "\xC3\xA9t\xC3\xA9", 5), u);
    assert_ptr_equal(es_idtable_find(&r, "ete", 3), e);
    assert_null(es_idtable_find(&r, "\xC3\xA9t", 3));
    es_idtable_free(&r);
    free(u), free(e);
}

TEST(t_random_against_model)
{
    enum { N = 3000, STEPS = 40000 };
    static es_session *pool[N];
    static int in[N];
    memset(in, 0, sizeof in);
    for (int i = 0; i < N; i++)
        pool[i] = mk(fmt("client-%d", i * 7919 % 100003));
    es_idtable r;
    es_idtable_init(&r);
    uint64_t rng = 99;
    size_t live = 0;
    for (int step = 0; step < STEPS; step++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((rng >> 33) % N);
        es_session *s = pool[i];
        if (in[i]) {
            es_idtable_remove(&r, s);
            in[i] = 0;
            live--;
        } else {
            es_idtable_insert(&r, s);
            in[i] = 1;
            live++;
        }
        assert_int_equal(r.count, live);
        /* a sample of lookups every step, all of them now and then */
        for (int k = 0; k < 8; k++) {
            int j = (int)((rng >> (k * 4)) % N);
            es_session *found = es_idtable_find(&r, pool[j]->id, pool[j]->id_len);
            if (in[j])
                assert_ptr_equal(found, pool[j]);
            else
                assert_null(found);
        }
        if (step % 5000 == 0) {
            for (int j = 0; j < N; j++) {
                es_session *found = es_idtable_find(&r, pool[j]->id, pool[j]->id_len);
                assert_ptr_equal(found, in[j] ? pool[j] : NULL);
            }
            size_t n = 0;
            es_idtable_each(&r, count_each, &n);
            assert_int_equal(n, live);
        }
    }
    for (int j = 0; j < N; j++) {
        if (in[j])
            es_idtable_remove(&r, pool[j]);
        free(pool[j]);
    }
    assert_int_equal(r.count, 0);
    es_idtable_free(&r);
}

/* ---- send queue ---------------------------------------------------------- */

TEST(t_sendq_fifo_and_bytes)
{
    es_sendq q;
    es_sendq_init(&q);
    assert_null(es_sendq_peek(&q));
    assert_int_equal(es_sendq_push(&q, "one", 3, 10), 0);
    assert_int_equal(es_sendq_push(&q, "two!", 4, 10), 0);
    assert_int_equal(q.bytes, 7);
    assert_int_equal(q.count, 2);
    assert_int_equal(es_sendq_push(&q, "four", 4, 10), -1); /* 11 > 10 */
    assert_int_equal(q.bytes, 7);
    assert_int_equal(es_sendq_push(&q, "xyz", 3, 10), 0);  /* exactly 10 */
    es_qmsg *m = es_sendq_peek(&q);
    assert_int_equal(m->len, 3);
    assert_memory_equal(es_qmsg_payload(m), "one", 3);
    es_sendq_pop(&q);
    m = es_sendq_peek(&q);
    assert_memory_equal(es_qmsg_payload(m), "two!", 4);
    es_sendq_pop(&q);
    m = es_sendq_peek(&q);
    assert_memory_equal(es_qmsg_payload(m), "xyz", 3);
    assert_int_equal(q.bytes, 3);
    es_sendq_pop(&q);
    assert_null(es_sendq_peek(&q));
    assert_int_equal(q.bytes, 0);
    assert_int_equal(q.count, 0);
    es_sendq_pop(&q); /* empty: no-op */
    assert_int_equal(es_sendq_push(&q, "again", 5, 10), 0);
    es_sendq_clear(&q);
    assert_int_equal(q.count, 0);
    assert_null(q.tail);
}

TEST(t_sendq_too_big_refused_even_when_empty)
{
    es_sendq q;
    es_sendq_init(&q);
    assert_int_equal(es_sendq_push(&q, "0123456789A", 11, 10), -1);
    assert_int_equal(q.count, 0);
    assert_int_equal(es_sendq_push(&q, "", 0, 0), 0); /* empty message, zero cap */
    assert_int_equal(q.count, 1);
    es_sendq_clear(&q);
}

TEST(t_sendq_headroom)
{
    es_sendq q;
    es_sendq_init(&q);
    assert_int_equal(es_sendq_push(&q, "abc", 3, 100), 0);
    es_qmsg *m = es_sendq_peek(&q);
    assert_ptr_equal(es_qmsg_payload(m), m->mem + ES_WIRE_HEADROOM);
    es_sendq_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_empty),
        cmocka_unit_test(t_insert_find_remove),
        cmocka_unit_test(t_remove_only_the_holder),
        cmocka_unit_test(t_ids_utf8),
        cmocka_unit_test(t_random_against_model),
        cmocka_unit_test(t_sendq_fifo_and_bytes),
        cmocka_unit_test(t_sendq_too_big_refused_even_when_empty),
        cmocka_unit_test(t_sendq_headroom),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
