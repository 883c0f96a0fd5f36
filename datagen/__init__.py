"""Data generators: datasets and benchmarks the project builds for itself (never committed)."""
