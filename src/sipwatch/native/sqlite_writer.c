/* sipwatch._native.SqliteWriter: a thread with its own SQLite connection that inserts row
 * buffers (rowbuf.h) with one prepared statement, in transactions of batch_rows rows.
 *
 * Producers (add_rows() of row tuples and add_records() of Records from Python,
 * sw_writer_submit() from the C bulk path) pack rows and put whole buffers on a queue bounded
 * by max_queued_bytes (they wait, without the GIL, while it is full). The thread never touches Python: it takes a buffer, binds every value straight
 * from it (SQLITE_STATIC), steps, frees the buffer. It commits when the transaction holds
 * batch_rows rows or when the queue runs empty, so everything submitted is committed as soon
 * as the thread is idle, and sync() only has to wait for that.
 *
 * When SQLite fails (disk full, I/O error, ...) the transaction is rolled back, the thread
 * keeps taking buffers and frees them unwritten (producers never block for ever), and the
 * next add/sync/close raises WriterError with SQLite's message; reset() makes it write again.
 * The thread is joined by close() and, at the latest, when the object is freed: it never
 * outlives it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "module.h"
#include "recordview.h"
#include "rowbuf_impl.h"

#define SW_BUSY_TIMEOUT_MS 30000  /* default: as the store's connection (store/sqlite.py) */
#define SW_CACHE_PRAGMA "PRAGMA cache_size=-16384" /* 16 MiB, as the store's connection */
#define SW_WAIT_SLICE_MS 100       /* waiting producers look at signals (Ctrl-C) this often */

typedef struct {
    PyObject_HEAD
    /* set up by __init__, then used by the thread only */
    sqlite3 *db;
    sqlite3_stmt *insert, *begin, *commit, *rollback;
    int ncols;
    long long batch_rows;
    long long max_bytes;
    pid_t pid; /* the process that owns the thread (a forked child must not join it) */

    pthread_mutex_t mu;
    pthread_cond_t work;  /* -> thread: a buffer was queued, or closing */
    pthread_cond_t space; /* -> producers: bytes left the queue, or the thread failed */
    pthread_cond_t done;  /* -> sync: everything submitted is committed (or failed) */
    int sync_ok;          /* mutex and conditions initialised */
    pthread_t thread;
    int running; /* the thread was started and not joined yet */

    /* under mu */
    sw_rowbuf *head, *tail;
    long long queued_bytes;      /* queued plus the buffer the thread is writing */
    unsigned long long submitted; /* buffers queued */
    unsigned long long committed; /* buffers written and committed (or dropped after a failure) */
    long long rows_submitted;     /* rows queued, since the start */
    long long inserted, batches;  /* since the last sync: rows inserted, transactions */
    long long rows_done;          /* since the last sync: rows of the committed transactions */
    long long synced_rows;        /* rows_done as the last sync()/close() took it */
    int closing;
    int failed;
    char *error;        /* SQLite's message, once failed */
    int error_reported; /* raised once already */
    int closed;         /* close() finished (thread joined) */
} Writer;

static PyTypeObject WriterType;
static PyObject *WriterError;
static PyObject *clean_text; /* sipwatch.store.writer.clean_text, imported when first needed */

/* --- the thread -------------------------------------------------------------------------- */

static char *dup_message(sqlite3 *db, const char *what)
{
    const char *msg = db != NULL ? sqlite3_errmsg(db) : "out of memory";
    size_t n = strlen(what) + strlen(msg) + 4;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s%s", what, msg);
    return s;
}

/* rc of a statement that ran to completion (reset, so it can run again) */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Insert every row of b into the open transaction; adds to *rows and *inserted. */
static int insert_buffer(Writer *w, const sw_rowbuf *b, long long *rows, long long *inserted)
{
    sqlite3_stmt *st = w->insert;
    size_t pos = 0;
    for (Py_ssize_t r = 0; r < b->rows; r++) {
        for (int c = 1; c <= w->ncols; c++) {
            sw_value v;
            int rc;
            if (sw_rowbuf_read(b, &pos, &v) < 0)
                return SQLITE_CORRUPT; /* cannot happen: the packers wrote it */
            switch (v.tag) {
            case SW_V_NULL:
                rc = sqlite3_bind_null(st, c);
                break;
            case SW_V_INT:
                rc = sqlite3_bind_int64(st, c, (sqlite3_int64)v.i);
                break;
            case SW_V_REAL:
                rc = sqlite3_bind_double(st, c, v.d);
                break;
            case SW_V_TEXT:
                rc = sqlite3_bind_text(st, c, (const char *)v.p, (int)v.n, SQLITE_STATIC);
                break;
            default:
                rc = sqlite3_bind_blob(st, c, v.p, (int)v.n, SQLITE_STATIC);
                break;
            }
            if (rc != SQLITE_OK)
                return rc;
        }
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            return rc;
        }
        *inserted += sqlite3_changes(w->db);
        sqlite3_reset(st);
        (*rows)++;
    }
    return SQLITE_OK;
}

