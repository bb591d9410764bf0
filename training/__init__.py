"""Train, evaluate and export the from-scratch English→Chinese Transformer."""
