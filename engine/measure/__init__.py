"""Measurements made here on the user's images and hardware (DESIGN.md's `measure` layer)."""