/* Record the thread's failure (error may be NULL: out of memory for the message). */
static void fail_locked(Writer *w, char *error)
{
    if (!w->failed) {
        w->failed = 1;
        w->error = error;
    }
    else {
        free(error);
    }
}

static void *writer_main(void *arg)
{
    Writer *w = arg;
    int in_txn = 0;
    long long txn_rows = 0, txn_inserted = 0;
    unsigned long long handled = 0;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->head == NULL && !w->closing)
            pthread_cond_wait(&w->work, &w->mu);
        if (w->head == NULL)
            break; /* closing, and everything is committed (the queue ran empty) */
        sw_rowbuf *b = w->head;
        w->head = b->next;
        if (w->head == NULL)
            w->tail = NULL;
        int skip = w->failed; /* after a failure: drain without writing until reset() */
        pthread_mutex_unlock(&w->mu);

        char *error = NULL;
        if (!skip) {
            int rc = SQLITE_OK;
            if (!in_txn) {
                rc = run(w->begin);
                in_txn = rc == SQLITE_OK;
            }
            if (rc == SQLITE_OK)
                rc = insert_buffer(w, b, &txn_rows, &txn_inserted);
            if (rc != SQLITE_OK)
                error = dup_message(w->db, "writing the trace store failed: ");
        }
        int failed = error != NULL;
        long long size = sw_rowbuf_bytes(b);
        sw_rowbuf_free(b);
        handled++;

        pthread_mutex_lock(&w->mu);
        w->queued_bytes -= size;
        pthread_cond_broadcast(&w->space);
        if (!failed && in_txn && (txn_rows >= w->batch_rows || w->head == NULL)) {
            pthread_mutex_unlock(&w->mu);
            int rc = run(w->commit);
            if (rc != SQLITE_OK) {
                error = dup_message(w->db, "writing the trace store failed: ");
                failed = 1;
            }
            pthread_mutex_lock(&w->mu);
            if (rc == SQLITE_OK) {
                in_txn = 0;
                w->inserted += txn_inserted;
                w->rows_done += txn_rows;
                w->batches++;
                txn_rows = txn_inserted = 0;
            }
        }
        if (failed) {
            /* a failed statement or COMMIT: give the transaction up (its rows are lost and
             * reported) */
            if (in_txn) {
                pthread_mutex_unlock(&w->mu);
                if (!sqlite3_get_autocommit(w->db))
                    run(w->rollback);
                pthread_mutex_lock(&w->mu);
            }
            in_txn = 0;
            txn_rows = txn_inserted = 0;
            fail_locked(w, error); /* error may be NULL (no memory for the message) */
        }
        if (!in_txn) {
            w->committed = handled;
            pthread_cond_broadcast(&w->done);
        }
        if (failed)
            pthread_cond_broadcast(&w->space);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* --- waiting without the GIL --------------------------------------------------------------- */

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int owner_check(Writer *w)
{
    if (w->pid != getpid()) {
        PyErr_SetString(WriterError, "the store writer belongs to the parent process");
        return -1;
    }
    return 0;
}

static int raise_failed(Writer *w)
{
    pthread_mutex_lock(&w->mu); /* no Python calls under mu (they could run a finalizer) */
    w->error_reported = 1;
    char *copy = w->error != NULL ? strdup(w->error) : NULL;
    pthread_mutex_unlock(&w->mu);
    PyErr_SetString(WriterError, copy != NULL ? copy : "writing the trace store failed");
    free(copy);
    return -1;
}

