"""What drives a training: the parts built by name (parts.py), Lightning's Trainer (lightning_trainer.py), the
callbacks every run has (callbacks/), the speed switches, fitting and testing, evaluation and reloading a run."""
