/* pool.c - thread pool with an ev_async completion queue (see pool.h). */
#include "pool.h"
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

struct pool_job {
	struct pool_job *next;
	pool_fn *work, *done;
	void *arg;
};

struct pool {
	struct ev_loop *loop;
	ev_async wake;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pool_job *todo, **todo_tail;
	struct pool_job *finished;   /* LIFO; order does not matter */
	pthread_t *threads;
	int n_threads;
	bool stopping;
};

static void *pool_thread(void *vp)
{
	struct pool *p = vp;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->todo == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->todo == NULL)
			break;
		struct pool_job *j = p->todo;
		p->todo = j->next;
		if (p->todo == NULL)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->mu);
		j->work(j->arg);
		pthread_mutex_lock(&p->mu);
		j->next = p->finished;
		p->finished = j;
		ev_async_send(p->loop, &p->wake);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pool_wake_cb(struct ev_loop *loop MP_UNUSED, ev_async *w, int revents MP_UNUSED)
{
	struct pool *p = container_of(w, struct pool, wake);
	pthread_mutex_lock(&p->mu);
	struct pool_job *j = p->finished;
	p->finished = NULL;
	pthread_mutex_unlock(&p->mu);
	while (j) {
		struct pool_job *next = j->next;
		j->done(j->arg);
		free(j);
		j = next;
	}
}

struct pool *pool_new(struct ev_loop *loop, int threads)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->todo_tail = &p->todo;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	ev_async_init(&p->wake, pool_wake_cb);
	ev_async_start(loop, &p->wake);
	/* Signals belong to the loop thread (libev), never to pool threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	p->threads = xcalloc((size_t)threads, sizeof(*p->threads));
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, pool_thread, p) != 0)
			fatal("cannot start pool thread %d", i);
		p->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p;
}

void pool_submit(struct pool *p, pool_fn *work, pool_fn *done, void *arg)
{
	struct pool_job *j = xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	*p->todo_tail = j;
	p->todo_tail = &j->next;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}


void pool_free(struct pool **pp)
{
	struct pool *p = *pp;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pool_wake_cb(p->loop, &p->wake, 0);
	ev_async_stop(p->loop, &p->wake);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p);
	*pp = NULL;
}