static void enqueue_locked(Writer *w, sw_rowbuf *b, long long size)
{
    b->next = NULL;
    if (w->tail != NULL)
        w->tail->next = b;
    else
        w->head = b;
    w->tail = b;
    w->queued_bytes += size;
    w->submitted++;
    w->rows_submitted += b->rows;
    pthread_cond_signal(&w->work);
}

int sw_writer_submit(PyObject *obj, sw_rowbuf *b)
{
    if (!PyObject_TypeCheck(obj, &WriterType)) {
        sw_rowbuf_free(b);
        PyErr_SetString(PyExc_TypeError, "sw_writer_submit needs a sipwatch._native.SqliteWriter");
        return -1;
    }
    Writer *w = (Writer *)obj;
    if (!w->running) {
        sw_rowbuf_free(b);
        PyErr_SetString(PyExc_ValueError, "the store writer is closed");
        return -1;
    }
    if (owner_check(w) < 0) {
        sw_rowbuf_free(b);
        return -1;
    }
    if (b->cur != 0) {
        sw_rowbuf_free(b);
        PyErr_SetString(PyExc_SystemError, "sw_writer_submit: the buffer ends in an open row");
        return -1;
    }
    if (b->ncols != w->ncols) {
        sw_rowbuf_free(b);
        PyErr_Format(PyExc_ValueError, "rows of %d values for a statement of %d", b->ncols,
                     w->ncols);
        return -1;
    }
    if (b->rows == 0) {
        sw_rowbuf_free(b);
        return 0;
    }
    long long size = sw_rowbuf_bytes(b);
    /* 0 queued, 1 must wait, 2 failed, 3 closing; under mu */
#define SW_TRY_QUEUE()                                                                        \
    (w->failed    ? 2                                                                         \
     : w->closing ? 3                                                                         \
     : (w->queued_bytes == 0 || w->queued_bytes + size <= w->max_bytes)                       \
         ? (enqueue_locked(w, b, size), 0)                                                    \
         : 1)
    /* the common case first, without giving up the GIL (mu is only ever held briefly, and
     * never by a thread that waits for the GIL) */
    pthread_mutex_lock(&w->mu);
    int state = SW_TRY_QUEUE();
    pthread_mutex_unlock(&w->mu);
    while (state == 1) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&w->mu);
        struct timespec until;
        deadline_in(&until, SW_WAIT_SLICE_MS);
        int rc = 0;
        while ((state = SW_TRY_QUEUE()) == 1 && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&w->space, &w->mu, &until);
        pthread_mutex_unlock(&w->mu);
        Py_END_ALLOW_THREADS
        if (state == 1 && PyErr_CheckSignals() < 0) {
            /* interrupted while the queue is full: queue it all the same (one buffer over the
             * bound), so that no row is lost, and let the exception through */
            pthread_mutex_lock(&w->mu);
            int closing = w->closing;
            if (!closing)
                enqueue_locked(w, b, size);
            pthread_mutex_unlock(&w->mu);
            if (closing)
                sw_rowbuf_free(b);
            return -1;
        }
    }
#undef SW_TRY_QUEUE
    if (state == 0)
        return 0;
    sw_rowbuf_free(b);
    if (state == 2)
        return raise_failed(w);
    PyErr_SetString(PyExc_ValueError, "the store writer is closed");
    return -1;
}

/* Wait until everything submitted is committed (or the thread failed); 0, or -1 with the
 * signal handler's exception (Ctrl-C). */
