"""Perturbation methods: occlusion, feature ablation, Shapley values (see the modules)."""
