#!/usr/bin/env bash
# The third-party model zoo the tests build models from (constructors only, no weights): torchvision, timm
# and Hugging Face transformers, installed into their own folder (.zoo/), never into the venv.
#
# Why a folder of its own: the package index's torchvision wheel is a CUDA build whose C ops do not load
# beside a CPU torch, and once it sits in the venv Lightning's imports (through torchmetrics) reach it and
# `import lightning_compress` fails. In .zoo/ it is seen only by the zoo tests (tests/zoo.py puts the
# folder last on sys.path and stubs torchvision's meta registrations of its C ops, which its model
# constructors never use). `make demo`'s venv stays as it is. Pinned: the zoo tests' figures depend on them.
set -euo pipefail
ZOO="${ZOO:-.zoo}"
PIP="${PIP:-.venv/bin/pip}"
STAMP="$ZOO/.installed-1"
if [ -f "$STAMP" ]; then
    exit 0
fi
rm -rf "$ZOO"
echo "installing the model zoo (torchvision, timm, transformers) into $ZOO"
# --no-deps: every dependency is listed here, so that nothing pulls a second torch
"$PIP" install --quiet --disable-pip-version-check --no-deps --target "$ZOO" \
    "torchvision==0.28.0" "timm==1.0.31" "transformers==5.25.0" \
    "huggingface_hub==2.4.0" "safetensors==0.8.0" "tokenizers==0.23.3" "regex==2026.12.2" \
    "fsspec==2026.9.0" "hf-xet==1.8.0" "httpx2==2.17.0" "httpcore2==2.17.0" "truststore==0.10.5"
touch "$STAMP"
