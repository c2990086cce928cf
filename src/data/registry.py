"""The registry of data sets: `training_loop.data = 'digits'`.

The contract. A data set is a `LightningDataModule` registered by name; its builder (the class) may take `seed` (the
run's seed is offered) and any gin-configurable parameters. It declares what a model built for it receives:

    model_kwargs -> dict     e.g. {"input_shape": (1, 8, 8), "n_outputs": 10}: any keywords, read before training
                             and by `load_model` (keep it cheap: no data loading); InMemoryDataModule derives it from
                             the class attributes `input_shape` and `n_outputs`. Without it, `input_shape` and
                             `n_outputs` class attributes are used.
    use_distributed_sampler  optional; False when the loaders shard the data by rank themselves (InMemoryDataModule).
                             Lightning's default (True): under DDP each process reads its share through a
                             DistributedSampler.

Batches are whatever the module's steps expect; the shipped `supervised` module takes `(inputs, targets)`.
Exact resume: InMemoryDataModule resumes bit-identically, also mid-epoch (its sampler's position is checkpointed and
its shuffle depends on (seed, epoch) only). A plain DataLoader-based module resumes exactly at epoch boundaries
when its shuffle is seeded per epoch (DistributedSampler is; the global RNG state travels in the checkpoint too);
a resume in the middle of an epoch (a SLURM preemption) restarts that epoch's loader. For data that does not fit in
memory, FilesDataModule (src/data/files.py: files on disk, torchdata's StatefulDataLoader) and StreamDataModule
(src/data/streaming.py: litdata, local or object store) read with worker processes and resume exactly mid-epoch too.
"""

from src.registry import Registry

DATA = Registry("data set", offers={"seed": "the run (training_loop.seed): bind that instead"})
