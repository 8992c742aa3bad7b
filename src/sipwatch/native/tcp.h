/* sw_tcp: TCP stream reassembly for the bulk path, the C twin of
 * sipwatch.capture.tcp.TcpReassembler together with the flow-opening rules of
 * capture/decode.py PacketDecoder._tcp (which segments start a flow) and _emit_tcp (what a
 * message counts).
 *
 * There is one reassembler per capture: in bulk mode this one. The C batch loop (core.c) hands
 * it the plain TCP frames it decodes itself (sw_tcp_take_frame), and the Python decoder hands
 * it the segments it decodes (VLANs, fragments, tunnels, extension headers...) through the
 * Python type's packet() method (tcp_type.c), so every flow lives in one table whichever path
 * its segments take. Flows, their order (an LRU with idle expiry by packet time), the bounds,
 * the out-of-order buffer and every counter mirror the Python code exactly, and so does the
 * framing (framer.h): the differential tests in tests/unit/test_native_tcp.py hold the two to
 * the same messages, in the same order, with the same timestamps and counters.
 */
#ifndef SIPWATCH_NATIVE_TCP_H
#define SIPWATCH_NATIVE_TCP_H

#include "fastudp.h"
#include "framer.h"
#include "lru.h"

#include <stdint.h>

#define SW_TCP_MAX_PORTS 16

typedef struct {
    uint32_t seq;
    Py_ssize_t n;
    unsigned char *data;
} sw_tcp_seg;

/* tcp.Flow: one direction of a TCP connection carrying SIP */
typedef struct {
    sw_lru_node node; /* key: address length, src, dst, ports, tunnel */
    char src[48], dst[48];
    int src_n, dst_n;
    int sport, dport;
    const char *tunnel, *vlan; /* UTF-8, inside this allocation */
    Py_ssize_t tunnel_n, vlan_n;
    long long next_seq;        /* -1: unknown until SYN or the first data segment */
    sw_tcp_seg *ooo;           /* segments ahead of a hole, in insertion order (a dict) */
    int nooo, ooo_cap;
    Py_ssize_t ooo_bytes;
    sw_framer framer;
    int has_framer;            /* flow.framer is not None */
    double last_ts;
    int dead, started;
} sw_tcp_flow;

/* the CaptureStats counters this part adds to (names as in CaptureStats) */
typedef struct {
    long long non_sip, sip_messages, tcp_segments, tcp_out_of_order, tcp_retransmissions,
        tcp_gaps, tcp_gap_bytes, tcp_flows_evicted, tcp_framing_drops;
} sw_tcp_counts;

/* one message of a flow (_emit_tcp); msg is valid during the call only */
typedef void (*sw_tcp_emit)(void *ctx, const sw_tcp_flow *flow, double ts,
                            const unsigned char *msg, Py_ssize_t n);

typedef struct {
    sw_lru flows;
    Py_ssize_t max_flows, max_ooo_segments, max_ooo_bytes, max_total_ooo_bytes;
    double idle_timeout;
    Py_ssize_t max_head, max_body; /* the framer's caps */
    int sip_ports[SW_TCP_MAX_PORTS];
    int n_sip_ports;
    Py_ssize_t total_ooo;
    sw_tcp_counts c;
    sw_tcp_emit emit;
    void *ctx;
    int nomem; /* an allocation failed: the state no longer mirrors the Python one */
} sw_tcp;

#define SW_TCP_FIN 0x01
#define SW_TCP_SYN 0x02
#define SW_TCP_RST 0x04

/* Everything zero but the bounds; flows empty. */
void sw_tcp_init(sw_tcp *t);
/* Forget every flow without emitting anything. */
void sw_tcp_free(sw_tcp *t);

/* PacketDecoder._tcp after the header: the segment of (src, sport, dst, dport, tunnel) joins
 * its flow, opens one, or is counted as not SIP. alen: 4 or 16 (src and dst). 0, or -1 when
 * out of memory (t->nomem is set). */
int sw_tcp_packet(sw_tcp *t, double ts, const unsigned char *src, const unsigned char *dst,
                  int alen, int sport, int dport, const char *tunnel, Py_ssize_t tunnel_n,
                  const char *vlan, Py_ssize_t vlan_n, uint32_t seq, int flags,
                  const unsigned char *payload, Py_ssize_t n);

/* TcpReassembler.flush: deliver what waits behind holes, emit unfinished messages, forget. */
void sw_tcp_flush(sw_tcp *t);

/* A frame the C batch loop decodes: a plain TCP segment over IPv4/IPv6 straight after the
 * link header (the link types of fastudp.h; no VLAN, options allowed, no fragment, no IPv6
 * extension header). 1 with the segment's fields filled, 0 when the Python decoder takes the
 * frame (it then hands the same segment to the same reassembler). */
typedef struct {
    const unsigned char *src, *dst;
    int alen, sport, dport, flags;
    uint32_t seq;
    const unsigned char *payload;
    Py_ssize_t n;
} sw_tcp_frame;

int sw_tcp_decode_frame(const sw_link *l, const unsigned char *f, Py_ssize_t caplen,
                        sw_tcp_frame *s);

/* --- the Python type (tcp_type.c) and the batch loop's hook ------------------------------ */

/* 1 when o is a sipwatch._native.TcpReassembler whose messages go to `bulk`; else 0 with a
 * TypeError set. */
int sw_tcp_check(PyObject *o, PyObject *bulk);
/* The batch loop's hook: 1 when the frame was a plain TCP frame and is handled, 0 when the
 * Python decoder takes it, -1 on failure (exception set; the sink keeps it too). */
int sw_tcp_take_frame(PyObject *tcp, const sw_link *l, const unsigned char *f,
                      Py_ssize_t caplen, double ts);

/* Provided by core.c: 1 when o is a BulkAnalyzer; one message of a TCP flow through its
 * per-message path (m's seen fields filled), 0 or -1 (the BulkAnalyzer keeps the error). */
int sw_bulk_is(PyObject *o);
int sw_bulk_tcp_message(PyObject *bulk, sw_msg *m);

#endif
