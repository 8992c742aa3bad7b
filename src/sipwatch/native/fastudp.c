/* Frame classification for the C bulk path (see fastudp.h). */
#include "fastudp.h"

#include <arpa/inet.h>
#include <string.h>

#define DLT_EN10MB 1
#define DLT_RAW 12
#define DLT_RAW_OPENBSD 14
#define DLT_LINKTYPE_RAW 101
#define DLT_LINUX_SLL 113
#define DLT_IPV4 228
#define DLT_IPV6 229
#define DLT_LINUX_SLL2 276
#define VXLAN_PORT 4789

void sw_link_init(sw_link *l, int dlt)
{
    memset(l, 0, sizeof(*l));
    l->hatype_off = -1;
    l->ok = 1;
    switch (dlt) {
    case DLT_EN10MB:
        l->et_off = 12, l->ip_off = 14;
        break;
    case DLT_LINUX_SLL:
        l->et_off = 14, l->ip_off = 16, l->hatype_off = 2;
        break;
    case DLT_LINUX_SLL2:
        l->et_off = 0, l->ip_off = 20, l->hatype_off = 8;
        break;
    case DLT_RAW:
    case DLT_RAW_OPENBSD:
    case DLT_LINKTYPE_RAW:
        l->et_off = -1, l->ip_off = 0;
        break;
    case DLT_IPV4:
        l->et_off = -1, l->ip_off = 0, l->v4_only = 1;
        break;
    case DLT_IPV6: /* the Python fast path does not take it: the general path's IPv6 only */
        l->et_off = -1, l->ip_off = 0;
        break;
    default:
        l->ok = 0;
    }
    if (dlt == DLT_IPV6)
        l->v4_only = -1; /* IPv6 frames only */
}

static inline int be16(const unsigned char *p) { return (p[0] << 8) | p[1]; }

static int is_sip_port(int port) { return port == 5060 || port == 5061; }

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static Py_ssize_t find2(const unsigned char *d, Py_ssize_t n, const char *pat, Py_ssize_t m)
{
    const unsigned char *hit = memmem(d, (size_t)n, pat, (size_t)m);
    return hit == NULL ? -1 : hit - d;
}

/* framing._head_end(data, 0): where the first empty line ends, -1 without one. The earliest
 * LF that starts "\n\n" or "\n\r\n" is the one both of its byte searches agree on. */
static Py_ssize_t head_end(const unsigned char *d, Py_ssize_t n)
{
    const unsigned char *p = d, *end = d + n;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == '\n')
            return p - d + 2;
        if (p + 2 < end && p[1] == '\r' && p[2] == '\n')
            return p - d + 3;
        p++;
    }
    return -1;
}

/* framing._content_length(head) (fastudp.h) */
int sw_head_content_length(const unsigned char *h, Py_ssize_t n, unsigned long long *len)
{
    static const char name[] = "content-length";
    for (Py_ssize_t ls = 0; ls < n;) {
        Py_ssize_t i = ls;
        Py_ssize_t k = 0;
        /* ASCII case folding: |32 folds letters, but would also take CR for the '-' */
        while (k < 14 && i + k < n &&
               (name[k] == '-' ? h[i + k] == '-' : (h[i + k] | 32) == (unsigned char)name[k]))
            k++;
        if (k == 14)
            i += 14;
        else if ((h[i] | 32) == 'l')
            i += 1;
        else
            goto next;
        while (i < n && (h[i] == ' ' || h[i] == '\t'))
            i++;
        if (i >= n || h[i] != ':')
            goto next;
        i++;
        while (i < n && (h[i] == ' ' || h[i] == '\t'))
            i++;
        {
            Py_ssize_t a = i;
            unsigned long long v = 0;
            while (i < n && is_digit(h[i]) && i - a < 20) {
                v = v * 10 + (unsigned long long)(h[i] - '0');
                i++;
            }
            if (i == a || i - a > 19)
                goto next;
            while (i < n && (h[i] == ' ' || h[i] == '\t'))
                i++;
            if (i < n && h[i] == '\r')
                i++;
            if (i < n && h[i] != '\n')
                goto next;
            *len = v;
            return 1;
        }
    next: {
        const unsigned char *lf = memchr(h + ls, '\n', (size_t)(n - ls));
        if (lf == NULL)
            break;
        ls = lf - h + 1;
    }
    }
    return 0;
}

int sw_one_message(const unsigned char *d, Py_ssize_t n)
{
    /* split_datagram(d) == [d]: leading CR/LF keep-alives are cut off by Python */
    if (n == 0 || d[0] == '\r' || d[0] == '\n')
        return 0;
    Py_ssize_t end = head_end(d, n);
    if (end == n || end < 0)
        return 1;
    unsigned long long len;
    if (!sw_head_content_length(d, end, &len))
        return 1;
    if (len >= (unsigned long long)(n - end))
        return 1;
    Py_ssize_t next = end + (Py_ssize_t)len;
    return !sw_looks_like_sip(d + next, n - next);
}

