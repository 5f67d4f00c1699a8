"""Graph rewrites and measurements that quantization needs, whatever the backend: the model an exporter traces
([CLS]-only last layer), outlier-channel splitting, per-tensor quantization error and integer coverage."""
