/* sipwatch._native: the C bulk path. Each part adds its types and functions to the module
 * in its own init function (module.c calls them in this order). */
#ifndef SIPWATCH_NATIVE_MODULE_H
#define SIPWATCH_NATIVE_MODULE_H

#include "view.h"

/* 0 on success, -1 with an exception set. Weak while the parts are being built separately:
 * a part that is not linked in is simply absent from the module (sipwatch/native.py checks). */
__attribute__((weak)) int sw_init_blake2b(PyObject *m);
__attribute__((weak)) int sw_init_rowbuf(PyObject *m);
__attribute__((weak)) int sw_init_writer(PyObject *m);
__attribute__((weak)) int sw_init_scan(PyObject *m);
__attribute__((weak)) int sw_init_labeller(PyObject *m);
__attribute__((weak)) int sw_init_passwords(PyObject *m);
__attribute__((weak)) int sw_init_core(PyObject *m);
__attribute__((weak)) int sw_init_tcp(PyObject *m);
__attribute__((weak)) int sw_init_tally(PyObject *m);
__attribute__((weak)) int sw_init_batchrows(PyObject *m);
__attribute__((weak)) int sw_init_pgcopy(PyObject *m);
__attribute__((weak)) int sw_init_nonce(PyObject *m);
__attribute__((weak)) int sw_init_totag(PyObject *m);
__attribute__((weak)) int sw_init_udpio(PyObject *m);
__attribute__((weak)) int sw_init_challenge(PyObject *m);

#endif
