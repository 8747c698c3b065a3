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
    # The packing index's sequential loops in C (plain Python C API). Optional: without a
    # compiler the bit-identical numpy path runs instead, about 3x slower to build the index.
    ext_modules=[] if PURE else [
        Extension("xlda.data._packing_kernel", ["xlda/data/_packing_kernel.c"], optional=True)
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
        "dev": ["pytest>=8", "hypothesis>=6.100", "transformers>=4.44", "matplotlib>=3.8"],
        "lingua": ["lingua-language-detector>=2.0"],
    },
    entry_points={
        "console_scripts": [
            "xlda-preprocess=xlda.cli.preprocess:main",
            "xlda-pretrain=xlda.cli.pretrain:main",
        ]
    },
)
