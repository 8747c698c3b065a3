/* The XLDA packing walk, compiled: the twin of xlda/data/packing_ref.py `pack`.
 *
 * Same state layout, same splitmix64 draws, same float64 operations in the same order, so the
 * output is bit-identical to the Python reference (tests/data/test_packing.py checks this over
 * random corpora). Build with -ffp-contract=off (setup.py): a fused multiply-add would round
 * differently from Python. Arrays come in through the buffer protocol; packing.py fixes the
 * dtypes and the checks here only guard against a mismatch turning into a memory error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

enum { ST_POS, ST_CUR, ST_CTR, ST_SWWIN, ST_PIECES, ST_SAMPLE, ST_BOUND, ST_FORCED, ST_FREE,
       ST_FREESW, ST_CUTS, ST_OUTP, ST_OUTC, ST_OUTS, ST_PHASE, ST_TTOT, ST_CUTAT, ST_CUTTO,
       ST_BANDCUT, ST_BANDSW, ST_DOCSW, ST_LANG };
enum { PHASE_PLACE, PHASE_DECIDE, PHASE_START, PHASE_DONE };
enum { DONE, NEED_EPOCH, OUT_FULL };
enum { AF_CTR, AF_TRY, AF_HIT, AF_EPOCH };  /* affinity state slots (packing_ref.py) */
#define MAXL 64
#define ROOM_CAP ((int64_t)1 << 60)

