/* The packet shapes the C bulk path decodes itself: one frame -> one UDP datagram over IPv4
 * or IPv6 that carries one SIP message. Everything else goes to the Python decoder
 * (capture/decode.py), which stays the definition: these rules are its fast path (IPv4) and
 * its general path (IPv6) for the same frames. */
#ifndef SIPWATCH_NATIVE_FASTUDP_H
#define SIPWATCH_NATIVE_FASTUDP_H

#include "view.h"

typedef struct {
    int ok;     /* the link type has a fixed geometry (else every frame goes to Python) */
    int et_off; /* offset of the 16-bit Ethernet type, -1 for raw IP links */
    int ip_off; /* offset of the IP header */
    int hatype_off; /* SLL/SLL2 ARPHRD type offset (netlink frames are not IP), -1 none */
    int v4_only; /* DLT_IPV4 */
} sw_link;

void sw_link_init(sw_link *l, int dlt);

enum {
    SW_FRAME_PYTHON = 0, /* the Python decoder decides */
    SW_FRAME_SIP = 1,    /* exactly one SIP message in a UDP datagram: *u is filled */
    SW_FRAME_OTHER = 2,  /* a UDP datagram that is not SIP, off the SIP ports: non_sip */
};

typedef struct {
    const unsigned char *payload;
    Py_ssize_t n;
    int v6;
    const unsigned char *src, *dst; /* 4 or 16 bytes inside the frame */
    int sport, dport;
} sw_udp;

int sw_classify_frame(const sw_link *l, const unsigned char *f, Py_ssize_t caplen, sw_udp *u);

/* message.looks_like_sip: the start-line regex, matched on the first 4096 bytes. */
int sw_looks_like_sip(const unsigned char *d, Py_ssize_t n);
/* decode.single_message: nothing can follow the header block (no split needed). */
int sw_single_message(const unsigned char *d, Py_ssize_t n);
/* framing.split_datagram(d) == [d]: the datagram is exactly one message. */
int sw_one_message(const unsigned char *d, Py_ssize_t n);

/* framing._content_length(head): the first line of the head h[0:n] matching
 * (?im)^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,19})[ \t]*\r?$ ; 1 with *len, or 0.
 * Every part of the pattern is deterministic, so one pass per line start decides. */
int sw_head_content_length(const unsigned char *h, Py_ssize_t n, unsigned long long *len);
/* Address text as Python's inet_ntoa / inet_ntop give it; returns its length (< 46). */
int sw_addr_text(const unsigned char *a, int v6, char *out);

#endif
