#!/usr/bin/env bash
# Train one AttGAN arm from scratch in segments and keep its generator at milestones,
# so benchmarks/generator_robustness.py can follow robustness against training length:
#     bash benchmarks/attgan_arms.sh PACK64 OUT_DIR DEADLINE_EPOCH [--set KEY=VALUE ...]
# writes OUT_DIR/snapshots/g_<iterations>.pt and train_<iterations>.json (see
# benchmarks/train_segments.sh, which does the work). Examples:
#     bash benchmarks/attgan_arms.sh PACK64 ~/.cache/disrupt-train/attgan_study/shortcut1 \
#         "$(date -d '+2 hours' +%s)"
#     bash benchmarks/attgan_arms.sh PACK64 ~/.cache/disrupt-train/attgan_study/shortcut0 \
#         "$(date -d '+2 hours' +%s)" --set shortcut_layers=0
exec bash "$(dirname "$0")/train_segments.sh" attgan "$@"
