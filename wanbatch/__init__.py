"""wanbatch: batch generation for Alibaba's Wan 2.6 image model (DashScope), resumable and cost-safe."""

from __future__ import annotations

__version__ = "0.1.0"
