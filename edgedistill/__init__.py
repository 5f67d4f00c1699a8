"""edgedistill: turn a BERT teacher into small, fast, verified on-device models.

Stages (each also a CLI verb): teacher -> distill -> export -> verify -> bench -> report.
Heavy libraries (torch, transformers, backends) are imported inside the stages that need them,
so importing this package and running ``edgedistill --help`` stay instant.
"""

__version__ = "0.1.0"
