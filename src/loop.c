#include "loop.h"

#include <ev.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct es_loop {
    es_loop_ops ops;
    struct lws_context *ctx;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t reload; /* poll: SIGHUP seen, not yet handled */

    /* libev (epoll) when ev is set, else libwebsockets' own poll() */
    struct ev_loop *ev;
    void *foreign_loops[1];
    ev_prepare ev_flush; /* end of each pass: ops.flush */
    ev_signal ev_sigint, ev_sigterm, ev_sighup;
    ev_timer ev_drain;
    double drain_deadline;
};

struct ev_loop *es_loop_ev(es_loop *l) { return l->ev; }

static void run_reload(es_loop *l)
{
    l->reload = 0;
    if (l->ops.reload)
        l->ops.reload(l->ops.ud);
}

static int drained(es_loop *l) { return l->ops.drained && l->ops.drained(l->ops.ud); }

/* ---- libev ---------------------------------------------------------------- */

/* Runs once per loop iteration, after every ready socket was served and
 * before the loop waits again: the iteration's NearbyPeers go out. */
static void ev_on_prepare(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev, (void)revents;
    es_loop *l = w->data;
    l->ops.flush(l->ops.ud);
}

static void ev_on_signal(struct ev_loop *ev, ev_signal *w, int revents)
{
    (void)revents;
    es_loop *l = w->data;
    (void)ev;
    if (w->signum == SIGHUP)
        run_reload(l);
    else
        es_loop_stop(l);
}

static void ev_on_drain(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)revents;
    es_loop *l = w->data;
    if (drained(l) || es_now() >= l->drain_deadline)
        ev_break(ev, EVBREAK_ALL);
}

static int ev_serve(es_loop *l)
{
    ev_signal *w[3] = {&l->ev_sigint, &l->ev_sigterm, &l->ev_sighup};
    int sig[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        ev_signal_init(w[i], ev_on_signal, sig[i]);
        w[i]->data = l;
        ev_signal_start(l->ev, w[i]);
    }
    ev_run(l->ev, 0);
    for (int i = 0; i < 3; i++)
        ev_signal_stop(l->ev, w[i]);
    return 0;
}

/* ---- poll: signals set a flag and wake the loop ---------------------------- */

static es_loop *signalled;

static void on_signal(int sig)
{
    if (!signalled)
        return;
    if (sig != SIGHUP) {
        es_loop_stop(signalled);
        return;
    }
    signalled->reload = 1;
    lws_cancel_service(signalled->ctx); /* the one lws call that is signal-safe */
}

static int poll_serve(es_loop *l)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    signalled = l;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    while (!l->stop) {
        if (lws_service(l->ctx, 0) < 0)
            return -1;
        l->ops.flush(l->ops.ud);
        if (l->reload)
            run_reload(l);
    }
    return 0;
}

/* ---- the API --------------------------------------------------------------- */

es_loop *es_loop_create(es_event_loop kind, const es_loop_ops *ops)
{
    es_loop *l = es_xcalloc(1, sizeof *l);
    l->ops = *ops;
    if (kind == ES_LOOP_LIBEV)
        l->ev = ev_default_loop(EVFLAG_AUTO);
    return l;
}

void es_loop_context_info(es_loop *l, struct lws_context_creation_info *info)
{
    if (!l->ev)
        return;
    /*
     * libev (epoll) instead of libwebsockets' poll(): poll() walks every
     * socket on every wakeup, which at thousands of connections costs more
     * than earshot's whole work per message. earshot owns the loop and
     * libwebsockets joins it.
     */
    l->foreign_loops[0] = l->ev;
    info->foreign_loops = l->foreign_loops;
    info->options |= LWS_SERVER_OPTION_LIBEV;
}

const char *es_loop_context_hint(const es_loop *l)
{
    return l->ev ? " with libev (is the package libwebsockets-evlib-ev installed? "
                   "server.event_loop = \"poll\" does without it)"
                 : "";
}

void es_loop_attach(es_loop *l, struct lws_context *ctx)
{
    l->ctx = ctx;
    if (!l->ev)
        return;
    ev_prepare_init(&l->ev_flush, ev_on_prepare);
    l->ev_flush.data = l;
    ev_prepare_start(l->ev, &l->ev_flush);
    ev_unref(l->ev); /* it alone does not keep the loop running */
}

int es_loop_run(es_loop *l) { return l->ev ? ev_serve(l) : poll_serve(l); }

/* Also what SIGINT and SIGTERM do in poll mode, from the signal handler:
 * a flag and lws_cancel_service(), the one lws call that is signal-safe. */
void es_loop_stop(es_loop *l)
{
    l->stop = 1;
    if (l->ev)
        ev_break(l->ev, EVBREAK_ALL);
    else if (l->ctx)
        lws_cancel_service(l->ctx);
}

int es_loop_drain(es_loop *l, double timeout)
{
    l->drain_deadline = es_now() + timeout;
    if (l->ev) {
        ev_timer_init(&l->ev_drain, ev_on_drain, 0.0, 0.02);
        l->ev_drain.data = l;
        ev_timer_start(l->ev, &l->ev_drain);
        ev_run(l->ev, 0);
        ev_timer_stop(l->ev, &l->ev_drain);
    } else {
        while (!drained(l) && es_now() < l->drain_deadline) {
            if (lws_service(l->ctx, 0) < 0)
                break;
            l->ops.flush(l->ops.ud);
        }
    }
    return drained(l) ? 0 : -1;
}

void es_loop_detach(es_loop *l)
{
    if (l->ev && l->ctx) {
        ev_ref(l->ev);
        ev_prepare_stop(l->ev, &l->ev_flush);
    }
    if (signalled == l) /* a signal from here on has no context to wake */
        signalled = NULL;
    l->ctx = NULL;
}

void es_loop_destroy(es_loop *l)
{
    if (!l)
        return;
    if (l->ev) {
        ev_run(l->ev, EVRUN_NOWAIT); /* let libwebsockets' watchers wind down */
        ev_loop_destroy(l->ev);
    }
    free(l);
}