static int wait_committed(Writer *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned long long target = w->submitted;
    pthread_mutex_unlock(&w->mu);
    for (;;) {
        int reached;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&w->mu);
        struct timespec until;
        deadline_in(&until, SW_WAIT_SLICE_MS);
        int rc = 0;
        while (!w->failed && w->committed < target && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&w->done, &w->mu, &until);
        reached = w->failed || w->committed >= target;
        pthread_mutex_unlock(&w->mu);
        Py_END_ALLOW_THREADS
        if (reached)
            return 0;
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/* Stop the thread (it writes what is queued first) and join it; the GIL is released. */
static void stop_thread(Writer *w)
{
    if (!w->running)
        return;
    pthread_mutex_lock(&w->mu);
    w->closing = 1;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(w->thread, NULL);
    Py_END_ALLOW_THREADS
    w->running = 0;
}

static void close_db(Writer *w)
{
    sqlite3_finalize(w->insert);
    sqlite3_finalize(w->begin);
    sqlite3_finalize(w->commit);
    sqlite3_finalize(w->rollback);
    w->insert = w->begin = w->commit = w->rollback = NULL;
    if (w->db != NULL) {
        sqlite3_close_v2(w->db);
        w->db = NULL;
    }
}

static PyObject *take_counts(Writer *w)
{
    pthread_mutex_lock(&w->mu);
    long long inserted = w->inserted, batches = w->batches;
    w->synced_rows = w->rows_done;
    w->inserted = w->batches = w->rows_done = 0;
    pthread_mutex_unlock(&w->mu);
    return Py_BuildValue("(LL)", inserted, batches);
}

/* --- the Python type ------------------------------------------------------------------------ */

static PyObject *Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    Writer *w = (Writer *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    if (pthread_mutex_init(&w->mu, NULL) != 0 || pthread_cond_init(&w->work, NULL) != 0 ||
        pthread_cond_init(&w->space, NULL) != 0 || pthread_cond_init(&w->done, NULL) != 0) {
        Py_DECREF(w); /* sync_ok is 0: dealloc does not destroy them */
        PyErr_SetString(PyExc_OSError, "cannot create the writer's mutex");
        return NULL;
    }
    w->sync_ok = 1;
    w->pid = getpid();
    return (PyObject *)w;
}

static int prepare(Writer *w, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v3(w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        PyErr_Format(WriterError, "cannot prepare %.60s: %s", sql, sqlite3_errmsg(w->db));
        return -1;
    }
    return 0;
}

static int Writer_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    Writer *w = (Writer *)self;
    static char *kwlist[] = {"path",           "insert_sql",      "ncols", "batch_rows",
                             "max_queued_bytes", "busy_timeout_ms", NULL};
    PyObject *path = NULL;
    const char *sql;
    int ncols, busy_ms = SW_BUSY_TIMEOUT_MS;
    long long batch_rows = 5000, max_bytes = 32LL * 1024 * 1024;
    if (w->db != NULL || w->running || w->closed) {
        PyErr_SetString(PyExc_RuntimeError, "SqliteWriter.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&si|LLi:SqliteWriter", kwlist,
                                     PyUnicode_FSConverter, &path, &sql, &ncols, &batch_rows,
                                     &max_bytes, &busy_ms))
        return -1;
    if (ncols <= 0 || batch_rows <= 0 || max_bytes <= 0) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_ValueError, "ncols, batch_rows and max_queued_bytes must be > 0");
        return -1;
    }
    w->ncols = ncols;
    w->batch_rows = batch_rows;
    w->max_bytes = max_bytes;

    /* NOMUTEX: this connection is used by one thread at a time (set up here, then only by
     * the writer thread), so SQLite's per-call mutex buys nothing */
    int rc = sqlite3_open_v2(PyBytes_AS_STRING(path), &w->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    Py_DECREF(path);
    if (rc != SQLITE_OK) {
        PyErr_Format(WriterError, "cannot open the trace store: %s",
                     w->db != NULL ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
        close_db(w);
        return -1;
    }
    sqlite3_busy_timeout(w->db, busy_ms);
    char *err = NULL;
    if (sqlite3_exec(w->db, "PRAGMA synchronous=NORMAL; " SW_CACHE_PRAGMA, NULL, NULL, &err) !=
        SQLITE_OK) {
        PyErr_Format(WriterError, "cannot set up the trace store connection: %s",
                     err != NULL ? err : sqlite3_errmsg(w->db));
        sqlite3_free(err);
        close_db(w);
        return -1;
    }
    if (prepare(w, sql, &w->insert) < 0 || prepare(w, "BEGIN IMMEDIATE", &w->begin) < 0 ||
        prepare(w, "COMMIT", &w->commit) < 0 || prepare(w, "ROLLBACK", &w->rollback) < 0) {
        close_db(w);
        return -1;
    }
    if (sqlite3_bind_parameter_count(w->insert) != ncols) {
        PyErr_Format(PyExc_ValueError, "the statement takes %d values, not ncols=%d",
                     sqlite3_bind_parameter_count(w->insert), ncols);
        close_db(w);
        return -1;
    }
    /* the thread takes no signals: they go to the Python threads, which handle them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close_db(w);
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    w->running = 1;
    return 0;
}

static void Writer_dealloc(PyObject *self)
{
    Writer *w = (Writer *)self;
    if (w->running && w->pid == getpid()) {
        stop_thread(w); /* writes what is queued: dropping the object loses no row */
        close_db(w);
    }
    /* in a forked child the thread does not exist and the connection is the parent's: leave
     * both alone */
    if (w->sync_ok && w->pid == getpid()) {
        while (w->head != NULL) {
            sw_rowbuf *b = w->head;
            w->head = b->next;
            sw_rowbuf_free(b);
        }
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->space);
        pthread_cond_destroy(&w->done);
    }
    free(w->error);
    Py_TYPE(self)->tp_free(self);
}

