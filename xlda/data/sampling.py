"""Language sampling probabilities P(l) and validation of the XLDA mixing knobs."""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence


class MixError(ValueError):
    """A mix, split or packing the data cannot give: the user's knobs, not a bug (the CLIs print
    it as one error line, with the config names turned into flag names)."""


def language_probabilities(
    languages: Sequence[str],
    tokens_per_language: Sequence[int],
    alpha: float,
    beta: Optional[Mapping[str, float]],
) -> list[float]:
    """P(l) = alpha * |D_l| / sum_j |D_j| + (1 - alpha) * beta_l (beta normalised, missing -> 0).

    Raises ValueError with a message naming the bad knob and what to change.
    """
    if not 0.0 <= alpha <= 1.0:
        raise MixError(f"xlda_alpha={alpha} is outside [0, 1]; set --xlda-alpha in [0, 1]")
    beta = dict(beta or {})
    unknown = sorted(set(beta) - set(languages))
    if unknown:
        raise MixError(
            f"xlda_beta names language(s) {unknown} that have no data; known languages are "
            f"{list(languages)}: remove them from xlda_beta or add their data prefixes"
        )
    for lang, b in beta.items():
        if b < 0:
            raise MixError(f"xlda_beta[{lang!r}]={b} is negative; beta weights must be >= 0")
    total_tokens = float(sum(tokens_per_language))
    beta_sum = float(sum(beta.values()))
    if alpha < 1.0 and beta_sum == 0.0:
        raise MixError(
            f"xlda_alpha={alpha} < 1 but xlda_beta is empty or all zero: give xlda_beta weights "
            f"for {list(languages)} or set xlda_alpha=1 (sample by corpus size)"
        )
    if alpha > 0.0 and total_tokens == 0.0:
        raise MixError("all languages have zero tokens; xlda_alpha > 0 needs non-empty data")
    probs = []
    for lang, n in zip(languages, tokens_per_language):
        p = 0.0
        if alpha > 0.0:
            p += alpha * n / total_tokens
        if alpha < 1.0:
            p += (1.0 - alpha) * beta.get(lang, 0.0) / beta_sum
        probs.append(p)
    s = sum(probs)
    if s <= 0.0:
        raise MixError("all language probabilities P(l) are zero; check xlda_alpha/xlda_beta")
    return [p / s for p in probs]


def validate_rho(rho: float) -> None:
    if not 0.0 < rho <= 1.0:
        raise MixError(
            f"xlda_rho={rho} must be in (0, 1]: it is the per-document language switch "
            f"probability (0 would never switch, which XLDA packing cannot satisfy)"
        )


def check_packable(
    languages: Sequence[str], probs: Sequence[float], tokens: Sequence[int], where: str
) -> None:
    """Fail unless >=2 languages have P>0 and every language with P>0 has tokens."""
    for lang, p, n in zip(languages, probs, tokens):
        if p > 0 and n == 0:
            raise MixError(
                f"language {lang!r} has P(l)={p:.4g} but 0 tokens in {where}; give it documents "
                f"(or a larger share of the split, e.g. --split 90,10,0), or set its xlda_beta to 0 "
                f"with xlda_alpha=0"
            )
    active = [lang for lang, p in zip(languages, probs) if p > 0]
    if len(active) < 2:
        raise MixError(
            f"XLDA packing needs >= 2 languages with P(l) > 0 in {where}, got {active or 'none'} "
            f"(languages with data: {list(languages)}); add another language's prefixes to "
            f"lang_prefixes or give it a positive xlda_beta"
        )


def check_mix(languages: Sequence[str], probs: Sequence[float], seq_length: int,
              where: str = "the index") -> None:
    """Fail unless the >= 2-languages guarantee can hold at these shares: every window needs
    >= 1 token of a language other than the largest (each such token lies in one window), so
    (1 - max P) * S >= 1. A smaller mix is refused, never silently trained on another."""
    i = max(range(len(probs)), key=lambda j: probs[j])
    top, rest = languages[i], 1.0 - float(probs[i])
    if rest * seq_length < 1.0 - 1e-9:
        need = math.ceil(1.0 / rest - 1e-9) if rest > 0 else None
        fix = (f"raise --seq-length to >= {need}" if need else "give another language P > 0")
        raise MixError(
            f"language {top!r} has P(l)={probs[i]:.6g} in {where}: the other languages get "
            f"{rest * seq_length:.3g} tokens per window of --seq-length {seq_length}, and the "
            f">= 2-languages guarantee needs >= 1; {fix}, or lower {top!r}'s share "
            f"(--xlda-beta / --xlda-alpha, or the --data-path weights)")


def check_realized(languages: Sequence[str], shares: Sequence[float], probs: Sequence[float],
                   tolerance: Optional[float], num_samples: int, seq_length: int) -> None:
    """The build's backstop: fail if a built index's realized shares miss P by more than the
    promised tolerance (a mix at the edge of what the guarantee allows, or a bug)."""
    if tolerance is None:
        return
    miss = [abs(float(a) - float(b)) for a, b in zip(shares, probs)]
    worst = max(range(len(miss)), key=lambda j: miss[j])
    if miss[worst] > tolerance:
        raise MixError(
            f"packing index: language {languages[worst]!r} came out at share "
            f"{shares[worst]:.4f} against P(l)={probs[worst]:.4f} (tolerance {tolerance} for "
            f"{num_samples} windows of --seq-length {seq_length}): this mix is at the edge of "
            f"what the >= 2-languages guarantee allows; raise --seq-length or the smaller "
            f"languages' shares (--xlda-beta / --xlda-alpha, or the --data-path weights)")
