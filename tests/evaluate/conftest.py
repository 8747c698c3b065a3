import pytest

from tests.evaluate.fixtures import export_hf, train_tiny_checkpoint, write_tasks


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(ckpt dir, tokenizer.json, HF export) of one tiny model for all evaluation tests."""
    root = tmp_path_factory.mktemp("eval_model")
    ckpt, tok = train_tiny_checkpoint(root)
    return ckpt, tok, export_hf(ckpt, tok, root / "hf")


@pytest.fixture(scope="session")
def toy_tasks(tmp_path_factory):
    return write_tasks(tmp_path_factory.mktemp("eval_tasks"))
