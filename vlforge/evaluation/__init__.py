"""Scoring model outputs with the metrics Qwen-VL reports (VQA score, CIDEr-D, ANLS, relaxed accuracy,
exact match, multiple choice, grounding accuracy), and `vlforge score` / `vlforge eval` around them.

The metric modules are pure Python; only the checkpoint evaluation (`run_eval`) imports torch.
"""
