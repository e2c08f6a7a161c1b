#!/usr/bin/env bash
# Trainer throughput at ~1B parameters on one H100/H200 (ViT-L/14 at 448 + a Qwen2-0.5B-shaped LM, bf16, packing):
# tokens/s, peak memory and MFU, packed rows against padded rows. Under 8 minutes; needs the project venv (make test).
# Extra arguments go to bench/train_gpu.py (--steps, --micro-batch, --grad-checkpointing, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
exec .venv/bin/python bench/train_gpu.py "$@"