/* add_rows/add_records may run: open, not failed (raises), in the owner process. */
static int can_add(Writer *w)
{
    if (!w->running) {
        PyErr_SetString(PyExc_ValueError, "the store writer is closed");
        return -1;
    }
    if (owner_check(w) < 0)
        return -1;
    pthread_mutex_lock(&w->mu);
    int failed = w->failed;
    pthread_mutex_unlock(&w->mu);
    return failed ? raise_failed(w) : 0;
}

/* Pack one row tuple; a str that is not encodable (lone surrogates) makes the row go through
 * sipwatch.store.writer.clean_text first, as the Python paths do. */
static int pack_row(sw_rowbuf *b, PyObject *row)
{
    if (sw_rowbuf_tuple(b, row) == 0)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear();
    if (clean_text == NULL) {
        PyObject *mod = PyImport_ImportModule("sipwatch.store.writer");
        if (mod == NULL)
            return -1;
        clean_text = PyObject_GetAttrString(mod, "clean_text");
        Py_DECREF(mod);
        if (clean_text == NULL)
            return -1;
    }
    PyObject *clean = PyObject_CallOneArg(clean_text, row);
    if (clean == NULL)
        return -1;
    int r = sw_rowbuf_tuple(b, clean);
    Py_DECREF(clean);
    return r;
}

/* Submit *b once it holds batch_rows rows (or at the end: force); *b is NULL after. */
static int submit_full(Writer *w, sw_rowbuf **b, int force)
{
    if (*b == NULL || (!force && sw_rowbuf_rows(*b) < w->batch_rows))
        return 0;
    sw_rowbuf *full = *b;
    *b = NULL;
    return sw_writer_submit((PyObject *)w, full);
}

static PyObject *Writer_add_rows(PyObject *self, PyObject *rows)
{
    Writer *w = (Writer *)self;
    if (can_add(w) < 0)
        return NULL;
    PyObject *fast = PySequence_Fast(rows, "add_rows() takes a list of row tuples");
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    sw_rowbuf *b = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (b == NULL && (b = sw_rowbuf_new(w->ncols)) == NULL)
            goto fail;
        if (pack_row(b, PySequence_Fast_GET_ITEM(fast, i)) < 0 || submit_full(w, &b, 0) < 0)
            goto fail;
    }
    if (submit_full(w, &b, 1) < 0)
        goto fail;
    Py_DECREF(fast);
    Py_RETURN_NONE;
fail:
    sw_rowbuf_free(b);
    Py_DECREF(fast);
    return NULL;
}

/* The messages rows of Records, packed in C (sw_msg_from_record + sw_rowbuf_message: no row
 * tuple). A record the C reader refuses (an attribute of an unexpected type, a str with lone
 * surrogates, ...) takes row_of(record) -> (row, fell_back), i.e. store/rows.py stored_row,
 * so every record gets exactly the row the Python path gives. Returns how many fell back. */
