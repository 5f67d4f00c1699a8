"""The export stage: one model, one target -> a verified artifact folder. The backends (one module per format,
the contract in ``backends/base.py``), the parity gate, golden vectors, model cards and artifact file records."""
