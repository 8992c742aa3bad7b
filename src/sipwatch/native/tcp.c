/* sw_tcp: TCP reassembly in C (see tcp.h). Each function names the Python it mirrors
 * (capture/tcp.py unless said otherwise); keep the two in step. */
#include "tcp.h"

#include <stdlib.h>
#include <string.h>

#define FAR (1LL << 24) /* a segment this far ahead belongs to another connection */
#define WRAP 4294967296LL
#define HALF 2147483648LL

/* _rel: signed distance a - b in sequence space */
static inline long long rel(uint32_t a, uint32_t b)
{
    long long d = (long long)(uint32_t)(a - b);
    return d >= HALF ? d - WRAP : d;
}

void sw_tcp_init(sw_tcp *t)
{
    memset(t, 0, sizeof(*t));
    sw_lru_init(&t->flows);
    t->max_flows = 2048;
    t->max_ooo_segments = 64;
    t->max_ooo_bytes = 128 * 1024;
    t->max_total_ooo_bytes = 16 * 1024 * 1024;
    t->idle_timeout = 900.0;
    t->max_head = 65536;
    t->max_body = 65536;
    t->sip_ports[0] = 5060;
    t->sip_ports[1] = 5061;
    t->n_sip_ports = 2;
}

static void free_flow(sw_tcp *t, sw_tcp_flow *fl)
{
    for (int i = 0; i < fl->nooo; i++) {
        t->total_ooo -= fl->ooo[i].n;
        free(fl->ooo[i].data);
    }
    free(fl->ooo);
    sw_framer_free(&fl->framer);
    free(fl);
}

static void free_node(sw_lru_node *n, void *arg)
{
    free_flow(arg, (sw_tcp_flow *)n);
}

void sw_tcp_free(sw_tcp *t)
{
    sw_lru_free(&t->flows, free_node, t);
}

/* --- emitting ----------------------------------------------------------------------------- */
typedef struct {
    sw_tcp *t;
    sw_tcp_flow *flow;
    double ts;
} emit_ctx;

/* PacketDecoder._emit_tcp */
static void emit_msg(void *ctx, const unsigned char *msg, Py_ssize_t n)
{
    emit_ctx *e = ctx;
    e->t->c.sip_messages++;
    e->t->emit(e->t->ctx, e->flow, e->ts, msg, n);
}

/* flow.framer = StreamFramer() (the flow's framer struct is reused) */
static void new_framer(sw_tcp_flow *fl)
{
    sw_framer_reset(&fl->framer);
    fl->has_framer = 1;
}

/* _close_framer: emit an unfinished message as it is and count what the framer dropped */
static void close_framer(sw_tcp *t, sw_tcp_flow *fl, double ts)
{
    if (!fl->has_framer)
        return;
    fl->has_framer = 0;
    emit_ctx e = {t, fl, ts};
    sw_framer_close(&fl->framer, emit_msg, &e);
    t->c.tcp_framing_drops += fl->framer.dropped;
    fl->framer.dropped = 0;
}

/* _deliver */
static void deliver(sw_tcp *t, sw_tcp_flow *fl, double ts, const unsigned char *d, Py_ssize_t n)
{
    if (!fl->has_framer)
        new_framer(fl);
    emit_ctx e = {t, fl, ts};
    if (sw_framer_feed(&fl->framer, d, n, emit_msg, &e) < 0)
        t->nomem = 1;
}

/* --- the out-of-order buffer (a dict seq -> payload in insertion order) --------------------- */
static int ooo_find(const sw_tcp_flow *fl, uint32_t seq)
{
    for (int i = 0; i < fl->nooo; i++)
        if (fl->ooo[i].seq == seq)
            return i;
    return -1;
}

/* _pop: remove entry i (the caller frees its data) */
static sw_tcp_seg ooo_pop(sw_tcp *t, sw_tcp_flow *fl, int i)
{
    sw_tcp_seg s = fl->ooo[i];
    memmove(fl->ooo + i, fl->ooo + i + 1, (size_t)(fl->nooo - i - 1) * sizeof(sw_tcp_seg));
    fl->nooo--;
    fl->ooo_bytes -= s.n;
    t->total_ooo -= s.n;
    return s;
}

