/* Optional compiled loops of the XLDA packing-index build (xlda/data/packing.py).
 *
 * Each function is the sequential twin of a numpy step in packing.py and gives bit-identical
 * results (tests/data/test_packing.py checks this); the random draws stay in numpy. Arrays come
 * in through the buffer protocol (C-contiguous numpy arrays); the Python side fixes the dtypes,
 * the checks here only guard against a mismatch turning into a memory error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static int check(Py_buffer *b, Py_ssize_t itemsize, const char *name) {
    if (b->itemsize != itemsize || b->len % itemsize != 0) {
        PyErr_Format(PyExc_TypeError, "_packing_kernel: %s must have %zd-byte items", name,
                     itemsize);
        return 0;
    }
    return 1;
}

/* chain(u float32[n], cuts float32[m-1], active int16[m], out int16[n], counts int64[L])
 *   -> n_chain. Inverse-CDF language draws (pick = #cuts <= u), consecutive repeats dropped;
 * counts[l] = occurrences of language l in the chain. */
static PyObject *chain(PyObject *self, PyObject *args) {
    Py_buffer u, cuts, active, out, cnt;
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*", &u, &cuts, &active, &out, &cnt)) return NULL;
    PyObject *res = NULL;
    if (check(&u, 4, "u") && check(&cuts, 4, "cuts") && check(&active, 2, "active") &&
        check(&out, 2, "out") && check(&cnt, 8, "counts")) {
        Py_ssize_t n = u.len / 4, m = cuts.len / 4, k = 0, L = cnt.len / 8;
        int bad = 0;
        for (Py_ssize_t j = 0; j <= m && j < active.len / 2; j++)
            bad |= ((const int16_t *)active.buf)[j] < 0 || ((const int16_t *)active.buf)[j] >= L;
        if (out.len / 2 < n || active.len / 2 < m + 1 || bad) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.chain: buffers too small");
        } else {
            const float *uu = u.buf, *cc = cuts.buf;
            const int16_t *act = active.buf;
            int16_t *o = out.buf, prev = -1;  /* language ids are >= 0 */
            for (Py_ssize_t i = 0; i < n; i++) {
                int p = 0;
                for (Py_ssize_t j = 0; j < m; j++) p += uu[i] >= cc[j];
                int16_t d = act[p];
                o[k] = d;  /* branch-free: the keep test is a coin flip */
                k += d != prev;
                prev = d;
            }
            int64_t *c = cnt.buf;
            for (Py_ssize_t l = 0; l < L; l++) c[l] = 0;
            for (Py_ssize_t i = 0; i < k; i++) c[o[i]]++;
            res = PyLong_FromSsize_t(k);
        }
    }
    PyBuffer_Release(&u); PyBuffer_Release(&cuts); PyBuffer_Release(&active);
    PyBuffer_Release(&out); PyBuffer_Release(&cnt);
    return res;
}

/* targets(xs: sequence of float64 arrays, one per language, t int64[sum len + 1]) -> None
 * Language l's targets t[pos_l : pos_l + len(xs[l]) + 1] = [0, floor(cumsum(xs[l]))], the
 * languages one after the other (numpy's cumsum is a sequential sum too; the float -> int64 cast
 * truncates, = floor for these positive sums). */
