"""Training toolkit: clean a marketplace export, train the CNN / ResNet-50, evaluate."""