/* _drain: deliver buffered segments that now continue the stream */
static void drain(sw_tcp *t, sw_tcp_flow *fl, double ts)
{
    while (fl->nooo) {
        uint32_t nxt = (uint32_t)fl->next_seq;
        int i = ooo_find(fl, nxt);
        if (i >= 0) {
            sw_tcp_seg s = ooo_pop(t, fl, i);
            deliver(t, fl, ts, s.data, s.n);
            fl->next_seq = (uint32_t)(nxt + (uint32_t)s.n);
            free(s.data);
            continue;
        }
        int progressed = 0;
        i = 0;
        while (i < fl->nooo) {
            long long r = rel(fl->ooo[i].seq, nxt);
            if (r >= 0) {
                i++;
                continue;
            }
            /* starts before the stream position: old or overlapping */
            sw_tcp_seg s = ooo_pop(t, fl, i);
            if (-r < s.n) {
                deliver(t, fl, ts, s.data + (-r), s.n - (-r));
                fl->next_seq = (uint32_t)(s.seq + (uint32_t)s.n);
                free(s.data);
                progressed = 1;
                break;
            }
            t->c.tcp_retransmissions++;
            free(s.data);
        }
        if (!progressed)
            return;
    }
}

/* _skip_hole: give up on the missing bytes before the earliest buffered segment */
static void skip_hole(sw_tcp *t, sw_tcp_flow *fl, double ts)
{
    uint32_t nxt = (uint32_t)fl->next_seq;
    int best = 0;
    long long gap = rel(fl->ooo[0].seq, nxt);
    for (int i = 1; i < fl->nooo; i++) {
        long long r = rel(fl->ooo[i].seq, nxt);
        if (r < gap)
            gap = r, best = i;
    }
    uint32_t first = fl->ooo[best].seq;
    if (gap > 0) {
        t->c.tcp_gaps++;
        t->c.tcp_gap_bytes += gap;
        close_framer(t, fl, ts);
        new_framer(fl); /* resyncs on the next start line */
    }
    fl->next_seq = first;
}

/* _finish */
static void finish(sw_tcp *t, sw_tcp_flow *fl, double ts)
{
    while (fl->nooo) {
        skip_hole(t, fl, ts);
        drain(t, fl, ts);
    }
    close_framer(t, fl, ts);
}

/* _restart: a new connection on the same ports */
static void restart(sw_tcp *t, sw_tcp_flow *fl, double ts)
{
    finish(t, fl, ts);
    new_framer(fl);
}

/* _data */
static void data(sw_tcp *t, sw_tcp_flow *fl, double ts, uint32_t seq, const unsigned char *p,
                 Py_ssize_t n)
{
    for (;;) {
        long long r = rel(seq, (uint32_t)fl->next_seq);
        if (r == 0) {
            deliver(t, fl, ts, p, n);
            fl->next_seq = (uint32_t)(seq + (uint32_t)n);
            if (fl->nooo)
                drain(t, fl, ts);
            return;
        }
        if (r < 0) {
            t->c.tcp_retransmissions++;
            if (-r >= n)
                return;
            p += -r; /* partly old: keep the new tail */
            n -= -r;
            seq = (uint32_t)fl->next_seq;
            continue;
        }
        if (r > FAR) {
            restart(t, fl, ts);
            fl->next_seq = seq;
            continue;
        }
        break;
    }
    /* ahead of a hole: wait for the missing bytes, within bounds */
    t->c.tcp_out_of_order++;
    int i = ooo_find(fl, seq);
    if (i < 0 || fl->ooo[i].n < n) {
        unsigned char *copy = malloc(n > 0 ? (size_t)n : 1);
        if (copy == NULL) {
            t->nomem = 1;
            return;
        }
        memcpy(copy, p, (size_t)n);
        Py_ssize_t grow = n;
        if (i >= 0) {
            grow -= fl->ooo[i].n;
            free(fl->ooo[i].data);
            fl->ooo[i].data = copy;
            fl->ooo[i].n = n;
        } else {
            if (fl->nooo == fl->ooo_cap) {
                int cap = fl->ooo_cap ? fl->ooo_cap * 2 : 8;
                sw_tcp_seg *a = realloc(fl->ooo, (size_t)cap * sizeof(*a));
                if (a == NULL) {
                    free(copy);
                    t->nomem = 1;
                    return;
                }
                fl->ooo = a;
                fl->ooo_cap = cap;
            }
            fl->ooo[fl->nooo++] = (sw_tcp_seg){seq, n, copy};
        }
        fl->ooo_bytes += grow;
        t->total_ooo += grow;
    }
    while (fl->nooo && (fl->nooo > t->max_ooo_segments || fl->ooo_bytes > t->max_ooo_bytes ||
                        t->total_ooo > t->max_total_ooo_bytes)) {
        skip_hole(t, fl, ts);
        drain(t, fl, ts);
    }
}

