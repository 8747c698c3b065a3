import pytest

from xlda.data.sampling import check_packable, language_probabilities, validate_rho


def test_p_mixes_size_and_beta_exactly():
    # |D| = 300, 100 -> size shares .75/.25; beta {ko: 3, en: 1} -> .25/.75
    p = language_probabilities(["en", "ko"], [300, 100], 0.5, {"ko": 3.0, "en": 1.0})
    assert p == pytest.approx([0.5 * 0.75 + 0.5 * 0.25, 0.5 * 0.25 + 0.5 * 0.75])


def test_alpha_one_is_size_proportional_and_missing_beta_is_zero():
    assert language_probabilities(["en", "ko", "ja"], [2, 1, 1], 1.0, None) == pytest.approx(
        [0.5, 0.25, 0.25])
    assert language_probabilities(["en", "ko", "ja"], [2, 1, 1], 0.0, {"ko": 2, "ja": 2}) == \
        pytest.approx([0.0, 0.5, 0.5])


@pytest.mark.parametrize("alpha, beta, match", [
    (1.5, None, r"xlda_alpha=1.5 is outside \[0, 1\]"),
    (-0.1, None, r"outside \[0, 1\]"),
    (0.5, {"ko": -1.0}, r"xlda_beta\['ko'\]=-1.0 is negative"),
    (0.5, {"fr": 1.0}, r"\['fr'\].*known languages are \['en', 'ko'\]"),
    (0.5, {}, r"xlda_beta is empty or all zero"),
    (0.0, {"en": 0.0, "ko": 0.0}, r"all zero"),
])
def test_bad_alpha_beta_messages(alpha, beta, match):
    with pytest.raises(ValueError, match=match):
        language_probabilities(["en", "ko"], [10, 10], alpha, beta)


@pytest.mark.parametrize("rho", [0.0, -0.5, 1.01])
def test_bad_rho(rho):
    with pytest.raises(ValueError, match=r"xlda_rho=.* must be in \(0, 1\]"):
        validate_rho(rho)


def test_packable_errors_name_the_language():
    with pytest.raises(ValueError, match=r"language 'ko' has P\(l\)=0.5 but 0 tokens in train"):
        check_packable(["en", "ko"], [0.5, 0.5], [10, 0], "train")
    with pytest.raises(ValueError, match=r"needs >= 2 languages .* got \['en'\]"):
        check_packable(["en", "ko"], [1.0, 0.0], [10, 10], "train")
    check_packable(["en", "ko"], [0.5, 0.5], [10, 10], "train")  # fine
