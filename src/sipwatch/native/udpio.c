/* Batched UDP receive and send for the honeypot's listener (honeypot/server.py _UdpListener).
 *
 * udp_recv_batch(fd, max, bufsize) -> [(data, src, sport, pktinfo, truncated, peer), ...]
 *     Up to max datagrams from one recvmmsg(MSG_DONTWAIT); [] when none is waiting, OSError
 *     for any other error. Each datagram as recvmsg(bufsize, _ANC_SIZE) gives it to Python:
 *     data (bufsize bytes at most), the sender's address text and port (inet_ntop, as the
 *     socket module makes them: no %scope, IPv4-mapped as ::ffff:a.b.c.d), the data of the
 *     first IP_PKTINFO / IPV6_PKTINFO control message or None (the key of the listener's
 *     reply-cmsg cache), MSG_TRUNC as a bool, and the sender's raw sockaddr (the reply's
 *     destination, scope id and all).
 *
 * udp_send_batch(fd, items) -> (sent, sent_bytes, errors, bad)
 *     items: [(replies, pktinfo, peer), ...], replies a sequence of bytes-like objects, all
 *     sent to peer (a raw sockaddr from udp_recv_batch, or (host, port[, flowinfo, scope_id])
 *     with a numeric host) with pktinfo (12 bytes: in_pktinfo, 20: in6_pktinfo, or None) as
 *     the control message. sendmmsg(MSG_DONTWAIT), in order; a reply the kernel refuses is
 *     counted in errors and the rest still go. bad: replies that are not bytes-like (and
 *     replies objects that are not iterable), which Python's sendmsg refuses with TypeError.
 *
 * Neither call blocks (MSG_DONTWAIT), so both keep the GIL: no hand-off to other threads in
 * the middle of a burst. One recvmsg and one sendmsg per datagram cost several Python calls
 * and objects each; at 13,000 requests/s on one core that is a visible share of the sensor.
 */
#include "module.h"

#if defined(__linux__)

#include "fastudp.h" /* sw_addr_text */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define BATCH_MAX 1024 /* UIO_MAXIOV: the kernel's cap on one recvmmsg / sendmmsg */
#define CTL_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo)) /* server.py's _ANC_SIZE */

typedef union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} sockaddr_any;

typedef union {
    struct cmsghdr align;
    unsigned char buf[CTL_SPACE];
} ctl_buf;

/* --- receive ---------------------------------------------------------------------------- */

typedef struct {
    int cap;
    Py_ssize_t bufsize;
    unsigned char *data; /* cap slots of bufsize bytes */
    struct mmsghdr *msgs;
    struct iovec *iov;
    sockaddr_any *names;
    ctl_buf *ctl;
} rx_bufs;

/* Kept between calls: a burst's worth of 64 KiB slots is too large to allocate per call.
 * rx_busy: a call is building its results (object allocation can run a finalizer, and with
 * it another thread); a call made meanwhile uses buffers of its own. */
static rx_bufs rx_shared;
static int rx_busy;

static void rx_free(rx_bufs *b)
{
    free(b->data);
    free(b->msgs);
    free(b->iov);
    free(b->names);
    free(b->ctl);
    memset(b, 0, sizeof(*b));
}

static int rx_reserve(rx_bufs *b, int n, Py_ssize_t bufsize)
{
    if (b->cap >= n && b->bufsize == bufsize)
        return 0;
    rx_free(b);
    b->data = malloc((size_t)n * (size_t)bufsize);
    b->msgs = calloc((size_t)n, sizeof(*b->msgs));
    b->iov = calloc((size_t)n, sizeof(*b->iov));
    b->names = calloc((size_t)n, sizeof(*b->names));
    b->ctl = calloc((size_t)n, sizeof(*b->ctl));
    if (b->data == NULL || b->msgs == NULL || b->iov == NULL || b->names == NULL ||
        b->ctl == NULL) {
        rx_free(b);
        PyErr_NoMemory();
        return -1;
    }
    b->cap = n;
    b->bufsize = bufsize;
    return 0;
}

