"""Built-in demo data: a DCASE 2023-style tree of synthetic machine sounds and a noise library."""

from asd_core.demo.generate import SIZES, DemoSize, make_demo_data

__all__ = ["SIZES", "DemoSize", "make_demo_data"]
