import importlib.util

import pytest

# The curation stage is an extra (pip install -e .[curate]); without datatrove its tests are
# not collected rather than erroring at import.
if importlib.util.find_spec("datatrove") is None:
    collect_ignore_glob = ["test_*.py"]

ANNEAL = "en=0.2,ko=0.1,ja=0.1,zh=0.1"


def run_local(inputs, out, **kw):
    from xlda.curate.config import CurateConfig

    cfg = dict(inputs=[str(x) for x in inputs], output_dir=str(out), workers=1)
    cfg.update(kw)
    return CurateConfig(**cfg).build().run()


@pytest.fixture(scope="session")
def planted(corpus, tmp_path_factory):
    from tests.curate.planted import build

    return build(corpus, tmp_path_factory.mktemp("curate_in"))


@pytest.fixture(scope="session")
def curated(planted, tmp_path_factory):
    """One full local run over the planted corpus, shared by the pipeline tests."""
    from xlda.curate.config import parse_lang_fractions

    out = tmp_path_factory.mktemp("curate_out") / "out"
    manifest = run_local(planted.files, out, score_field="score",
                         anneal_top=parse_lang_fractions(ANNEAL))
    return out, manifest