static PyObject *Writer_add_records(PyObject *self, PyObject *args)
{
    Writer *w = (Writer *)self;
    PyObject *records, *row_of;
    if (!PyArg_ParseTuple(args, "OO:add_records", &records, &row_of))
        return NULL;
    if (w->ncols != SW_MESSAGE_NCOLS) {
        PyErr_Format(PyExc_ValueError, "add_records() needs a messages statement (%d values)",
                     SW_MESSAGE_NCOLS);
        return NULL;
    }
    if (can_add(w) < 0)
        return NULL;
    PyObject *fast = PySequence_Fast(records, "add_records() takes a list of Records");
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast), fell_back = 0;
    sw_rowbuf *b = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (b == NULL && (b = sw_rowbuf_new(w->ncols)) == NULL)
            goto fail;
        PyObject *rec = PySequence_Fast_GET_ITEM(fast, i);
        sw_msg m;
        sw_keep keep = SW_KEEP_INIT;
        int r = sw_msg_from_record(rec, &m, &keep);
        if (r == 0)
            r = sw_rowbuf_message(b, &m);
        sw_keep_clear(&keep);
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_MemoryError) ||
                !PyErr_ExceptionMatches(PyExc_Exception)) /* KeyboardInterrupt goes through */
                goto fail;
            PyErr_Clear(); /* the Python path decides: the row, or the raw-bytes fallback */
            PyObject *got = PyObject_CallOneArg(row_of, rec);
            if (got == NULL)
                goto fail;
            if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 2) {
                Py_DECREF(got);
                PyErr_SetString(PyExc_TypeError, "row_of() must return (row, fell_back)");
                goto fail;
            }
            int t = PyObject_IsTrue(PyTuple_GET_ITEM(got, 1));
            r = t < 0 ? -1 : pack_row(b, PyTuple_GET_ITEM(got, 0));
            Py_DECREF(got);
            if (r < 0)
                goto fail;
            fell_back += t;
        }
        if (submit_full(w, &b, 0) < 0)
            goto fail;
    }
    if (submit_full(w, &b, 1) < 0)
        goto fail;
    Py_DECREF(fast);
    return PyLong_FromSsize_t(fell_back);
fail:
    sw_rowbuf_free(b);
    Py_DECREF(fast);
    return NULL;
}

static PyObject *Writer_sync(PyObject *self, PyObject *noargs)
{
    (void)noargs;
    Writer *w = (Writer *)self;
    if (!w->running) {
        PyErr_SetString(PyExc_ValueError, "the store writer is closed");
        return NULL;
    }
    if (owner_check(w) < 0 || wait_committed(w) < 0)
        return NULL;
    pthread_mutex_lock(&w->mu);
    int failed = w->failed;
    pthread_mutex_unlock(&w->mu);
    if (failed)
        return raise_failed(w), NULL;
    return take_counts(w);
}

static PyObject *Writer_close(PyObject *self, PyObject *noargs)
{
    (void)noargs;
    Writer *w = (Writer *)self;
    if (!w->running)
        return take_counts(w); /* closed already (or never started): (0, 0) */
    if (owner_check(w) < 0)
        return NULL;
    stop_thread(w);
    close_db(w);
    w->closed = 1;
    if (w->failed && !w->error_reported)
        return raise_failed(w), NULL;
    return take_counts(w);
}

static PyObject *Writer_reset(PyObject *self, PyObject *noargs)
{
    (void)noargs;
    Writer *w = (Writer *)self;
    if (!w->running) {
        PyErr_SetString(PyExc_ValueError, "the store writer is closed");
        return NULL;
    }
    if (owner_check(w) < 0 || wait_committed(w) < 0) /* what was queued is dropped by now */
        return NULL;
    pthread_mutex_lock(&w->mu);
    char *error = w->error;
    w->error = NULL;
    w->failed = 0;
    w->error_reported = 0;
    pthread_mutex_unlock(&w->mu);
    free(error);
    return take_counts(w);
}

static PyObject *Writer_get_rows(PyObject *self, void *closure)
{
    (void)closure;
    Writer *w = (Writer *)self;
    pthread_mutex_lock(&w->mu);
    long long n = w->rows_submitted;
    pthread_mutex_unlock(&w->mu);
    return PyLong_FromLongLong(n);
}

static PyObject *Writer_get_synced_rows(PyObject *self, void *closure)
{
    (void)closure;
    Writer *w = (Writer *)self;
    pthread_mutex_lock(&w->mu);
    long long n = w->synced_rows;
    pthread_mutex_unlock(&w->mu);
    return PyLong_FromLongLong(n);
}

static PyObject *Writer_get_queued_bytes(PyObject *self, void *closure)
{
    (void)closure;
    Writer *w = (Writer *)self;
    pthread_mutex_lock(&w->mu);
    long long n = w->queued_bytes;
    pthread_mutex_unlock(&w->mu);
    return PyLong_FromLongLong(n);
}

static PyObject *Writer_get_running(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((Writer *)self)->running);
}

