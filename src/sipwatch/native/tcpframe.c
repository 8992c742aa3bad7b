/* sw_tcp_decode_frame: the plain TCP frames the C batch loop decodes itself (see tcp.h); the
 * Python decoder takes every other frame and hands its segments to the same reassembler. The
 * rules mirror capture/linklayer.py decode_link, capture/ip.py and PacketDecoder._tcp for
 * these shapes; anything they would count as damaged is declined, so Python counts it. */
#include "tcp.h"

static inline int be16(const unsigned char *p) { return (p[0] << 8) | p[1]; }

int sw_tcp_decode_frame(const sw_link *l, const unsigned char *f, Py_ssize_t caplen,
                        sw_tcp_frame *s)
{
    /* linklayer.decode_link: the link header, then an Ethernet type straight to IP */
    if (!l->ok || caplen < l->ip_off + 1)
        return 0;
    Py_ssize_t ip = l->ip_off;
    int v = f[ip] >> 4;
    if (l->hatype_off >= 0 && be16(f + l->hatype_off) == 824)
        return 0; /* netlink */
    if (l->et_off >= 0) {
        int et = be16(f + l->et_off);
        if (!((et == 0x0800 && v == 4) || (et == 0x86DD && v == 6)))
            return 0;
    }
    const unsigned char *h = f + ip;
    Py_ssize_t end, p;
    if (v == 4) { /* ip.ipv4 */
        if (caplen - ip < 20)
            return 0;
        int hl = (h[0] & 15) * 4, total = be16(h + 2), frag = be16(h + 6);
        if (hl < 20 || total < hl || h[9] != 6 || (frag & 0x3FFF))
            return 0;
        end = ip + total;
        if (end > caplen)
            end = caplen;
        p = ip + hl;
        if (p > end)
            return 0;
        s->alen = 4;
        s->src = h + 12;
        s->dst = h + 16;
    } else if (v == 6) { /* ip.ipv6, no extension header */
        if (caplen - ip < 40 || h[6] != 6)
            return 0;
        int plen = be16(h + 4);
        end = ip + 40 + plen;
        if (plen == 0 || end > caplen)
            end = caplen;
        p = ip + 40;
        s->alen = 16;
        s->src = h + 8;
        s->dst = h + 24;
    } else {
        return 0;
    }
    /* PacketDecoder._tcp: the header */
    if (end - p < 20)
        return 0;
    const unsigned char *th = f + p;
    int hl = (th[12] >> 4) * 4;
    if (hl < 20)
        return 0;
    s->sport = be16(th);
    s->dport = be16(th + 2);
    s->seq = (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7];
    s->flags = th[13];
    s->payload = th + hl;
    s->n = p + hl < end ? end - (p + hl) : 0;
    return 1;
}