static PyObject *targets(PyObject *self, PyObject *args) {
    PyObject *xs;
    Py_buffer t;
    if (!PyArg_ParseTuple(args, "Ow*", &xs, &t)) return NULL;
    PyObject *seq = PySequence_Fast(xs, "_packing_kernel.targets: xs must be a sequence");
    if (!seq) { PyBuffer_Release(&t); return NULL; }
    int ok = check(&t, 8, "t");
    int64_t *tt = t.buf;
    Py_ssize_t pos = 0, cap = t.len / 8;
    for (Py_ssize_t l = 0; ok && l < PySequence_Fast_GET_SIZE(seq); l++) {
        Py_buffer x;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, l), &x, PyBUF_FORMAT) < 0) {
            ok = 0;
            break;
        }
        Py_ssize_t n = x.len / 8;
        if (!check(&x, 8, "xs[l]")) {
            ok = 0;
        } else if (pos + n + 1 > cap) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.targets: t too small");
            ok = 0;
        } else {
            const double *xx = x.buf;
            double s = 0.0;
            tt[pos] = 0;
            for (Py_ssize_t j = 0; j < n; j++) {
                s += xx[j];
                tt[pos + 1 + j] = (int64_t)s;
            }
            pos += n + 1;
        }
        PyBuffer_Release(&x);
    }
    Py_DECREF(seq);
    PyBuffer_Release(&t);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* cut(chain int16[n], t int64, toff int64[L] (start of language l's targets in t), need,
 *     counts int64[L]) -> n_runs: 1 + first chain position where the targets' running total
 * reaches need, or -1; counts[l] = occurrences of l in chain[:n_runs]. */
static PyObject *cut(PyObject *self, PyObject *args) {
    Py_buffer ch, t, toff, cnt;
    long long need;
    if (!PyArg_ParseTuple(args, "y*y*y*Lw*", &ch, &t, &toff, &need, &cnt)) return NULL;
    PyObject *res = NULL;
    if (check(&ch, 2, "chain") && check(&t, 8, "t") && check(&toff, 8, "toff") &&
        check(&cnt, 8, "counts") && cnt.len >= toff.len) {
        Py_ssize_t n = ch.len / 2, L = toff.len / 8, found = -1;
        const int16_t *c = ch.buf;
        const int64_t *tt = t.buf, *off = toff.buf;
        int64_t *pos = PyMem_Calloc(L > 0 ? L : 1, sizeof(int64_t)), acc = 0;
        if (!pos) {
            PyErr_NoMemory();
        } else {
            for (Py_ssize_t l = 0; l < L; l++) pos[l] = off[l];
            for (Py_ssize_t i = 0; i < n; i++) {
                int64_t *p = pos + c[i];  /* caller: every chain value < L, enough targets */
                acc += tt[*p + 1] - tt[*p];
                (*p)++;
                if (acc >= need) { found = i + 1; break; }
            }
            for (Py_ssize_t l = 0; l < L; l++) ((int64_t *)cnt.buf)[l] = pos[l] - off[l];
            PyMem_Free(pos);
            res = PyLong_FromSsize_t(found);
        }
    }
    PyBuffer_Release(&ch); PyBuffer_Release(&t); PyBuffer_Release(&toff); PyBuffer_Release(&cnt);
    return res;
}

/* e[j] = (first document end >= T_j) if it is < T_{j+1}, else T_j; ends and e include base.
 * A merge is a chain of dependent, unpredictable steps; LANES independent merges over slices
 * of the targets (each started by a binary search) run interleaved, branch-free, so the CPU
 * overlaps them. Every document end >= T_{k-1} exists (checked by the caller). */
#define LANES 4
#define DEFINE_MERGE(NAME, T)                                                          \
    static void NAME(const T *en, Py_ssize_t n, const int64_t *tt, Py_ssize_t k,       \
                     int64_t base,                                                     \
                     int64_t *ee) {                                                    \
        Py_ssize_t jj[LANES], je[LANES], dd[LANES];                                    \
        for (int w = 0; w < LANES; w++) {                                              \
            jj[w] = k * w / LANES;                                                     \
            je[w] = k * (w + 1) / LANES;                                               \
            Py_ssize_t lo = 0, hi = jj[w] < je[w] ? n : 0; /* first end >= T_jj */    \
            while (lo < hi) {                                                          \
                Py_ssize_t mid = lo + (hi - lo) / 2;                                   \
                if ((int64_t)en[mid] < tt[jj[w]] + base) lo = mid + 1; else hi = mid;  \
            }                                                                          \
            dd[w] = lo;                                                                \
        }                                                                              \
        for (;;) {                                                                     \
            int all = 1;                                                               \
            for (int w = 0; w < LANES; w++) all &= jj[w] < je[w];                      \
            if (!all) break;                                                           \
            for (int w = 0; w < LANES; w++) {                                          \
                int64_t ed = en[dd[w]], lo = tt[jj[w]] + base;                         \
                int next_doc = ed < lo;                                                \
                ee[jj[w]] = ed < tt[jj[w] + 1] + base ? ed : lo;                       \
                dd[w] += next_doc;                                                     \
                jj[w] += !next_doc;                                                    \
            }                                                                          \
        }                                                                              \
        for (int w = 0; w < LANES; w++) {                                              \
            for (; jj[w] < je[w]; jj[w]++) {                                           \
                int64_t lo = tt[jj[w]] + base;                                         \
                while ((int64_t)en[dd[w]] < lo) dd[w]++;                               \
                ee[jj[w]] = (int64_t)en[dd[w]] < tt[jj[w] + 1] + base ? en[dd[w]] : lo; \
            }                                                                          \
        }                                                                              \
    }
DEFINE_MERGE(merge32, int32_t)
DEFINE_MERGE(merge64, int64_t)

/* snap(t int64[k+1], lengths int64[nd], ids int64[nd] or None, first, order int64[n], base,
 *      ends int32/64[n], ids_out int32/64[n], e int64[k]) -> None
 * ends = base + cumsum(lengths[order]); ids_out = ids[order], or first + order when ids is None
 * (the dataset's ids are a range) or ids[i] = ids[0] + i; run j ends at the first document end
 * in [t[j], t[j+1]) if any, else at t[j] (searchsorted + where in packing.py), + base. The
 * caller picks int32 outputs only when every value fits. No binary search: documents and
 * targets advance together (a merge). */
static PyObject *snap(PyObject *self, PyObject *args) {
    Py_buffer t, lens, ids = {0}, order, ends, ids_out, e;
    PyObject *ids_obj;
    long long base, first;
    if (!PyArg_ParseTuple(args, "y*y*OLy*Lw*w*w*", &t, &lens, &ids_obj, &first, &order, &base,
                          &ends, &ids_out, &e)) return NULL;
    int ranged = ids_obj == Py_None;
    int got_ids = !ranged && PyObject_GetBuffer(ids_obj, &ids, PyBUF_FORMAT) == 0;
    PyObject *res = NULL;
    if ((ranged || got_ids) && check(&t, 8, "t") && check(&lens, 8, "lengths") &&
        (ranged || check(&ids, 8, "ids")) &&
        check(&order, 8, "order") && check(&e, 8, "e") &&
        (ends.itemsize == 4 || check(&ends, 8, "ends")) &&
        (ids_out.itemsize == 4 || check(&ids_out, 8, "ids_out"))) {
        Py_ssize_t n = order.len / 8, k = t.len / 8 - 1, nd = lens.len / 8, j = 0;
        const int64_t *tt = t.buf, *ln = lens.buf, *id = ids.buf, *od = order.buf;
        int64_t *ee = e.buf, s = 0;
        int ok = k >= 0 && ends.len / ends.itemsize >= n && ids_out.len / ids_out.itemsize >= n
                 && e.len / 8 >= k && (ranged || ids.len / 8 >= nd) && nd > 0;
        int e32 = ends.itemsize == 4, i32 = ids_out.itemsize == 4;
        int64_t id0 = ranged ? first : (ok ? id[0] : 0);
        int contiguous = 1;
        for (Py_ssize_t i = 0; ok && !ranged && i < nd; i++) contiguous &= id[i] == id0 + i;
        for (Py_ssize_t i = 0; ok && i < n; i++) ok = od[i] >= 0 && od[i] < nd;
        if (ok) {  /* separate simple loops: the merge's branches would stall the gathers */
            if (e32) {
                int32_t *en = ends.buf;
                for (Py_ssize_t i = 0; i < n; i++) { s += ln[od[i]]; en[i] = (int32_t)(s + base); }
            } else {
                int64_t *en = ends.buf;
                for (Py_ssize_t i = 0; i < n; i++) { s += ln[od[i]]; en[i] = s + base; }
            }
            if (i32) {
                int32_t *io = ids_out.buf;
                if (contiguous) for (Py_ssize_t i = 0; i < n; i++) io[i] = (int32_t)(id0 + od[i]);
                else for (Py_ssize_t i = 0; i < n; i++) io[i] = (int32_t)id[od[i]];
            } else {
                int64_t *io = ids_out.buf;
                if (contiguous) for (Py_ssize_t i = 0; i < n; i++) io[i] = id0 + od[i];
                else for (Py_ssize_t i = 0; i < n; i++) io[i] = id[od[i]];
            }
            if (n == 0 || s < (k > 0 ? tt[k - 1] : 0)) ok = 0;
        }
        if (ok) {
            if (e32) merge32(ends.buf, n, tt, k, base, ee);
            else merge64(ends.buf, n, tt, k, base, ee);
            j = k;
        }
        if (!ok || j < k) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.snap: inconsistent inputs");
        } else {
            Py_INCREF(Py_None);
            res = Py_None;
        }
    }
    PyBuffer_Release(&t); PyBuffer_Release(&lens); PyBuffer_Release(&order);
    PyBuffer_Release(&ends); PyBuffer_Release(&ids_out); PyBuffer_Release(&e);
    if (got_ids) PyBuffer_Release(&ids);
    return res;
}

