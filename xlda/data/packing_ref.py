"""The packing walk in plain Python: the reference twin of `_packing_kernel.pack`.

Both walk the same state, draw the same counter-based random numbers (splitmix64) and do the
same float64 arithmetic in the same order, so their outputs are bit-identical (tested). The C
loop is what a real build uses; this one documents the rule in readable form, serves as the
fallback where the extension is not built, and is what the tests read against.

The walk (see xlda/data/packing.py for why):
  * the stream is documents of one language after another; a language's documents come in
    its shuffled epoch order;
  * the band (shares): with e_l = T_l - P_l T (language l's tokens minus its share of the
    stream so far), a piece ends where its language would pass +band or another language would
    fall below -band (`_band_room`; at least one token, never at a window edge, never past the
    samples' last token); a language a band or more behind is chosen first, a language a band
    ahead never by a free switch;
  * at each document boundary the language switches with probability r_L (language-specific,
    set so that the rate over all boundaries is rho and token shares are P), adjusted by the
    language's token deficit; on a switch the next language is drawn with weights
    max(P_k (T + B) - T_k, 0) over the other languages (P on target);
  * guarantee: sample window w = [wS, wS + S) must hold a language change strictly inside it.
    At a boundary inside a window that has none yet, staying is allowed only while the next
    document of the same language still ends inside the window (else: a forced switch). A
    piece that would cover the rest of such a window (or a whole later window) is cut at the
    window's last input position and another language starts there; the cut document's rest
    is the first thing its language reads next time (a resumed piece).
  * affinity (optional, ``affinity`` given): at a boundary inside a window, after a whole
    document d of a group g, with probability p (a draw of its own counter, so p = 0 draws
    nothing and changes nothing) the walk looks in the language k a switch would go to for a
    member of g not yet read in k's current epoch (then in the other languages, unless k is a
    band behind); a member whose whole document fits in its language's band room (no pending
    piece there) is swapped to the front of that epoch (so every document is still read once
    per epoch) and the walk switches to it: d's group member follows it in the same window.
"""
from __future__ import annotations

import math

import numpy as np

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15

# int64 state slots (per-language slots follow at ST_LANG + 3 * l: ptr, pending offset, tokens)
(ST_POS, ST_CUR, ST_CTR, ST_SWWIN, ST_PIECES, ST_SAMPLE, ST_BOUND, ST_FORCED, ST_FREE,
 ST_FREESW, ST_CUTS, ST_OUTP, ST_OUTC, ST_OUTS, ST_PHASE, ST_TTOT, ST_CUTAT,
 ST_CUTTO, ST_BANDCUT, ST_BANDSW, ST_DOCSW) = range(21)
ST_LANG = 21
PHASE_PLACE, PHASE_DECIDE, PHASE_START, PHASE_DONE = 0, 1, 2, 3
ROOM_CAP = 1 << 60  # _band_room's cap: an int64 in the C twin
# return codes
DONE, NEED_EPOCH, OUT_FULL = 0, 1, 2
# affinity state slots (int64): its draw counter, attempts (draw < p), hits (a member swapped
# in and switched to), then per language the epoch its position table `inv` describes
AF_CTR, AF_TRY, AF_HIT, AF_EPOCH = 0, 1, 2, 3


def uniform(key: int, counter: int) -> float:
    """splitmix64 of key + (counter + 1) * gamma -> [0, 1) with 53 bits."""
    z = (key + (counter + 1) * GAMMA) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 11) * (1.0 / 9007199254740992.0)


def choose(u: float, probs, tokens, ttot: int, buffer: float, band: float,
           exclude: int) -> int:
    """Next language: the one furthest behind its share when some k != exclude is a band or
    more behind (T_k - P_k T <= -band); else weights max(P_k (T + B) - T_k, 0) over the k !=
    exclude that are less than a band ahead; when every one is over-served, the least
    over-served relative to its share (so excess spreads evenly)."""
    n = len(probs)
    total = 0.0
    best, best_v = -1, 0.0
    worst, worst_e = -1, 0.0
    for k in range(n):
        if k != exclude and probs[k] > 0.0:
            ek = tokens[k] - probs[k] * ttot
            if ek <= -band and (worst < 0 or ek < worst_e):
                worst, worst_e = k, ek
            w = probs[k] * (ttot + buffer) - tokens[k]
            if w > 0.0 and ek < band:
                total += w
            v = w / probs[k]
            if best < 0 or v > best_v:
                best, best_v = k, v
    if worst >= 0:
        return worst
    if total <= 0.0:
        return best
    x = u * total
    last = -1
    for k in range(n):
        if k == exclude or probs[k] <= 0.0:
            continue
        w = probs[k] * (ttot + buffer) - tokens[k]
        if w <= 0.0 or tokens[k] - probs[k] * ttot >= band:
            continue
        last = k
        if x < w:
            return k
        x -= w
    return last