/* the kernel writes lengths and flags back: reset them before every call */
static void rx_prepare(rx_bufs *b, int n)
{
    for (int i = 0; i < n; i++) {
        b->iov[i].iov_base = b->data + (size_t)i * (size_t)b->bufsize;
        b->iov[i].iov_len = (size_t)b->bufsize;
        struct msghdr *h = &b->msgs[i].msg_hdr;
        h->msg_name = &b->names[i];
        h->msg_namelen = sizeof(b->names[i]);
        h->msg_iov = &b->iov[i];
        h->msg_iovlen = 1;
        h->msg_control = b->ctl[i].buf;
        h->msg_controllen = CTL_SPACE;
        h->msg_flags = 0;
        b->msgs[i].msg_len = 0;
    }
}

/* The first IP_PKTINFO / IPV6_PKTINFO data, as _UdpListener._local picks it out of
 * recvmsg's ancillary list (cut at the buffer's end as Python cuts it), or None. */
static PyObject *pktinfo(struct msghdr *h)
{
    const unsigned char *end = (const unsigned char *)h->msg_control + h->msg_controllen;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_len < CMSG_LEN(0))
            break;
        if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) ||
            (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)) {
            const unsigned char *d = CMSG_DATA(c);
            size_t n = c->cmsg_len - CMSG_LEN(0);
            if (d >= end)
                n = 0;
            else if (n > (size_t)(end - d))
                n = (size_t)(end - d);
            return PyBytes_FromStringAndSize((const char *)d, (Py_ssize_t)n);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *datagram(struct mmsghdr *m)
{
    struct msghdr *h = &m->msg_hdr;
    const sockaddr_any *sa = h->msg_name;
    char text[48];
    int len, port;
    if (sa->sa.sa_family == AF_INET) {
        len = sw_addr_text((const unsigned char *)&sa->v4.sin_addr, 0, text);
        port = ntohs(sa->v4.sin_port);
    } else if (sa->sa.sa_family == AF_INET6) {
        len = sw_addr_text((const unsigned char *)&sa->v6.sin6_addr, 1, text);
        port = ntohs(sa->v6.sin6_port);
    } else {
        errno = EAFNOSUPPORT; /* not an IP socket */
        len = -1;
    }
    if (len < 0)
        return PyErr_SetFromErrno(PyExc_OSError);

    PyObject *t = PyTuple_New(6);
    if (t == NULL)
        return NULL;
    PyObject *v = PyBytes_FromStringAndSize(h->msg_iov->iov_base, (Py_ssize_t)m->msg_len);
    if (v == NULL)
        goto fail;
    PyTuple_SET_ITEM(t, 0, v);
    if ((v = PyUnicode_FromStringAndSize(text, len)) == NULL)
        goto fail;
    PyTuple_SET_ITEM(t, 1, v);
    if ((v = PyLong_FromLong(port)) == NULL)
        goto fail;
    PyTuple_SET_ITEM(t, 2, v);
    if ((v = pktinfo(h)) == NULL)
        goto fail;
    PyTuple_SET_ITEM(t, 3, v);
    PyTuple_SET_ITEM(t, 4, PyBool_FromLong(h->msg_flags & MSG_TRUNC));
    if ((v = PyBytes_FromStringAndSize(h->msg_name, (Py_ssize_t)h->msg_namelen)) == NULL)
        goto fail;
    PyTuple_SET_ITEM(t, 5, v);
    return t;
fail:
    Py_DECREF(t);
    return NULL;
}

static PyObject *py_udp_recv_batch(PyObject *self, PyObject *args)
{
    (void)self;
    int fd, max;
    Py_ssize_t bufsize;
    if (!PyArg_ParseTuple(args, "iin", &fd, &max, &bufsize))
        return NULL;
    if (max < 1 || max > BATCH_MAX || bufsize < 1 || bufsize > 65536) {
        PyErr_Format(PyExc_ValueError, "udp_recv_batch: max must be 1..%d, bufsize 1..65536",
                     BATCH_MAX);
        return NULL;
    }
    rx_bufs own = {0};
    rx_bufs *b = rx_busy ? &own : &rx_shared;
    if (rx_reserve(b, max, bufsize) < 0)
        return NULL;
    if (b == &rx_shared)
        rx_busy = 1;
    rx_prepare(b, max);

    PyObject *out = NULL;
    int n;
    for (;;) {
        n = recvmmsg(fd, b->msgs, (unsigned)max, MSG_DONTWAIT, NULL);
        if (n >= 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0)
            goto done;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            out = PyList_New(0);
        else
            PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if ((out = PyList_New(n)) == NULL)
        goto done;
    for (int i = 0; i < n; i++) {
        PyObject *d = datagram(&b->msgs[i]);
        if (d == NULL) {
            Py_CLEAR(out); /* the datagrams are lost, as with a failed recvmsg */
            goto done;
        }
        PyList_SET_ITEM(out, i, d);
    }
done:
    if (b == &rx_shared)
        rx_busy = 0;
    else
        rx_free(&own);
    return out;
}

/* --- send ------------------------------------------------------------------------------- */

typedef struct {
    sockaddr_any to;
    socklen_t tolen;
    size_t ctllen; /* 0: no control message */
    ctl_buf ctl;
} tx_dest;

static int set_peer(tx_dest *d, PyObject *peer)
{
    if (PyBytes_Check(peer)) {
        Py_ssize_t n = PyBytes_GET_SIZE(peer);
        const struct sockaddr *sa = (const struct sockaddr *)PyBytes_AS_STRING(peer);
        if ((n == sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) ||
            (n == sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6)) {
            memcpy(&d->to, sa, (size_t)n);
            d->tolen = (socklen_t)n;
            return 0;
        }
        PyErr_SetString(PyExc_ValueError, "udp_send_batch: not an IPv4/IPv6 sockaddr");
        return -1;
    }
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyTuple_Check(peer) || !PyArg_ParseTuple(peer, "si|II", &host, &port, &flowinfo,
                                                  &scope_id)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "udp_send_batch: peer must be bytes or a tuple");
        return -1;
    }
    if (port < 0 || port > 65535 || flowinfo > 0xFFFFF) {
        PyErr_SetString(PyExc_OverflowError, "udp_send_batch: port or flowinfo out of range");
        return -1;
    }
    memset(&d->to, 0, sizeof(d->to));
    if (inet_pton(AF_INET, host, &d->to.v4.sin_addr) == 1) {
        d->to.v4.sin_family = AF_INET;
        d->to.v4.sin_port = htons((uint16_t)port);
        d->tolen = sizeof(d->to.v4);
    } else if (inet_pton(AF_INET6, host, &d->to.v6.sin6_addr) == 1) {
        d->to.v6.sin6_family = AF_INET6;
        d->to.v6.sin6_port = htons((uint16_t)port);
        d->to.v6.sin6_flowinfo = htonl(flowinfo);
        d->to.v6.sin6_scope_id = scope_id;
        d->tolen = sizeof(d->to.v6);
    } else {
        PyErr_Format(PyExc_ValueError, "udp_send_batch: %s is not a numeric address", host);
        return -1;
    }
    return 0;
}

