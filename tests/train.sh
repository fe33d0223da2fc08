#!/bin/sh
# The training pipeline's unit tests (tests/test_train.py) with Debian's PyTorch and numpy, which
# `make test` installs; they run on the system python3 that those packages serve.
PY=/usr/bin/python3
if ! $PY -c "import torch, numpy" 2>/dev/null; then
    echo "skipped: python3-torch or python3-numpy is not installed"
    echo "0 passed, 0 failed"
    exit 0
fi
exec $PY "$(dirname "$0")/test_train.py"