int sw_single_message(const unsigned char *d, Py_ssize_t n)
{
    return n >= 4 && memcmp(d + n - 4, "\r\n\r\n", 4) == 0 && d[0] != '\r' && d[0] != '\n' &&
           find2(d, n, "\n\r\n", 3) == n - 3 && find2(d, n, "\n\n", 2) < 0;
}

int sw_addr_text(const unsigned char *a, int v6, char *out)
{
    if (!v6) {
        /* inet_ntoa */
        int k = 0;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (i)
                out[k++] = '.';
            if (v >= 100)
                out[k++] = (char)('0' + v / 100);
            if (v >= 10)
                out[k++] = (char)('0' + v / 10 % 10);
            out[k++] = (char)('0' + v % 10);
        }
        out[k] = 0;
        return k;
    }
    if (inet_ntop(AF_INET6, a, out, 46) == NULL)
        return -1;
    return (int)strlen(out);
}

/* UDP header at p (frame end `end`): payload bounds as capture/decode.py takes them, then the
 * payload verdict. */
static int udp(const unsigned char *f, Py_ssize_t p, Py_ssize_t end, sw_udp *u)
{
    if (end - p < 8)
        return SW_FRAME_PYTHON; /* short header: the Python decoder counts the error */
    u->sport = be16(f + p);
    u->dport = be16(f + p + 2);
    int ulen = be16(f + p + 4);
    if (u->dport == VXLAN_PORT)
        return SW_FRAME_PYTHON;
    if (ulen >= 8 && p + ulen < end)
        end = p + ulen;
    p += 8;
    u->payload = f + p;
    u->n = end - p;
    if (sw_looks_like_sip(u->payload, u->n))
        return sw_one_message(u->payload, u->n) ? SW_FRAME_SIP : SW_FRAME_PYTHON;
    if (is_sip_port(u->sport) || is_sip_port(u->dport))
        return SW_FRAME_PYTHON; /* keep-alives, foreign protocols, fuzzing evidence */
    return SW_FRAME_OTHER;
}

int sw_classify_frame(const sw_link *l, const unsigned char *f, Py_ssize_t caplen, sw_udp *u)
{
    if (!l->ok)
        return SW_FRAME_PYTHON;
    Py_ssize_t ip = l->ip_off;
    if (caplen < ip + 1)
        return SW_FRAME_PYTHON;
    int et;
    if (l->et_off >= 0)
        et = be16(f + l->et_off);
    else
        et = (f[ip] >> 4) == 4 ? 0x0800 : (f[ip] >> 4) == 6 ? 0x86DD : 0;

    /* IPv4: decode.py's fast path (options, fragments and the rest go to Python) */
    if (et == 0x0800 && l->v4_only >= 0) {
        if (caplen < ip + 28)
            return SW_FRAME_PYTHON;
        const unsigned char *h = f + ip;
        int tot = be16(h + 2), frag = be16(h + 6);
        int ulen = be16(h + 24);
        if (h[0] != 0x45 || h[9] != 17 || (frag & 0x3FFF) || tot < 28 || ulen < 8)
            return SW_FRAME_PYTHON;
        if (be16(h + 22) == VXLAN_PORT)
            return SW_FRAME_PYTHON;
        Py_ssize_t end = ip + tot;
        if (end > caplen)
            end = caplen;
        /* the fast path bounds the payload by the IP and UDP lengths and the capture */
        Py_ssize_t p = ip + 28;
        Py_ssize_t uend = p - 8 + ulen;
        if (uend < end)
            end = uend;
        if (end < p)
            end = p; /* pkts[p:end] with end < p is empty */
        u->v6 = 0;
        u->src = h + 12;
        u->dst = h + 16;
        u->sport = be16(h + 20);
        u->dport = be16(h + 22);
        u->payload = f + p;
        u->n = end - p;
        if (sw_looks_like_sip(u->payload, u->n))
            return sw_one_message(u->payload, u->n) ? SW_FRAME_SIP : SW_FRAME_PYTHON;
        if (is_sip_port(u->sport) || is_sip_port(u->dport))
            return SW_FRAME_PYTHON;
        return SW_FRAME_OTHER;
    }

    /* IPv6 without extension headers: decode.py's general path for the same frame */
    if (et == 0x86DD && l->v4_only <= 0) {
        if (l->hatype_off >= 0) {
            if (caplen < l->hatype_off + 2 || be16(f + l->hatype_off) == 824)
                return SW_FRAME_PYTHON; /* netlink */
        }
        if (caplen < ip + 40 || (f[ip] >> 4) != 6)
            return SW_FRAME_PYTHON;
        const unsigned char *h = f + ip;
        int plen = be16(h + 4);
        if (h[6] != 17)
            return SW_FRAME_PYTHON; /* extension headers, fragments, TCP, ... */
        Py_ssize_t end = ip + 40 + plen;
        if (plen == 0 || end > caplen)
            end = caplen;
        u->v6 = 1;
        u->src = h + 8;
        u->dst = h + 24;
        return udp(f, ip + 40, end, u);
    }
    return SW_FRAME_PYTHON;
}