/* assemble(chain int16[n], e int64, eoff int64[L], start int64[L], run_start int32/64[n + 1],
 *          run_pos int32/64[n]) -> None
 * Walk the chain: run i of language l is l's next run; it starts where l's previous run ended
 * (start[l] for its first) and ends at e[eoff[l] + its number]; run_start = [0, cumsum(len)]. */
static PyObject *assemble(PyObject *self, PyObject *args) {
    Py_buffer ch, e, eoff, start, rl, rp;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*w*", &ch, &e, &eoff, &start, &rl, &rp)) return NULL;
    PyObject *res = NULL;
    if (check(&ch, 2, "chain") && check(&e, 8, "e") && check(&eoff, 8, "eoff") &&
        check(&start, 8, "start") && (rl.itemsize == 4 || check(&rl, 8, "run_start")) &&
        (rp.itemsize == 4 || check(&rp, 8, "run_pos"))) {
        Py_ssize_t n = ch.len / 2, L = eoff.len / 8;
        const int16_t *c = ch.buf;
        const int64_t *ee = e.buf, *off = eoff.buf, *st = start.buf;
        int64_t g = 0;
        int g32 = rl.itemsize == 4, p32 = rp.itemsize == 4;
        int64_t *cur = PyMem_Malloc(2 * (L > 0 ? L : 1) * sizeof(int64_t));
        if (!cur) {
            PyErr_NoMemory();
        } else if (rl.len / rl.itemsize < n + 1 || rp.len / rp.itemsize < n || start.len / 8 < L) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.assemble: buffers too small");
            PyMem_Free(cur);
        } else {
            int64_t *a = cur, *j = cur + L;
            for (Py_ssize_t l = 0; l < L; l++) { a[l] = st[l]; j[l] = off[l]; }
            for (Py_ssize_t i = 0; i < n; i++) {
                int l = c[i];
                int64_t end = ee[j[l]++];
                if (p32) ((int32_t *)rp.buf)[i] = (int32_t)a[l]; else ((int64_t *)rp.buf)[i] = a[l];
                if (g32) ((int32_t *)rl.buf)[i] = (int32_t)g; else ((int64_t *)rl.buf)[i] = g;
                g += end - a[l];
                a[l] = end;
            }
            if (g32) ((int32_t *)rl.buf)[n] = (int32_t)g; else ((int64_t *)rl.buf)[n] = g;
            PyMem_Free(cur);
            Py_INCREF(Py_None);
            res = Py_None;
        }
    }
    PyBuffer_Release(&ch); PyBuffer_Release(&e); PyBuffer_Release(&eoff);
    PyBuffer_Release(&start); PyBuffer_Release(&rl); PyBuffer_Release(&rp);
    return res;
}

static PyMethodDef methods[] = {
    {"chain", chain, METH_VARARGS, "language draws -> run languages (no consecutive repeats)"},
    {"targets", targets, METH_VARARGS, "per-language cumulative run-length targets"},
    {"cut", cut, METH_VARARGS, "number of runs whose targets cover `need` tokens, or -1"},
    {"snap", snap, METH_VARARGS, "document stream of a language and its snapped run ends"},
    {"assemble", assemble, METH_VARARGS, "run global starts and stream positions in chain order"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_packing_kernel",
                                    "Compiled loops of the XLDA packing-index build.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__packing_kernel(void) { return PyModule_Create(&module); }