/* the reply's source, as _UdpListener._decode's cmsg list gives it to sendmsg */
static int set_pktinfo(tx_dest *d, PyObject *info)
{
    d->ctllen = 0;
    if (info == Py_None)
        return 0;
    Py_ssize_t n = PyBytes_Check(info) ? PyBytes_GET_SIZE(info) : -1;
    int level, type;
    if (n == sizeof(struct in_pktinfo))
        level = IPPROTO_IP, type = IP_PKTINFO;
    else if (n == sizeof(struct in6_pktinfo))
        level = IPPROTO_IPV6, type = IPV6_PKTINFO;
    else {
        PyErr_SetString(PyExc_ValueError,
                        "udp_send_batch: pktinfo must be None or in_pktinfo/in6_pktinfo bytes");
        return -1;
    }
    memset(&d->ctl, 0, sizeof(d->ctl));
    struct cmsghdr *c = &d->ctl.align;
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN((size_t)n);
    memcpy(CMSG_DATA(c), PyBytes_AS_STRING(info), (size_t)n);
    d->ctllen = CMSG_SPACE((size_t)n);
    return 0;
}

/* a reply Python's sendmsg would refuse with TypeError: counted (bad), not raised */
static int refused_object(void)
{
    if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_BufferError))
        return 0;
    PyErr_Clear();
    return 1;
}