static PyMethodDef Writer_methods[] = {
    {"add_rows", Writer_add_rows, METH_O,
     "add_rows(rows): queue row tuples (waits while the queue is full). Raises WriterError "
     "when the thread failed."},
    {"add_records", Writer_add_records, METH_VARARGS,
     "add_records(records, row_of) -> int: queue the messages rows of Records, packed in C; "
     "a record the C reader refuses takes row_of(record) -> (row, fell_back) "
     "(store/rows.py stored_row). Returns how many fell back."},
    {"sync", Writer_sync, METH_NOARGS,
     "sync() -> (inserted, batches): wait until every row queued is committed; the rows "
     "inserted (the rest were duplicates) and transactions since the last sync."},
    {"reset", Writer_reset, METH_NOARGS,
     "reset() -> (inserted, batches): after a failure, wait until the rows queued before it "
     "are dropped, then write again (same connection); counts since the last sync."},
    {"close", Writer_close, METH_NOARGS,
     "close() -> (inserted, batches): write what is queued, stop the thread, close the "
     "connection; counts since the last sync. Idempotent."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Writer_getset[] = {
    {"rows", Writer_get_rows, NULL, "rows queued since the start (add_rows and the C path)",
     NULL},
    {"synced_rows", Writer_get_synced_rows, NULL,
     "rows the counts of the last sync()/close() cover (inserted + duplicates)", NULL},
    {"queued_bytes", Writer_get_queued_bytes, NULL, "bytes of row buffers not written yet", NULL},
    {"running", Writer_get_running, NULL, "the thread runs (not closed)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._native.SqliteWriter",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SqliteWriter(path, insert_sql, ncols, batch_rows=5000, "
              "max_queued_bytes=32 MiB, busy_timeout_ms=30000): a thread with its own SQLite "
              "connection that inserts the rows it is given in transactions of up to "
              "batch_rows rows (committed at once when it has nothing else to do).",
    .tp_new = Writer_new,
    .tp_init = Writer_init,
    .tp_dealloc = Writer_dealloc,
    .tp_methods = Writer_methods,
    .tp_getset = Writer_getset,
};

static PyObject *py_sqlite_version(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(sqlite3_libversion());
}

/* The C bulk path's way in, for tests: the messages rows of Python Records, packed in C
 * (sw_msg_from_record + sw_rowbuf_message) and handed over with sw_writer_submit. */
static PyObject *py_submit_records(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *writer, *records;
    if (!PyArg_ParseTuple(args, "O!O:submit_records", &WriterType, &writer, &records))
        return NULL;
    PyObject *fast = PySequence_Fast(records, "submit_records() takes a list of Records");
    if (fast == NULL)
        return NULL;
    sw_rowbuf *b = sw_rowbuf_new(SW_MESSAGE_NCOLS);
    if (b == NULL) {
        Py_DECREF(fast);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        sw_msg m;
        sw_keep keep = SW_KEEP_INIT;
        int r = sw_msg_from_record(PySequence_Fast_GET_ITEM(fast, i), &m, &keep);
        if (r == 0)
            r = sw_rowbuf_message(b, &m);
        sw_keep_clear(&keep);
        if (r < 0) {
            sw_rowbuf_free(b);
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    if (sw_writer_submit(writer, b) < 0)
        return NULL;
    return PyLong_FromSsize_t(n);
}

static PyMethodDef writer_functions[] = {
    {"submit_records", py_submit_records, METH_VARARGS,
     "submit_records(writer, records) -> int: the records' rows packed in C and submitted as "
     "the C bulk path does (sw_writer_submit); for tests."},
    {"sqlite_version", py_sqlite_version, METH_NOARGS,
     "The version of the SQLite library the writer is linked with."},
    {NULL, NULL, 0, NULL},
};

int sw_init_writer(PyObject *m)
{
    if (PyType_Ready(&WriterType) < 0)
        return -1;
    if (PyModule_AddObjectRef(m, "SqliteWriter", (PyObject *)&WriterType) < 0)
        return -1;
    WriterError = PyErr_NewExceptionWithDoc(
        "sipwatch._native.WriterError",
        "The SQLite writer thread failed (disk full, I/O error, ...): SQLite's message.", NULL,
        NULL);
    if (WriterError == NULL || PyModule_AddObjectRef(m, "WriterError", WriterError) < 0)
        return -1;
    return PyModule_AddFunctions(m, writer_functions);
}
