/* sipwatch._native module: the optional C bulk path (see view.h and sipwatch/native.py). */
#include "module.h"
#include "recordview.h"

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "sipwatch._native",
    "Optional C bulk path: packet decode, SIP scan, stage labels, passwords, rows, SQLite "
    "writer thread, uplink batch checks, PostgreSQL COPY data.",
    -1, /* static state (caches, tables) in some parts: one interpreter */
    NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    if (sw_recordview_init() < 0) {
        Py_DECREF(m);
        return NULL;
    }
    int (*parts[])(PyObject *) = {
        sw_init_blake2b, sw_init_rowbuf, sw_init_writer, sw_init_scan, sw_init_labeller,
        sw_init_passwords, sw_init_core, sw_init_tcp, sw_init_tally, sw_init_batchrows,
        sw_init_pgcopy, sw_init_nonce, sw_init_totag,
        sw_init_udpio, sw_init_challenge,
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i] != NULL && parts[i](m) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