static double uniform(uint64_t key, int64_t counter) {
    uint64_t z = key + (uint64_t)(counter + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t choose(double u, const double *probs, const int64_t *st, int L, int64_t ttot,
                      double buffer, double band, int64_t exclude) {
    double total = 0.0, best_v = 0.0, worst_e = 0.0;
    int64_t best = -1, worst = -1;
    for (int k = 0; k < L; k++) {
        if (k != exclude && probs[k] > 0.0) {
            double ek = (double)st[ST_LANG + 3 * k + 2] - probs[k] * (double)ttot;
            if (ek <= -band && (worst < 0 || ek < worst_e)) { worst = k; worst_e = ek; }
            double w = probs[k] * ((double)ttot + buffer) - (double)st[ST_LANG + 3 * k + 2];
            if (w > 0.0 && ek < band) total += w;
            double v = w / probs[k];
            if (best < 0 || v > best_v) { best = k; best_v = v; }
        }
    }
    if (worst >= 0) return worst;
    if (total <= 0.0) return best;
    double x = u * total;
    int64_t last = -1;
    for (int k = 0; k < L; k++) {
        if (k == exclude || probs[k] <= 0.0) continue;
        double w = probs[k] * ((double)ttot + buffer) - (double)st[ST_LANG + 3 * k + 2];
        if (w <= 0.0 ||
            (double)st[ST_LANG + 3 * k + 2] - probs[k] * (double)ttot >= band) continue;
        last = k;
        if (x < w) return k;
        x -= w;
    }
    return last;
}

static double switch_prob(double r, double p, int64_t tokens_l, int64_t ttot, double buffer) {
    double ratio = (p * ((double)ttot + buffer) - (double)tokens_l) / (p * buffer);
    if (ratio <= 0.0) return 1.0;
    double q = r / ratio;
    return q > 1.0 ? 1.0 : q;
}

/* see packing_ref._band_room */
static int64_t band_room(const int64_t *st, const double *probs, double band, int L,
                         int64_t cur) {
    double tt = (double)st[ST_TTOT], pc = probs[cur];
    double x = (band - ((double)st[ST_LANG + 3 * cur + 2] - pc * tt)) / (1.0 - pc);
    for (int k = 0; k < L; k++) {
        if (k != cur && probs[k] > 0.0) {
            double y = (band + ((double)st[ST_LANG + 3 * k + 2] - probs[k] * tt)) / probs[k];
            if (y < x) x = y;
        }
    }
    if (x > (double)ROOM_CAP) return ROOM_CAP;
    return (int64_t)floor(x);
}

/* affinity (packing_ref._affinity): the tables, borrowed from the Python arguments */
typedef struct {
    int on;
    double p;
    uint64_t key;
    const int32_t *grp[MAXL];
    const int64_t *gptr[MAXL];
    const int32_t *gdocs[MAXL];
    int64_t *inv[MAXL];
    int64_t *ast;
} Affinity;

static int64_t affinity(int64_t *st, const double *probs, double band, int L,
                        const Py_buffer *ords, const Py_buffer *lens, Affinity *a, int64_t cur,
                        int64_t k) {
    const int32_t *oc = ords[cur].buf;
    int64_t g = a->grp[cur][oc[st[ST_LANG + 3 * cur] - 1]];
    if (g < 0) return -1;
    double u = uniform(a->key, a->ast[AF_CTR]);
    a->ast[AF_CTR] += 1;
    if (u >= a->p) return -1;
    a->ast[AF_TRY] += 1;
    double tt = (double)st[ST_TTOT];
    for (int64_t t = -1; t < L; t++) {  /* k first, then the others in order */
        int64_t m = t < 0 ? k : t;
        if (t >= 0 && (m == k || m == cur)) continue;
        int64_t bm = ST_LANG + 3 * m;
        if (m != k && (double)st[ST_LANG + 3 * k + 2] - probs[k] * tt <= -band)
            return -1;  /* k is a band behind: a switch must go there */
        if (probs[m] <= 0.0 || st[bm + 1] != 0 || st[bm] >= ords[m].len / 4) continue;
        int64_t room = band_room(st, probs, band, L, m);  /* the member must fit whole */
        const int32_t *lm = lens[m].buf;
        int64_t n = lens[m].len / 4, ptr = st[bm], e = ptr / n;
        int32_t *om = ords[m].buf;
        int64_t *inv = a->inv[m];
        if (a->ast[AF_EPOCH + m] != e) {  /* the position table of m's current epoch */
            for (int64_t q = e * n; q < (e + 1) * n; q++) inv[om[q]] = q;
            a->ast[AF_EPOCH + m] = e;
        }
        for (int64_t j = a->gptr[m][g]; j < a->gptr[m][g + 1]; j++) {
            int32_t doc = a->gdocs[m][j];
            int64_t at = inv[doc];
            if (ptr <= at && (int64_t)lm[doc] <= room) {
                int32_t front = om[ptr];
                om[ptr] = doc;
                om[at] = front;
                inv[doc] = ptr;
                inv[front] = at;
                a->ast[AF_HIT] += 1;
                return m;
            }
        }
    }
    return -1;
}

static int check(Py_buffer *b, Py_ssize_t itemsize, const char *name) {
    if (b->itemsize != itemsize || b->len % itemsize != 0) {
        PyErr_Format(PyExc_TypeError, "_packing_kernel: %s must have %zd-byte items", name,
                     itemsize);
        return 0;
    }
    return 1;
}

/* pack(state int64, probs f64[L], rswitch f64[L], buffer, band, key, S, need, n_samples,
 *      lengths [L] of int32 arrays, orders [L] of int32 arrays, id_first int64[L],
 *      piece_doc int64, piece_lang int8, cut_piece int64, cut_off int32, cut_len int32,
 *      sample_piece int64, sample_off int32) -> (code, lang) */
static PyObject *pack(PyObject *self, PyObject *args) {
    Py_buffer bst, bpr, brs, bid, bpd, bpl, bcp, bco, bcl, bsp, bso;
    double buffer, band;
    unsigned long long ukey;
    long long S, need, n_samples;
    PyObject *olen, *oord, *oaff = Py_None;
    if (!PyArg_ParseTuple(args, "w*y*y*ddKLLLOOy*w*w*w*w*w*w*w*|O", &bst, &bpr, &brs, &buffer,
                          &band, &ukey, &S, &need, &n_samples, &olen, &oord, &bid, &bpd, &bpl, &bcp,
                          &bco, &bcl, &bsp, &bso, &oaff))
        return NULL;
    Affinity aff = {0};
    Py_buffer abufs[4 * MAXL + 1];  /* groups, gptr, gdocs, inv per language; the state */
    int na = 0;
    PyObject *atup = NULL;
    Py_buffer *all[] = {&bst, &bpr, &brs, &bid, &bpd, &bpl, &bcp, &bco, &bcl, &bsp, &bso};
    Py_buffer lens[MAXL], ords[MAXL];
    int nl = 0, no = 0, code = -1;
    int64_t ret_lang = -1;
    PyObject *sl = NULL, *so = NULL;
    int L = (int)(bpr.len / 8);
    if (!(check(&bst, 8, "state") && check(&bpr, 8, "probs") && check(&brs, 8, "rswitch") &&
          check(&bid, 8, "id_first") && check(&bpd, 8, "piece_doc") &&
          check(&bpl, 1, "piece_lang") && check(&bcp, 8, "cut_piece") &&
          check(&bco, 4, "cut_off") && check(&bcl, 4, "cut_len") &&
          check(&bsp, 8, "sample_piece") && check(&bso, 4, "sample_off")))
        goto out;
    if (L < 2 || L > MAXL || brs.len / 8 != L || bid.len / 8 != L ||
        bst.len / 8 < ST_LANG + 3 * L || S < 2) {
        PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: bad sizes");
        goto out;
    }
    sl = PySequence_Fast(olen, "lengths must be a sequence");
    so = sl ? PySequence_Fast(oord, "orders must be a sequence") : NULL;
    if (!so) goto out;
    if (PySequence_Fast_GET_SIZE(sl) != L || PySequence_Fast_GET_SIZE(so) != L) {
        PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: one array per language");
        goto out;
    }
    for (; nl < L; nl++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(sl, nl), &lens[nl],
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto out;
        if (!check(&lens[nl], 4, "lengths[l]")) { nl++; goto out; }
    }
    aff.on = oaff != Py_None;
    for (; no < L; no++) {  /* affinity swaps documents within an epoch: writable orders */
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(so, no), &ords[no],
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                   (aff.on ? PyBUF_WRITABLE : 0)) < 0) goto out;
        if (!check(&ords[no], 4, "orders[l]")) { no++; goto out; }
    }
    if (aff.on) {  /* (p, key, groups, gptr, gdocs, inv, state): packing.affinity_tables */
        atup = PySequence_Fast(oaff, "affinity must be a sequence");
        if (!atup) goto out;
        if (PySequence_Fast_GET_SIZE(atup) != 7) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: affinity has 7 items");
            goto out;
        }
        PyObject **it = PySequence_Fast_ITEMS(atup);
        aff.p = PyFloat_AsDouble(it[0]);
        aff.key = (uint64_t)PyLong_AsUnsignedLongLongMask(it[1]);
        if (PyErr_Occurred()) goto out;
        const Py_ssize_t size[4] = {4, 8, 4, 8};
        const char *names[4] = {"groups[l]", "gptr[l]", "gdocs[l]", "inv[l]"};
        for (int t = 0; t < 4; t++) {
            PyObject *seq = it[2 + t];
            if (!PySequence_Check(seq) || PySequence_Size(seq) != L) {
                PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: one affinity table "
                                                  "per language");
                goto out;
            }
            for (int l = 0; l < L; l++) {
                PyObject *arr = PySequence_GetItem(seq, l);
                if (!arr) goto out;
                int r = PyObject_GetBuffer(arr, &abufs[na], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                                                (t == 3 ? PyBUF_WRITABLE : 0));
                Py_DECREF(arr);
                if (r < 0) goto out;
                na++;
                if (!check(&abufs[na - 1], size[t], names[t])) goto out;
                void *buf = abufs[na - 1].buf;
                Py_ssize_t m = abufs[na - 1].len / size[t], nd = lens[l].len / 4;
                if ((t == 0 || t == 3) && m != nd) {
                    PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: an affinity table "
                                                      "of the wrong length");
                    goto out;
                }
                if (t == 0) aff.grp[l] = buf;
                else if (t == 1) aff.gptr[l] = buf;
                else if (t == 2) aff.gdocs[l] = buf;
                else aff.inv[l] = buf;
            }
        }
        if (PyObject_GetBuffer(it[6], &abufs[na], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                                      PyBUF_WRITABLE) < 0) goto out;
        na++;
        if (!check(&abufs[na - 1], 8, "affinity state")) goto out;
        if (abufs[na - 1].len / 8 < AF_EPOCH + L) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: affinity state too short");
            goto out;
        }
        aff.ast = abufs[na - 1].buf;
    }
    {
        int64_t *st = bst.buf;
        const double *probs = bpr.buf, *rsw = brs.buf;
        const int64_t *id_first = bid.buf;
        int64_t *piece_doc = bpd.buf, *cut_piece = bcp.buf, *sample_piece = bsp.buf;
        int8_t *piece_lang = bpl.buf;
        int32_t *cut_off = bco.buf, *cut_len = bcl.buf, *sample_off = bso.buf;
        const int64_t cap_p = bpd.len / 8, cap_c = bcp.len / 8, cap_s = bsp.len / 8;
        const uint64_t key = (uint64_t)ukey;
        if (bpl.len < cap_p || bco.len / 4 < cap_c || bcl.len / 4 < cap_c ||
            bso.len / 4 < cap_s) {
            PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: output sizes differ");
            goto out;
        }
        for (int l = 0; l < L; l++) {  /* every order entry must index its lengths */
            const int32_t *o = ords[l].buf;
            Py_ssize_t n = ords[l].len / 4, m = lens[l].len / 4;
            for (Py_ssize_t j = 0; j < n; j++)
                if (o[j] < 0 || o[j] >= m) {
                    PyErr_SetString(PyExc_ValueError, "_packing_kernel.pack: order out of range");
                    goto out;
                }
        }
        Py_BEGIN_ALLOW_THREADS
        for (;;) {
            int64_t phase = st[ST_PHASE];
            if (phase == PHASE_DONE) { code = DONE; break; }
            if (phase == PHASE_START) {
                st[ST_CUR] = choose(uniform(key, st[ST_CTR]), probs, st, L, 0, buffer, band,
                                    -1);
                /* choose() read tokens from st: all 0 at the start, as the reference passes */
                st[ST_CTR] += 1;
                st[ST_PHASE] = PHASE_PLACE;
                continue;
            }
            int64_t cur = st[ST_CUR];
            int64_t b = ST_LANG + 3 * cur;
            const int32_t *ord = ords[cur].buf, *len = lens[cur].buf;
            if (st[b] >= ords[cur].len / 4) { code = NEED_EPOCH; ret_lang = cur; break; }
            if (phase == PHASE_DECIDE) {
                int64_t pos = st[ST_POS], w = pos / S;
                int inside = pos % S != 0;
                int64_t k = choose(uniform(key, st[ST_CTR]), probs, st, L, st[ST_TTOT], buffer,
                                   band, cur);
                int64_t bk = ST_LANG + 3 * k;
                if (st[bk] >= ords[k].len / 4) { code = NEED_EPOCH; ret_lang = k; break; }
                int af = 0;  /* affinity: d's group member follows d here (switch now) */
                if (inside && aff.on) {
                    int64_t m = affinity(st, probs, band, L, ords, lens, &aff, cur, k);
                    if (m >= 0) { k = m; bk = ST_LANG + 3 * k; af = 1; }
                }
                int64_t nk = (int64_t)((const int32_t *)lens[k].buf)[
                    ((const int32_t *)ords[k].buf)[st[bk]]] - st[bk + 1];
                double u = uniform(key, st[ST_CTR] + 1);
                st[ST_CTR] += 2;
                int fr = u < switch_prob(rsw[cur], probs[cur], st[b + 2], st[ST_TTOT], buffer);
                int64_t nxt = len[ord[st[b]]], room = (w + 1) * S - pos;
                /* forced: see packing_ref.py (straddle now, or cut the next document so
                 * that k's ends at (w + 1) S + 1) */
                int force = inside && st[ST_SWWIN] != w && (nxt >= room || nk > room);
                int plan = 0;
                int64_t c = 0;
                if (force && 2 <= nk && nk <= room && !af) {
                    c = (w + 1) * S + 1 - nk;
                    plan = pos < c && c < pos + nxt;
                }
                /* band: see packing_ref.py */
                double tt = (double)st[ST_TTOT];
                double ek = (double)st[bk + 2] - probs[k] * tt;
                int bsw = !force && (ek <= -band ||
                                     (double)st[b + 2] - probs[cur] * tt + (1.0 - probs[cur]) >
                                         band);
                fr = (fr || af) && ek + (1.0 - probs[k]) <= band;
                st[ST_BOUND] += 1;
                if (force) st[ST_FORCED] += 1;
                else if (bsw) st[ST_BANDSW] += 1;
                else { st[ST_FREE] += 1; st[ST_FREESW] += fr; }
                if (plan) {
                    st[ST_CUTAT] = c;
                    st[ST_CUTTO] = k;
                } else if (fr || force || bsw) {
                    st[ST_DOCSW] += 1;
                    st[ST_CUR] = k;
                    if (inside) st[ST_SWWIN] = w;
                }
                st[ST_PHASE] = PHASE_PLACE;
                continue;
            }
            if (st[ST_OUTP] >= cap_p || st[ST_OUTC] + 1 >= cap_c ||
                st[ST_OUTS] + 1 + ((int64_t)len[ord[st[b]]] - st[b + 1]) / S + 1 >= cap_s) {
                code = OUT_FULL;
                break;
            }
            /* the lengths are read in shuffled order: fetch a few documents ahead, so the
             * cache misses overlap instead of stalling the walk one by one */
            if (st[b] + 16 < ords[cur].len / 4) __builtin_prefetch(&len[ord[st[b] + 16]]);
            int64_t local = ord[st[b]], off = st[b + 1];
            int64_t n = (int64_t)len[local] - off;
            if (n == 0) { st[b] += 1; continue; }  /* an empty document: nothing to place */
            int64_t s = st[ST_POS], e = s + n, w = s / S, ww = -1, cut = -1, k = -1;
            if (st[ST_CUTAT] > 0) ww = w;
            else if (st[ST_SWWIN] != w && e >= (w + 1) * S) ww = w;
            else if (e >= (w + 2) * S) ww = w + 1;
            if (st[ST_CUTAT] > 0) {  /* planned at the boundary */
                cut = st[ST_CUTAT];
                k = st[ST_CUTTO];
                st[ST_CUTAT] = 0;
            } else if (ww >= 0) {
                k = choose(uniform(key, st[ST_CTR]), probs, st, L, st[ST_TTOT], buffer, band,
                           cur);
                int64_t bk = ST_LANG + 3 * k;
                if (st[bk] >= ords[k].len / 4) { code = NEED_EPOCH; ret_lang = k; break; }
                int64_t nk = (int64_t)((const int32_t *)lens[k].buf)[
                    ((const int32_t *)ords[k].buf)[st[bk]]] - st[bk + 1];
                st[ST_CTR] += 1;
                int64_t lower = (s > ww * S ? s : ww * S) + 1;
                cut = (ww + 1) * S + 1 - nk;
                if (cut < lower || cut > (ww + 1) * S - 1) cut = (ww + 1) * S - 1;
                if (cut <= s) {
                    st[ST_CUR] = k;
                    st[ST_SWWIN] = ww;
                    st[ST_FORCED] += 1;
                    continue;
                }
            }
            int64_t end = cut < 0 ? e : cut;
            int64_t bc = s + band_room(st, probs, band, L, cur);  /* band: see packing_ref.py */
            if (bc < end && bc < need) {
                if (bc <= s) bc = s + 1;
                if (bc % S == 0) bc = bc - 1 > s ? bc - 1 : bc + 1;
                if (bc < end) {
                    k = choose(uniform(key, st[ST_CTR]), probs, st, L, st[ST_TTOT], buffer, band,
                               cur);
                    st[ST_CTR] += 1;
                    cut = bc;
                    end = bc;
                    ww = bc / S;
                    st[ST_BANDCUT] += 1;
                }
            }
            int64_t p = st[ST_PIECES];
            piece_doc[st[ST_OUTP]] = id_first[cur] + local;
            piece_lang[st[ST_OUTP]] = (int8_t)cur;
            st[ST_OUTP] += 1;
            if (off > 0 || cut >= 0) {
                cut_piece[st[ST_OUTC]] = p;
                cut_off[st[ST_OUTC]] = (int32_t)off;
                cut_len[st[ST_OUTC]] = (int32_t)(end - s);
                st[ST_OUTC] += 1;
            }
            int64_t i = st[ST_SAMPLE];
            while (i < n_samples && i * S < end) {
                sample_piece[st[ST_OUTS]] = p;
                sample_off[st[ST_OUTS]] = (int32_t)(i * S - s);
                st[ST_OUTS] += 1;
                i++;
            }
            st[ST_SAMPLE] = i;
            st[ST_PIECES] = p + 1;
            st[b + 2] += end - s;
            st[ST_TTOT] += end - s;
            st[ST_POS] = end;
            if (cut >= 0) {
                st[b + 1] = off + end - s;
                st[ST_CUTS] += 1;
                st[ST_CUR] = k;
                st[ST_SWWIN] = ww;
            } else {
                st[b + 1] = 0;
                st[b] += 1;
            }
            if (end >= need) st[ST_PHASE] = PHASE_DONE;
            else st[ST_PHASE] = cut >= 0 ? PHASE_PLACE : PHASE_DECIDE;
        }
        Py_END_ALLOW_THREADS
    }
out:
    for (int i = 0; i < na; i++) PyBuffer_Release(&abufs[i]);
    Py_XDECREF(atup);
    for (int i = 0; i < nl; i++) PyBuffer_Release(&lens[i]);
    for (int i = 0; i < no; i++) PyBuffer_Release(&ords[i]);
    Py_XDECREF(sl);
    Py_XDECREF(so);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) PyBuffer_Release(all[i]);
    if (code < 0) return NULL;
    return Py_BuildValue("(iL)", code, (long long)ret_lang);
}

static PyMethodDef methods[] = {
    {"pack", pack, METH_VARARGS, "advance the XLDA packing walk (see packing_ref.pack)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_packing_kernel",
                                    "Compiled XLDA packing walk", -1, methods};

PyMODINIT_FUNC PyInit__packing_kernel(void) {
    PyObject *m = PyModule_Create(&module);
    /* packing.py falls back to the Python twin for affinity with a kernel built before it */
    if (m && PyModule_AddIntConstant(m, "AFFINITY", 1) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
