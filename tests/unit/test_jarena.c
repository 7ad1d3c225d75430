/*
 * test_jarena - the block allocator jansson uses in the server: carving,
 * rewinding, a value kept longer pinning only its own block, large requests
 * and other threads going to malloc, and a decoded client message living
 * and dying in it.
 */
#include "helpers.h"

#include <jansson.h>
#include <pthread.h>

#include "jarena.h"
#include "protocol.h"

static int setup(void **state)
{
    (void)state;
    es_jarena_own();
    assert_int_equal(es_jarena_live(), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(es_jarena_live(), 0);
    return 0;
}

TEST(t_small_allocations_share_a_block_and_rewind)
{
    size_t blocks = es_jarena_blocks();
    unsigned char *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = es_jarena_alloc(24);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, 24);
    }
    assert_int_equal(es_jarena_live(), 100);
    assert_true(es_jarena_blocks() <= blocks + 1);
    for (int i = 0; i < 100; i++) /* nobody wrote over anybody */
        for (int k = 0; k < 24; k++)
            assert_int_equal(p[i][k], i);
    for (int i = 99; i >= 0; i--)
        es_jarena_free(p[i]);
    assert_int_equal(es_jarena_live(), 0);
    /* the block starts over: the next allocation is the first one again */
    unsigned char *again = es_jarena_alloc(24);
    assert_ptr_equal(again, p[0]);
    es_jarena_free(again);
}

TEST(t_kept_value_pins_only_its_block)
{
    enum { N = 1000, SIZE = 512 }; /* about 120 per block: nine blocks */
    unsigned char *p[N];
    for (int i = 0; i < N; i++)
        p[i] = es_jarena_alloc(SIZE);
    assert_true(es_jarena_blocks() >= 8);
    for (int i = 1; i < N; i++)
        es_jarena_free(p[i]);
    /* p[0]'s block, the current one, and one spare */
    assert_int_equal(es_jarena_live(), 1);
    assert_true(es_jarena_blocks() <= 3);
    memset(p[0], 0x5a, SIZE); /* still usable */
    es_jarena_free(p[0]);
    assert_true(es_jarena_blocks() <= 2);
    /* no block is lost: allocating again reuses them */
    size_t blocks = es_jarena_blocks();
    for (int i = 0; i < 2 * ES_JARENA_BLOCK / (SIZE + 16) - 2; i++)
        p[i] = es_jarena_alloc(SIZE);
    assert_int_equal(es_jarena_blocks(), blocks);
    for (int i = 0; i < 2 * ES_JARENA_BLOCK / (SIZE + 16) - 2; i++)
        es_jarena_free(p[i]);
}

TEST(t_large_requests_go_to_malloc)
{
    size_t blocks = es_jarena_blocks();
    unsigned char *big = es_jarena_alloc(ES_JARENA_BLOCK / 4 + 1);
    assert_non_null(big);
    memset(big, 1, ES_JARENA_BLOCK / 4 + 1);
    assert_int_equal(es_jarena_live(), 0);
    assert_int_equal(es_jarena_blocks(), blocks);
    es_jarena_free(big);
    es_jarena_free(NULL);
}

static void *other_thread(void *arg)
{
    (void)arg;
    void *p[50];
    for (int i = 0; i < 50; i++)
        p[i] = es_jarena_alloc(32);
    size_t live = es_jarena_live();
    for (int i = 0; i < 50; i++)
        es_jarena_free(p[i]);
    return (void *)(uintptr_t)live;
}

TEST(t_other_threads_use_malloc)
{
    pthread_t t;
    void *live;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &live), 0);
    assert_int_equal((uintptr_t)live, 0);
}

TEST(t_decoded_message_lives_in_the_arena)
{
    json_set_alloc_funcs(es_jarena_alloc, es_jarena_free);
    es_msg m;
    char err[ES_ERROR_MAX];
    const char *text = "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"alice\",\"map_id\":3,"
                       "\"x\":10,\"y\":-4,\"channel\":2}}";
    assert_int_equal(es_protocol_parse(text, strlen(text), &m, err), 0);
    assert_true(es_jarena_live() > 5);
    assert_int_equal(m.type, ES_MSG_UPDATE_POSITION);
    assert_string_equal(m.client_id, "alice");
    assert_int_equal(m.pos.x, 10);
    es_msg_release(&m);
    assert_int_equal(es_jarena_live(), 0);
    /* a refused message leaves nothing behind either */
    const char *bad = "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"\"}}";
    assert_int_equal(es_protocol_parse(bad, strlen(bad), &m, err), -1);
    assert_int_equal(es_jarena_live(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_small_allocations_share_a_block_and_rewind),
        T(t_kept_value_pins_only_its_block),
        T(t_large_requests_go_to_malloc),
        T(t_other_threads_use_malloc),
        T(t_decoded_message_lives_in_the_arena),
    };
    return cmocka_run_group_tests_name("jarena", tests, NULL, NULL);
}
