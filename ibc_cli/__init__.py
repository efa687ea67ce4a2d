"""The command-line tools (ibc-train, ibc-eval, ibc-data, ibc-bench, ibc-replay, ibc-ros): argument
parsing over the layers below. The top layer: it may import any package, and none imports it
(docs/ARCHITECTURE.md)."""
