/* The password recovery in C: sipwatch._native.Recovery, an exact mirror of
 * sipwatch.detect.passwords.PasswordRecovery (same passwords, same HA1 cache and answered
 * table with their bounds and evictions, same stats), and sw_recover, its entry for the bulk
 * path.
 *
 * The Python class stays the definition; tests/unit/test_native_passwords.py holds this one
 * to it record by record. passwords.c: the recovery; passwords_type.c: the Python type.
 */
#ifndef SIPWATCH_NATIVE_PASSWORDS_H
#define SIPWATCH_NATIVE_PASSWORDS_H

#include "view.h"

/* PasswordRecovery.label for one message of the bulk path, after sw_label (it reads
 * request_id, tool and tool_data; m->id must be set): fills m->password (the text the store
 * writes: the UTF-8 of the password, lone surrogates as store/writer.py clean_text makes
 * them) and updates the recovery's state and stats. Every message is handled: the digest is
 * read from m->credentials by parse_digest's rules, and m's strings are the UTF-8 of the
 * Python str (view.h), which is all the recovery needs. m->password stays valid until the
 * next sw_recover call on the same recovery. Needs the GIL. 0, or -1 with an exception set. */
int sw_recover(PyObject *recovery, sw_msg *m);

/* 1 when o is a sipwatch._native.Recovery */
int sw_recovery_check(PyObject *o);

/* Adds the Recovery type and the test hooks to the module; 0 or -1. */
int sw_init_passwords(PyObject *module);

#endif