static PyObject *py_udp_send_batch(PyObject *self, PyObject *args)
{
    (void)self;
    int fd;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iO", &fd, &items))
        return NULL;
    PyObject *seq = PySequence_Fast(items, "udp_send_batch: items must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t nitems = PySequence_Fast_GET_SIZE(seq);
    tx_dest *dests = PyMem_Calloc((size_t)nitems + 1, sizeof(*dests));
    PyObject **lists = PyMem_Calloc((size_t)nitems + 1, sizeof(*lists));
    struct mmsghdr *msgs = NULL;
    struct iovec *iov = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t nmsgs = 0, total = 0;
    long long sent = 0, sent_bytes = 0, errors = 0, bad = 0;
    PyObject *out = NULL;
    if (dests == NULL || lists == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* every destination is checked before anything is sent */
    for (Py_ssize_t i = 0; i < nitems; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "udp_send_batch: items are (replies, pktinfo, peer) tuples");
            goto done;
        }
        if (set_pktinfo(&dests[i], PyTuple_GET_ITEM(item, 1)) < 0 ||
            set_peer(&dests[i], PyTuple_GET_ITEM(item, 2)) < 0)
            goto done;
        lists[i] = PySequence_Fast(PyTuple_GET_ITEM(item, 0), "replies must be iterable");
        if (lists[i] == NULL) {
            if (!refused_object())
                goto done;
            bad++;
            continue;
        }
        total += PySequence_Fast_GET_SIZE(lists[i]);
    }
    msgs = PyMem_Calloc((size_t)total + 1, sizeof(*msgs));
    iov = PyMem_Calloc((size_t)total + 1, sizeof(*iov));
    views = PyMem_Calloc((size_t)total + 1, sizeof(*views));
    if (msgs == NULL || iov == NULL || views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nitems; i++) {
        if (lists[i] == NULL)
            continue;
        tx_dest *d = &dests[i];
        /* nmsgs < total: room for what was counted, should a list change meanwhile */
        for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(lists[i]) && nmsgs < total; j++) {
            PyObject *reply = PySequence_Fast_GET_ITEM(lists[i], j);
            if (PyObject_GetBuffer(reply, &views[nmsgs], PyBUF_SIMPLE) < 0) {
                if (!refused_object())
                    goto done;
                bad++;
                continue;
            }
            iov[nmsgs].iov_base = views[nmsgs].buf;
            iov[nmsgs].iov_len = (size_t)views[nmsgs].len;
            struct msghdr *h = &msgs[nmsgs].msg_hdr;
            h->msg_name = &d->to;
            h->msg_namelen = d->tolen;
            h->msg_iov = &iov[nmsgs];
            h->msg_iovlen = 1;
            h->msg_control = d->ctllen ? d->ctl.buf : NULL;
            h->msg_controllen = d->ctllen;
            nmsgs++;
        }
    }

    /* sendmmsg stops at the first refused message: count it, go on after it */
    for (Py_ssize_t k = 0; k < nmsgs;) {
        Py_ssize_t left = nmsgs - k;
        unsigned vlen = (unsigned)(left < BATCH_MAX ? left : BATCH_MAX);
        int r = sendmmsg(fd, msgs + k, vlen, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) {
            if (PyErr_CheckSignals() < 0)
                goto done;
            continue;
        }
        if (r <= 0) {
            errors++;
            k++;
            continue;
        }
        for (int i = 0; i < r; i++)
            sent_bytes += views[k + i].len;
        sent += r;
        k += r;
    }
    out = Py_BuildValue("(LLLL)", sent, sent_bytes, errors, bad);
done:
    for (Py_ssize_t i = 0; i < nmsgs; i++)
        PyBuffer_Release(&views[i]);
    for (Py_ssize_t i = 0; lists != NULL && i < nitems; i++)
        Py_XDECREF(lists[i]);
    PyMem_Free(views);
    PyMem_Free(iov);
    PyMem_Free(msgs);
    PyMem_Free(lists);
    PyMem_Free(dests);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef udpio_methods[] = {
    {"udp_recv_batch", py_udp_recv_batch, METH_VARARGS,
     "udp_recv_batch(fd, max, bufsize) -> [(data, src, sport, pktinfo, truncated, peer)]"},
    {"udp_send_batch", py_udp_send_batch, METH_VARARGS,
     "udp_send_batch(fd, [(replies, pktinfo, peer)]) -> (sent, sent_bytes, errors, bad)"},
    {NULL, NULL, 0, NULL},
};

int sw_init_udpio(PyObject *m)
{
    if (PyModule_AddIntConstant(m, "UDP_BATCH_MAX", BATCH_MAX) < 0)
        return -1;
    return PyModule_AddFunctions(m, udpio_methods);
}

#else /* recvmmsg / sendmmsg are Linux's: elsewhere the listener keeps its Python path */

int sw_init_udpio(PyObject *m)
{
    (void)m;
    return 0;
}

#endif
