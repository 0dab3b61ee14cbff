"""pretrax: pretrain, fine-tune and evaluate Transformer language models with JAX and Flax."""

from setuptools import find_packages, setup

setup(
    name="pretrax",
    version="0.1.0",
    description="Pretrain, fine-tune and measure Transformer LMs (BERT, ALBERT, GPT, XLNet) "
                "with JAX/Flax, TPU-first.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["lm", "lm.*", "objectives", "objectives.*", "data", "data.*",
                                    "launch", "launch.*"]),
    package_data={"data": ["corpora/*.txt.gz", "corpora/*.md", "tokenizers/*.model",
                           "tokenizers/*.vocab", "tokenizers/*.md", "tasks/*.gz", "tasks/*.md"]},
    include_package_data=True,
    install_requires=[
        "jax>=0.7.0,<0.11",
        "flax>=0.11.0,<0.13",
        "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.11.0,<0.13",
        # tf.data only; the CPU wheel where one exists (no CUDA download), else the full package.
        'tensorflow-cpu>=2.16,<2.22; sys_platform == "linux" and platform_machine == "x86_64"',
        'tensorflow>=2.16,<2.22; sys_platform != "linux" or platform_machine != "x86_64"',
        "tensorboard>=2.16",  # tf.summary needs it; newer TF wheels no longer pull it in
        "tensorflow-datasets>=4.9.6,<5",
        "importlib_resources>=6.0",  # tensorflow-datasets needs it offline
        "sentencepiece>=0.2.0,<0.3",
        "absl-py>=2.1",
        "ml_collections>=0.1.1",
        "numpy>=1.26",
        "matplotlib>=3.8",  # the comparison report's plots (written as PNG, no display needed)
        "safetensors>=0.4,<1",  # launch.convert: Hugging Face weights without pickle
        "regex>=2023.0",  # data/hf_tokenizers.py: GPT-2 byte-level BPE pre-tokenizer (\p{L})
    ],
    extras_require={
        # torch + transformers: the Hugging Face parity tests and launch.benchmark's PyTorch side
        # (a CPU wheel here; pinned so pip does not pull a several-GB CUDA build).
        # hypothesis: the property-based fuzz of the input pipeline.
        # nbclient + nbformat + ipykernel: executing notebooks/quickstart.ipynb; pyyaml: reading
        # the generated GKE manifests back.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "hypothesis>=6.100",
                 "torch==2.13.0", "transformers>=4.40,<6", "nbclient>=0.10", "nbformat>=5.9",
                 "ipykernel>=6.29", "pyyaml>=6.0"],
        "torch": ["torch==2.13.0", "transformers>=4.40,<6"],  # launch.benchmark --torch
    },
    entry_points={
        "console_scripts": [
            "pretrax-pretrain=launch.pretrain:run",
            "pretrax-finetune=launch.finetune:run",
            "pretrax-evaluate=launch.evaluate:run",
            "pretrax-compare=launch.compare:run",
            "pretrax-quickstart=launch.quickstart:run",
            "pretrax-train-tokenizer=launch.train_tokenizer:run",
            "pretrax-generate=launch.generate:run",
            "pretrax-benchmark=launch.benchmark:run",
            "pretrax-convert=launch.convert:run",
            "pretrax-submit=launch.submit:run",
        ],
    },
)
