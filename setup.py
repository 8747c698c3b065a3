"""xlda: cross-lingual document attention (XLDA) pretraining on megatron-core.

Metadata lives here (not only in pyproject) so `pip install -e .` works with old pip too.
torch and megatron-core are ranges: clusters bring their own CUDA torch; CI pins the CPU
build through constraints-cpu.txt.
"""
import os

from setuptools import Extension, find_packages, setup

# XLDA_PURE_PYTHON=1 builds a py3-none-any wheel without the C kernel (benchmarks/
# prepare_wheels.sh: a wheel for another Python version / an offline GPU machine).
PURE = os.environ.get("XLDA_PURE_PYTHON") == "1"

setup(
    name="xlda",
    version="0.1.0",
    description="Cross-lingual document attention pretraining on megatron-core (Trillion-7B style)",
    python_requires=">=3.11",
    packages=find_packages(include=["xlda", "xlda.*"]),
    # The packing walk in C (plain Python C API). Optional: without a compiler its
    # bit-identical Python twin runs instead (xlda/data/packing_ref.py; fine for small data,
    # far too slow for a real corpus). No FMA contraction: results must match Python's floats.
    ext_modules=[] if PURE else [
        Extension("xlda.data._packing_kernel", ["xlda/data/_packing_kernel.c"], optional=True,
                  extra_compile_args=["-O2", "-ffp-contract=off"])
    ],
    install_requires=[
        "torch>=2.4",
        "megatron-core>=0.16.1",
        "numpy>=1.26",
        "pyyaml>=6",
        "psutil>=5.9",  # dist_checkpointing's async/process writers
        "tokenizers>=0.19",
        "sentencepiece>=0.2",
        "zstandard>=0.22",
        "safetensors>=0.4",
        "tensorboard>=2.15",
    ],
    extras_require={
        # trl: test-only, the DPO loss is checked against TRL's DPOTrainer (tests/posttrain)
        "dev": ["pytest>=8", "hypothesis>=6.100", "transformers>=4.44", "matplotlib>=3.8",
                "trl>=0.19",
                # datatrove's default English word tokenizer: the curation parity test
                "spacy>=3.7"],
        # posttrain.py (xlda.posttrain): chat templates are rendered by transformers (Jinja)
        "posttrain": ["transformers>=4.44", "jinja2>=3.1"],
        # posttrain.py rlvr's accuracy reward: math answer equivalence (an exact-match
        # fallback without it)
        "rlvr": ["math-verify>=0.7"],
        "lingua": ["lingua-language-detector>=2.0"],
        # tools/evaluate.py (xlda.evaluate): benchmarks through lm-evaluation-harness
        "eval": ["lm-eval>=0.4.9,<0.5"],
        # Data curation (xlda.curate, tools/curate.py): datatrove's pipeline/executors, Parquet,
        # fastText quality classifier (the maintained build with numpy 2 wheels; the archived
        # `fasttext` 0.9.3 sdist trains NaNs when built with current compilers).
        "curate": ["datatrove>=0.10.1,<0.11", "pyarrow>=14", "fasttext-community>=0.11.9",
                   "regex>=2023.0", "orjson>=3.8"],
    },
    entry_points={
        "console_scripts": [
            "xlda-preprocess=xlda.cli.preprocess:main",
            "xlda-pretrain=xlda.cli.pretrain:main",
            "xlda-curate=xlda.curate.cli:main",
        ]
    },
)
