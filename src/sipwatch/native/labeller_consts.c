/* The strings and sets the C stage labeller shares with sipwatch.detect.stages,
 * detect/fingerprints.py and sip/numbers.py, read from those modules once (sw_lc), and the
 * random key of its hash tables. */
#include "labeller_state.h"

sw_lconst sw_lc;

/* ---- constants shared with the Python modules ---------------------------------------- */
static int keep_utf8(PyObject *o, sw_str *out)
{
    if (PyList_Append(sw_lc.keep, o) < 0)
        return -1;
    return sw_utf8_of(o, out);
}

static int set_to_list(PyObject *set, sw_str *out, int cap, int *n)
{
    PyObject *it = PyObject_GetIter(set);
    if (it == NULL)
        return -1;
    PyObject *o;
    int r = 0;
    *n = 0;
    while (r == 0 && (o = PyIter_Next(it)) != NULL) {
        if (*n >= cap) {
            PyErr_SetString(PyExc_RuntimeError, "sipwatch._native: a label set grew");
            r = -1;
        }
        else if ((r = keep_utf8(o, &out[*n])) == 0) {
            (*n)++;
        }
        Py_DECREF(o);
    }
    Py_DECREF(it);
    return r < 0 || PyErr_Occurred() ? -1 : 0;
}

static int find_stage(PyObject *mod, const char *name, int *index)
{
    PyObject *o = PyObject_GetAttrString(mod, name);
    if (o == NULL)
        return -1;
    *index = -1;
    for (int i = 1; i <= SW_NSTAGES; i++) {
        int r = PyObject_RichCompareBool(o, sw_lc.stage_obj[i], Py_EQ);
        if (r < 0) {
            Py_DECREF(o);
            return -1;
        }
        if (r) {
            *index = i;
            break;
        }
    }
    Py_DECREF(o);
    if (*index < 0) {
        PyErr_Format(PyExc_RuntimeError, "sipwatch._native: stages.%s is not in STAGES", name);
        return -1;
    }
    return 0;
}

static int load_stages(void)
{
    PyObject *mod = PyImport_ImportModule("sipwatch.detect.stages");
    if (mod == NULL)
        return -1;
    int r = -1;
    PyObject *stages = PyObject_GetAttrString(mod, "STAGES");
    if (stages == NULL)
        goto done;
    if (!PyTuple_Check(stages) || PyTuple_GET_SIZE(stages) != SW_NSTAGES) {
        PyErr_SetString(PyExc_RuntimeError, "sipwatch._native: stages.STAGES changed");
        Py_DECREF(stages);
        goto done;
    }
    for (int i = 1; i <= SW_NSTAGES; i++) {
        sw_lc.stage_obj[i] = PyTuple_GET_ITEM(stages, i - 1);
        if (keep_utf8(sw_lc.stage_obj[i], &sw_lc.stage[i]) < 0) {
            Py_DECREF(stages);
            goto done;
        }
    }
    Py_DECREF(stages); /* the items stay in sw_lc.keep */
    if (find_stage(mod, "SS", &sw_lc.ss) < 0 || find_stage(mod, "ES", &sw_lc.es) < 0 ||
        find_stage(mod, "RHJ", &sw_lc.rhj) < 0 || find_stage(mod, "TF", &sw_lc.tf) < 0)
        goto done;
    PyObject *ba = PyObject_GetAttrString(mod, "BENIGN_ANOMALIES");
    PyObject *be = PyObject_GetAttrString(mod, "BENIGN_ERRORS");
    int ok = ba != NULL && be != NULL &&
             set_to_list(ba, sw_lc.benign_anomalies, 8, &sw_lc.n_benign_anomalies) == 0 &&
             set_to_list(be, sw_lc.benign_errors, 8, &sw_lc.n_benign_errors) == 0;
    Py_XDECREF(ba);
    Py_XDECREF(be);
    if (!ok)
        goto done;
    sw_lc.config_type = PyObject_GetAttrString(mod, "LabelerConfig");
    sw_lc.stats_type = PyObject_GetAttrString(mod, "LabelerStats");
    if (sw_lc.config_type == NULL || sw_lc.stats_type == NULL)
        goto done;
    r = 0;
done:
    Py_DECREF(mod);
    return r;
}

static int load_numbers(void)
{
    PyObject *mod = PyImport_ImportModule("sipwatch.sip.numbers");
    if (mod == NULL)
        return -1;
    int r = -1;
    PyObject *ch = PyObject_GetAttrString(mod, "CHARGEABLE");
    PyObject *ext = PyObject_GetAttrString(mod, "EXTENSION");
    PyObject *sh = PyObject_GetAttrString(mod, "SHORT");
    if (ch != NULL && ext != NULL && sh != NULL &&
        set_to_list(ch, sw_lc.chargeable, 16, &sw_lc.n_chargeable) == 0 &&
        keep_utf8(ext, &sw_lc.extension) == 0 && keep_utf8(sh, &sw_lc.shorttype) == 0) {
        sw_lc.classifier_type = PyObject_GetAttrString(mod, "NumberClassifier");
        r = sw_lc.classifier_type != NULL ? 0 : -1;
    }
    Py_XDECREF(ch);
    Py_XDECREF(ext);
    Py_XDECREF(sh);
    Py_DECREF(mod);
    return r;
}

/* Read the Python side once, at the first Labeller (not at import: sipwatch.detect may
 * import sipwatch.native). */
int sw_lconst_load(void)
{
    if (sw_lc.s_classify != NULL)
        return 0;
    if (sw_lc.keep == NULL && (sw_lc.keep = PyList_New(0)) == NULL)
        return -1;
    if (sw_lc.stage_obj[0] == NULL) {
        sw_lc.stage_obj[0] = PyUnicode_FromStringAndSize("", 0);
        if (sw_lc.stage_obj[0] == NULL || keep_utf8(sw_lc.stage_obj[0], &sw_lc.stage[0]) < 0)
            return -1;
        Py_DECREF(sw_lc.stage_obj[0]); /* sw_lc.keep holds it */
    }
    if (sw_fp_init() < 0 || load_stages() < 0 || load_numbers() < 0)
        return -1;
    sw_lc.s_classify = PyUnicode_InternFromString("classify"); /* last: loaded */
    return sw_lc.s_classify != NULL ? 0 : -1;
}

/* the hash key of every table: random per process (os.urandom) */
int sw_lconst_seed(void)
{
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL)
        return -1;
    PyObject *b = PyObject_CallMethod(os, "urandom", "i", 16);
    Py_DECREF(os);
    if (b == NULL)
        return -1;
    if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 16) {
        Py_DECREF(b);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom(16) gave no 16 bytes");
        return -1;
    }
    sw_lru_seed((const unsigned char *)PyBytes_AS_STRING(b));
    Py_DECREF(b);
    return 0;
}
