"""Layers with parameters and gradients, composed into networks; no autograd engine."""

from .module import Layer

__all__ = ["Layer"]