def switch_prob(r: float, p: float, tokens_l: int, ttot: int, buffer: float) -> float:
    """r_L divided by L's deficit ratio (1 on target, < 1 when over-served), clipped to 1."""
    ratio = (p * (ttot + buffer) - tokens_l) / (p * buffer)
    if ratio <= 0.0:
        return 1.0
    q = r / ratio
    return 1.0 if q > 1.0 else q


def pack(state, probs, rswitch, buffer, band, key, S, need, n_samples, lengths, orders,
         id_first,
         piece_doc, piece_lang, cut_piece, cut_off, cut_len, sample_piece, sample_off,
         affinity=None) -> tuple:
    """Advance the walk until done, a language needs another epoch, or an output is full.
    Returns (code, language needing an epoch or -1). All arrays are updated in place.
    ``affinity``: None, or (p, key, groups, gptr, gdocs, inv, astate): per language the dense
    group of each local document (int32, -1: none), the CSR of each group's non-empty
    documents (gptr int64 [G + 1], gdocs int32), the position table (int64 [n docs]: where each
    document sits in the epoch ``astate[AF_EPOCH + l]`` of ``orders[l]``) and the int64 state
    (AF_*); ``orders`` are then reordered in place (swaps within an epoch)."""
    st = [int(x) for x in state]  # Python ints: exact 64-bit arithmetic, fast scalar access
    probs, rswitch = [float(x) for x in probs], [float(x) for x in rswitch]
    L = len(probs)
    try:
        return _walk(st, probs, rswitch, buffer, band, key, S, need, n_samples, lengths, orders,
                     id_first, piece_doc, piece_lang, cut_piece, cut_off, cut_len,
                     sample_piece, sample_off, L, affinity)
    finally:
        state[:] = st


def _affinity(st, probs, band, orders, lengths, affinity, cur, k) -> int:
    """At a boundary after a whole document of ``cur``: with probability p, bring a member of
    its group to the front of a language's epoch, trying ``k`` (where a switch would go) first,
    then the others in order. Returns that language (switch to it), or -1."""
    ap, akey, groups, gptr, gdocs, inv, ast = affinity
    g = int(groups[cur][int(orders[cur][st[ST_LANG + 3 * cur] - 1])])
    if g < 0:
        return -1
    u = uniform(akey, int(ast[AF_CTR]))
    ast[AF_CTR] += 1
    if u >= ap:
        return -1
    ast[AF_TRY] += 1
    tt = st[ST_TTOT]
    L = len(probs)
    for m in [k] + [x for x in range(L) if x != k and x != cur]:
        bm = ST_LANG + 3 * m
        if m != k and st[ST_LANG + 3 * k + 2] - probs[k] * tt <= -band:
            return -1  # k is a band behind: a switch must go there, not elsewhere
        if probs[m] <= 0.0 or st[bm + 1] != 0 or st[bm] >= len(orders[m]):
            continue  # m resumes a cut document first, or has no epoch read ahead
        room = _band_room(st, probs, band, L, m)  # a member must fit whole, not be band-cut
        n = len(lengths[m])
        ptr = st[bm]
        e = ptr // n
        if int(ast[AF_EPOCH + m]) != e:  # the position table of m's current epoch
            inv[m][np.asarray(orders[m][e * n:(e + 1) * n], dtype=np.int64)] = np.arange(
                e * n, (e + 1) * n, dtype=np.int64)
            ast[AF_EPOCH + m] = e
        for j in range(int(gptr[m][g]), int(gptr[m][g + 1])):
            doc = int(gdocs[m][j])
            at = int(inv[m][doc])
            if ptr <= at and int(lengths[m][doc]) <= room:  # unread this epoch, and it fits
                front = int(orders[m][ptr])
                orders[m][ptr], orders[m][at] = doc, front
                inv[m][doc], inv[m][front] = ptr, at
                ast[AF_HIT] += 1
                return m
    return -1


