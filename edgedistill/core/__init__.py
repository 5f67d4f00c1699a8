"""The foundation every stage stands on: configuration and target profiles, errors, logging, atomic writes,
the stage cache and content hashes, the host and device classes, the export formats table, model references."""
