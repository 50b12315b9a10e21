"""Benchmarking: grids of targets x attacks x budgets, their configs and reports, speed,
universal-perturbation training and preset tables. Nothing below imports it.
"""