def _walk(st, probs, rswitch, buffer, band, key, S, need, n_samples, lengths, orders, id_first,
          piece_doc, piece_lang, cut_piece, cut_off, cut_len, sample_piece, sample_off, L,
          affinity=None):
    cap_p, cap_c, cap_s = len(piece_doc), len(cut_piece), len(sample_piece)
    while True:
        phase = st[ST_PHASE]
        if phase == PHASE_DONE:
            return DONE, -1
        if phase == PHASE_START:
            st[ST_CUR] = choose(uniform(key, st[ST_CTR]), probs, [0] * L, 0, buffer, band,
                                -1)
            st[ST_CTR] += 1
            st[ST_PHASE] = PHASE_PLACE
            continue
        cur = st[ST_CUR]
        b = ST_LANG + 3 * cur
        if st[b] >= len(orders[cur]):
            return NEED_EPOCH, cur
        if phase == PHASE_DECIDE:
            pos = st[ST_POS]
            w = pos // S
            inside = pos % S != 0
            k = _peek(st, probs, buffer, band, key, L, cur)  # where a switch would go
            if st[ST_LANG + 3 * k] >= len(orders[k]):
                return NEED_EPOCH, k
            # affinity: d's group member follows d here (switch now, below)
            aff = False
            if inside and affinity is not None:
                m = _affinity(st, probs, band, orders, lengths, affinity, cur, k)
                if m >= 0:
                    k, aff = m, True
            nk = _next_len(st, lengths, orders, k)
            u = uniform(key, st[ST_CTR] + 1)
            st[ST_CTR] += 2
            free = u < switch_prob(rswitch[cur], probs[cur], st[b + 2], st[ST_TTOT], buffer)
            nxt = int(lengths[cur][orders[cur][st[b]]])
            room = (w + 1) * S - pos
            # Forced (window w has no change yet): k's document would reach past the window
            # (it straddles into w + 1, serving both windows: switch now, at the first such
            # boundary, so the least of it spills over), or the next same-language document
            # would. In that second case, when k's document fits, read on into the next
            # document and cut it so that k's ends at (w + 1) S + 1: k's document sits whole
            # in this sample but for its last token, which gives window w + 1 its change.
            plan = False
            c = 0
            force = inside and st[ST_SWWIN] != w and (nxt >= room or nk > room)
            if force and 2 <= nk <= room and not aff:  # (a 1-token document would end at the
                # window end; with affinity the member is placed right after d instead)
                c = (w + 1) * S + 1 - nk
                plan = pos < c < pos + nxt
            # Band (shares): switch when k is a band behind its share, or when the current
            # language could not place one more token without passing a band ahead.
            # A free switch needs room for k (one token without passing a band ahead).
            tt = st[ST_TTOT]
            ek = st[ST_LANG + 3 * k + 2] - probs[k] * tt
            bsw = not force and (ek <= -band or
                                 st[b + 2] - probs[cur] * tt + (1.0 - probs[cur]) > band)
            free = (free or aff) and ek + (1.0 - probs[k]) <= band
            st[ST_BOUND] += 1
            if force:
                st[ST_FORCED] += 1
            elif bsw:
                st[ST_BANDSW] += 1
            else:
                st[ST_FREE] += 1
                st[ST_FREESW] += free
            if plan:  # read on into the next document, cut it so that k's ends at (w+1)S + 1
                st[ST_CUTAT] = c
                st[ST_CUTTO] = k
            elif free or force or bsw:
                st[ST_DOCSW] += 1
                st[ST_CUR] = k
                if inside:
                    st[ST_SWWIN] = w
            st[ST_PHASE] = PHASE_PLACE
            continue
        # PHASE_PLACE: the next piece of the current language, from pos
        if st[ST_OUTP] >= cap_p or st[ST_OUTC] + 1 >= cap_c or st[ST_OUTS] + 1 + \
                (int(lengths[cur][orders[cur][st[b]]]) - st[b + 1]) // S + 1 >= cap_s:
            return OUT_FULL, -1
        local = int(orders[cur][st[b]])
        off = st[b + 1]
        n = int(lengths[cur][local]) - off
        if n == 0:  # an empty document: nothing to place
            st[b] += 1
            continue
        s = st[ST_POS]
        e = s + n
        w = s // S
        ww = -1  # a window this piece would leave without a change inside: cut in it
        if st[ST_CUTAT] > 0:
            ww = w
        elif st[ST_SWWIN] != w and e >= (w + 1) * S:
            ww = w
        elif e >= (w + 2) * S:
            ww = w + 1
        cut = -1
        if st[ST_CUTAT] > 0:  # planned at the boundary (see PHASE_DECIDE)
            cut, k = st[ST_CUTAT], st[ST_CUTTO]
            st[ST_CUTAT] = 0
        elif ww >= 0:
            k = _peek(st, probs, buffer, band, key, L, cur)
            if st[ST_LANG + 3 * k] >= len(orders[k]):
                return NEED_EPOCH, k
            nk = _next_len(st, lengths, orders, k)
            st[ST_CTR] += 1
            # cut so that k's document ends at (ww + 1) S + 1 if it fits (as above), else at
            # the window's last input position
            lower = max(s, ww * S) + 1
            cut = (ww + 1) * S + 1 - nk
            if not lower <= cut <= (ww + 1) * S - 1:
                cut = (ww + 1) * S - 1
            if cut <= s:  # the change must be right here (after skipped empty documents)
                st[ST_CUR] = k
                st[ST_SWWIN] = ww
                st[ST_FORCED] += 1
                continue
        end = e if cut < 0 else cut
        # Band (shares): the piece ends where its language would pass a band ahead of its share
        # or another language a band behind; never at a window edge (a change there serves no
        # window), at least one token.
        bc = s + _band_room(st, probs, band, L, cur)
        if bc < end and bc < need:  # (past the samples' tokens shares no longer count)
            if bc <= s:
                bc = s + 1
            if bc % S == 0:
                bc = bc - 1 if bc - 1 > s else bc + 1
            if bc < end:
                k = _peek(st, probs, buffer, band, key, L, cur)
                st[ST_CTR] += 1
                cut = bc
                end = bc
                ww = bc // S
                st[ST_BANDCUT] += 1
        p = st[ST_PIECES]
        piece_doc[st[ST_OUTP]] = id_first[cur] + local
        piece_lang[st[ST_OUTP]] = cur
        st[ST_OUTP] += 1
        if off > 0 or cut >= 0:
            cut_piece[st[ST_OUTC]] = p
            cut_off[st[ST_OUTC]] = off
            cut_len[st[ST_OUTC]] = end - s
            st[ST_OUTC] += 1
        i = st[ST_SAMPLE]
        while i < n_samples and i * S < end:  # samples whose first token lies in this piece
            sample_piece[st[ST_OUTS]] = p
            sample_off[st[ST_OUTS]] = i * S - s
            st[ST_OUTS] += 1
            i += 1
        st[ST_SAMPLE] = i
        st[ST_PIECES] = p + 1
        st[b + 2] += end - s
        st[ST_TTOT] += end - s
        st[ST_POS] = end
        if cut >= 0:
            st[b + 1] = off + end - s  # the rest is read first when the language comes back
            st[ST_CUTS] += 1
            st[ST_CUR] = k  # a cut is a forced change inside window ww
            st[ST_SWWIN] = ww
        else:
            st[b + 1] = 0
            st[b] += 1
        if end >= need:
            st[ST_PHASE] = PHASE_DONE
        else:
            st[ST_PHASE] = PHASE_PLACE if cut >= 0 else PHASE_DECIDE


def _band_room(st, probs, band, L, cur) -> int:
    """Tokens `cur` may place from here before it is a band ahead of its share, or another
    language falls a band behind: floor of the smallest, capped (the caller places >= 1)."""
    tt = st[ST_TTOT]
    pc = probs[cur]
    x = (band - (st[ST_LANG + 3 * cur + 2] - pc * tt)) / (1.0 - pc)
    for k in range(L):
        if k != cur and probs[k] > 0.0:
            y = (band + (st[ST_LANG + 3 * k + 2] - probs[k] * tt)) / probs[k]
            if y < x:
                x = y
    if x > ROOM_CAP:
        return ROOM_CAP
    return math.floor(x)


def _peek(st, probs, buffer, band, key, L, cur) -> int:
    """The language a switch from `cur` would go to now (the draw at the current counter)."""
    tok = [st[ST_LANG + 3 * k + 2] for k in range(L)]
    return choose(uniform(key, st[ST_CTR]), probs, tok, st[ST_TTOT], buffer, band, cur)


def _next_len(st, lengths, orders, k) -> int:
    """Tokens left in language k's next piece (its pending document's rest, or its next)."""
    b = ST_LANG + 3 * k
    return int(lengths[k][orders[k][st[b]]]) - st[b + 1]
