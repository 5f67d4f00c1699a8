"""Task data in, model inputs out: readers for TSV / CSV / JSONL files, folders and hub ids, unlabelled text,
and the one place text becomes token ids (encoding, padded batches, fixed-shape buckets, token types)."""
