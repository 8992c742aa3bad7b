/* sw_msg: one message as the bulk path sees it (sipwatch._native).
 *
 * The C bulk path (decode -> scan -> label -> row -> SQLite writer thread) passes this struct
 * between its stages instead of Python objects. It holds exactly what a trace-store row and
 * the stage labeller read from a Record (store/rows.py message_row, detect/stages.py), so a
 * message handled here gives the very row the Python pipeline gives (the differential tests
 * hold the two to it).
 *
 * Strings are byte slices, never NUL-terminated: the UTF-8 bytes SQLite would store for the
 * Python str of the same field. They point into the raw message, into a Python object or
 * into a table owned by a stage; a slice stays valid until the message has been packed into
 * a row buffer (sw_rowbuf), after which nothing keeps it.
 */
#ifndef SIPWATCH_NATIVE_VIEW_H
#define SIPWATCH_NATIVE_VIEW_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    const char *p; /* may be NULL when n == 0 */
    Py_ssize_t n;
} sw_str;

#define SW_STR_EMPTY ((sw_str){"", 0})

typedef struct {
    /* --- where and when it was seen (the source fills these) ------------------------ */
    double ts;
    sw_str transport; /* "udp" | "tcp" | ... */
    sw_str src, dst;  /* address text, as Record.src / Record.dst */
    int sport, dport;
    sw_str direction, sensor, node, tunnel, vlan;
    sw_str raw; /* the message's bytes (stored as the raw blob) */

    /* --- parsed (sw_scan fills these; the row's parsed columns) --------------------- */
    int is_request;
    sw_str method; /* as written */
    int status;    /* responses; 0 for requests */
    sw_str reason, ruri;
    sw_str ruri_user, from_display, from_user, from_tag, to_user, to_tag;
    sw_str call_id;
    int has_cseq;          /* 0: cseq_num column is NULL */
    long long cseq_num;
    sw_str cseq_big;       /* has_cseq 0 but the message has a CSeq number outside int64:
                            * its decimal text as Python's str(int) gives it ("-" sign, no
                            * leading zeros); "" otherwise. The labeller matches on it. */
    sw_str cseq_method;    /* as written */
    sw_str via_branch, user_agent, auth_user, auth_realm, contact, content_type;
    int has_credentials;   /* an Authorization or Proxy-Authorization header is present */
    sw_str credentials;    /* the first Authorization value, else Proxy-Authorization's: the
                            * text msg.credentials parses ("" without either) */
    sw_str body;           /* msg.body: the bytes after the head, as the parser cut them */
    Py_ssize_t body_len;
    sw_str anomalies;      /* comma-joined codes, as the anomalies column */
    sw_str error;          /* parse error code, "" when parsed */

    /* --- labels (the labeller fills these) ------------------------------------------- */
    sw_str stage, tool, tool_data, number, number_type, number_country, password;
    int fuzz;
    long long request_id;

    /* --- identity (Record.id: blake2b of ts, seen fields and raw; 0 until computed) --- */
    long long id;
} sw_msg;

#endif
