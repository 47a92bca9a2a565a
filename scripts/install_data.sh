#!/usr/bin/env bash
# Installs Debian's Fashion-MNIST package (standard IDX .gz files) when it is missing.
# Needs root and apt-get; elsewhere it says what to do and leaves the data module to find the files.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing dataset-fashion-mnist into $dir"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
else
    echo "Fashion-MNIST not found in $dir. Run 'sudo apt-get install dataset-fashion-mnist'," >&2
    echo "or set LIGHTNING_COMPRESS_FASHION_MNIST_DIR, or pass data.download=true." >&2
fi
