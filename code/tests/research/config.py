"""The template tests' own research: a tiny regression with two models. Usage: the tests copy it over code/.

Not the example: the template's tests run on this, so a researcher who replaces the example keeps
a passing suite. Its knobs at the end let a test slow, break or poison a run where it wants.
"""

# --- data (dataloader.py): synthetic points, made from a fixed generator
samples = 384  # points in all: 3/4 train, 1/8 validation, 1/8 test
features = 8  # inputs per point
batch_size = 16  # points per step (per process under torchrun)
eval_batch_size = 64  # points per forward pass when evaluating
workers = 0  # DataLoader worker processes for the training data ...
persistent = False  # ... kept from epoch to epoch (persistent_workers)

# --- models (model.py) and optimization (main.py)
width = 32  # the encoder's hidden width
depth = 1  # hidden layers of that width after the first
dropout = 0.2  # dropout in the encoder: the training draws random numbers every step
lr_encoder = 0.05  # SGD with momentum for the encoder ...
lr_head = 0.01  # ... Adam for the head ...
decay = 0.9  # ... whose rate shrinks by this every round (a scheduler stepped at the round's end)
test_best = False  # test epoch_best.pth's weights instead of the last ones
images = False  # put an image of the validation residuals in TensorBoard at every round's end

# --- knobs for the tests
pause = 0.0  # seconds to sleep in every step: a test can stop a run where it likes, costing no CPU
fail_at_step = 0  # raise an error inside this step (0: never) ...
fail_while = ""  # ... only while this file exists under __data__ ("": always) ...
fail_rank = -1  # ... and only on this rank (-1: every rank)
uneven_draws = False  # each rank draws 1 + 7 * rank more random numbers a step, as augmentation might
nan_at_step = 0  # the loss is NaN from this step on (0: never)

# --- read by the template
epochs = 2  # full passes over the training data: the run's length, unless max_steps is set
max_steps = 0  # train this many steps instead, across epochs as needed (0: by epochs)
eval_every_steps = 0  # a round every this many steps (0: at each epoch's end)
log_every_steps = 5  # a metrics.csv row every this many steps (0: per round only)
checkpoint_every_steps = 0  # also checkpoint every this many steps (0: round ends only)
keep_checkpoints = 2  # newest checkpoints kept
best_metric = "val/mse"  # the metric epoch_best.pth follows (None: none) ...
best_mode = "min"  # ... lower is better
stop_on_nan = "train/mse"  # a non-finite value of this step value ends the run (None: never)
progress_bar = False  # tqdm progress on stderr
device = "cpu"  # the tests run on the CPU
deterministic = True  # torch.use_deterministic_algorithms
cpu_processes = 1  # >1: that many gloo processes under torchrun