static void remove_flow(sw_tcp *t, sw_tcp_flow *fl)
{
    sw_lru_remove(&t->flows, &fl->node);
    free_flow(t, fl);
}

/* segment: one segment of a tracked flow */
static void segment(sw_tcp *t, sw_tcp_flow *fl, double ts, uint32_t seq, int flags,
                    const unsigned char *p, Py_ssize_t n)
{
    sw_lru_touch(&t->flows, &fl->node);
    fl->last_ts = ts;
    if (fl->dead) {
        if (n)
            t->c.non_sip++;
        if (flags & (SW_TCP_FIN | SW_TCP_RST))
            remove_flow(t, fl);
        return;
    }
    if (flags & SW_TCP_SYN) {
        if (fl->next_seq >= 0 && rel(seq + 1, (uint32_t)fl->next_seq) != 0)
            restart(t, fl, ts); /* a new connection on the same ports */
        fl->next_seq = (uint32_t)(seq + 1);
        seq = (uint32_t)fl->next_seq; /* data on a SYN (TFO) follows the SYN's number */
    }
    if (n) {
        if (!fl->started) {
            fl->started = 1;
            if (sw_is_foreign(p, n)) { /* TLS/HTTP on a SIP port: not ours to read */
                fl->dead = 1;
                t->c.non_sip++;
                return;
            }
            if (fl->next_seq < 0)
                fl->next_seq = seq; /* capture started mid-stream: the framer resyncs */
        }
        t->c.tcp_segments++;
        data(t, fl, ts, seq, p, n);
    }
    if (flags & (SW_TCP_FIN | SW_TCP_RST)) {
        finish(t, fl, ts);
        remove_flow(t, fl);
    }
}

/* _expire: forget flows idle since before now - idle_timeout (oldest use first) */
static void expire(sw_tcp *t, double now)
{
    double limit = now - t->idle_timeout;
    while (t->flows.oldest != NULL) {
        sw_tcp_flow *fl = (sw_tcp_flow *)t->flows.oldest;
        if (fl->last_ts >= limit)
            break;
        sw_lru_pop_oldest(&t->flows);
        finish(t, fl, fl->last_ts);
        free_flow(t, fl);
    }
}

void sw_tcp_flush(sw_tcp *t)
{
    for (sw_lru_node *n = t->flows.oldest; n != NULL; n = n->newer) {
        sw_tcp_flow *fl = (sw_tcp_flow *)n;
        finish(t, fl, fl->last_ts);
    }
    sw_lru_clear(&t->flows, free_node, t);
}

static int is_sip_port(const sw_tcp *t, int port)
{
    for (int i = 0; i < t->n_sip_ports; i++)
        if (t->sip_ports[i] == port)
            return 1;
    return 0;
}

