"""Measuring protection: metrics, disruption per target and condition, the channels a
photo goes through (JPEG, resize, blur), semantic judges and figures.

Imports :mod:`disrupt.core` and :mod:`targets`; nothing in :mod:`disrupt.core` imports it.
"""
