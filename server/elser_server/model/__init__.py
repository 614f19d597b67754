"""Model packages: the on-disk format, the torch-free converter, the model repository and the `elser-model` CLI."""