/* A new flow (tcp.Flow) with its key, tunnel and vlan in one allocation. */
static sw_tcp_flow *new_flow(const unsigned char *key, size_t klen, uint64_t hash,
                             const unsigned char *src, const unsigned char *dst, int alen,
                             int sport, int dport, const char *tunnel, Py_ssize_t tunnel_n,
                             const char *vlan, Py_ssize_t vlan_n, Py_ssize_t max_head,
                             Py_ssize_t max_body)
{
    sw_tcp_flow *fl = malloc(sizeof(*fl) + klen + (size_t)tunnel_n + (size_t)vlan_n + 1);
    if (fl == NULL)
        return NULL;
    memset(fl, 0, sizeof(*fl));
    char *extra = (char *)(fl + 1);
    memcpy(extra, key, klen);
    fl->node.key = extra;
    fl->node.klen = klen;
    fl->node.hash = hash;
    memcpy(extra + klen, tunnel, (size_t)tunnel_n);
    fl->tunnel = extra + klen;
    fl->tunnel_n = tunnel_n;
    memcpy(extra + klen + tunnel_n, vlan, (size_t)vlan_n);
    fl->vlan = extra + klen + tunnel_n;
    fl->vlan_n = vlan_n;
    fl->src_n = sw_addr_text(src, alen == 16, fl->src);
    fl->dst_n = sw_addr_text(dst, alen == 16, fl->dst);
    if (fl->src_n < 0 || fl->dst_n < 0) {
        free(fl);
        return NULL;
    }
    fl->sport = sport;
    fl->dport = dport;
    fl->next_seq = -1;
    sw_framer_init(&fl->framer, max_head, max_body);
    return fl;
}

int sw_tcp_packet(sw_tcp *t, double ts, const unsigned char *src, const unsigned char *dst,
                  int alen, int sport, int dport, const char *tunnel, Py_ssize_t tunnel_n,
                  const char *vlan, Py_ssize_t vlan_n, uint32_t seq, int flags,
                  const unsigned char *payload, Py_ssize_t n)
{
    /* key = (src, sport, dst, dport, tunnel) */
    unsigned char small[512];
    size_t klen = 1 + 2 * (size_t)alen + 4 + (size_t)tunnel_n;
    unsigned char *key = klen <= sizeof(small) ? small : malloc(klen);
    if (key == NULL) {
        t->nomem = 1;
        return -1;
    }
    key[0] = (unsigned char)alen;
    memcpy(key + 1, src, (size_t)alen);
    memcpy(key + 1 + alen, dst, (size_t)alen);
    unsigned char *q = key + 1 + 2 * alen;
    q[0] = (unsigned char)(sport >> 8), q[1] = (unsigned char)sport;
    q[2] = (unsigned char)(dport >> 8), q[3] = (unsigned char)dport;
    memcpy(q + 4, tunnel, (size_t)tunnel_n);
    uint64_t hash = sw_lru_hash(key, klen);
    sw_tcp_flow *fl = (sw_tcp_flow *)sw_lru_find(&t->flows, hash, (const char *)key, klen);
    int r = 0;
    if (fl != NULL) {
        segment(t, fl, ts, seq, flags, payload, n);
        goto done;
    }
    int sip_port = is_sip_port(t, sport) || is_sip_port(t, dport);
    if (n) {
        if (!(sip_port || sw_looks_like_sip(payload, n))) {
            t->c.non_sip++;
            goto done;
        }
    } else if (!(sip_port && (flags & SW_TCP_SYN))) {
        goto done; /* only a SYN on a SIP port opens an empty flow */
    }
    fl = new_flow(key, klen, hash, src, dst, alen, sport, dport, tunnel, tunnel_n, vlan,
                  vlan_n, t->max_head, t->max_body);
    if (fl == NULL) {
        t->nomem = 1;
        r = -1;
        goto done;
    }
    /* open */
    expire(t, ts);
    while ((Py_ssize_t)t->flows.count >= t->max_flows) {
        sw_tcp_flow *old = (sw_tcp_flow *)sw_lru_pop_oldest(&t->flows);
        t->c.tcp_flows_evicted++;
        finish(t, old, old->last_ts);
        free_flow(t, old);
    }
    new_framer(fl);
    fl->last_ts = ts;
    if (sw_lru_insert(&t->flows, &fl->node) < 0) {
        free_flow(t, fl);
        t->nomem = 1;
        r = -1;
        goto done;
    }
    segment(t, fl, ts, seq, flags, payload, n);
done:
    if (key != small)
        free(key);
    return t->nomem ? -1 : r;
}
