"""What is built on the training recipe (src/training_loop.py) and its run folders: rebuild a trained run from its
folder (reload.py), evaluate one of its checkpoints (evaluate.py), find a learning rate for a config (find_lr.py)."""
