"""Every argument of a run, static. Usage: edit, `git commit`, then `run <tag> -f`.

Plain module-level constants, nothing computed here. Every public name whose value is plain
data is recorded in statistic.json "hyperparameters" and in each checkpoint, so `con` and
`rerun` never read today's config by mistake. The last section holds the keys the template
itself reads (it checks them before a run is tagged); every other name is the research's own,
checked by main.py's check().
"""

# --- data (the example: dataloader.py)
dataset = "digits"  # scikit-learn's bundled 8x8 handwritten digits, prepared into __data__/ once
val_fraction = 0.1  # every 10th image (index % 10 == 8) is validation ...
test_fraction = 0.1  # ... and index % 10 == 9 is test: a fixed rule, the same on every machine
batch_size = 32  # images per optimizer step (per process under torchrun)
eval_batch_size = 512  # images per forward pass when evaluating
num_workers = 0  # DataLoader worker processes (the example's data sits in memory: 0 is fastest)

# --- model (model.py)
channels = (16, 32)  # output channels of the two conv blocks
hidden = 64  # width of the fully connected layer
dropout = 0.1  # dropout before the classifier, in [0, 1)

# --- optimization (main.py, epoch.py)
optimizer = "sgd"  # "sgd" or "adamw"
lr = 0.05  # peak learning rate
optim = {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}  # optimizer options
warmup_epochs = 1  # linear warm-up from lr/10, then cosine decay to 0, stepped every batch
grad_clip = 0.0  # clip the gradient norm to this (0: no clipping)
amp = False  # mixed precision (bfloat16 autocast; float16 with a grad scaler on older GPUs)
torch_compile = False  # torch.compile the model (worth it on GPU for real models)

# --- read by the template (utils/train/settings.py checks these before a run is tagged)
epochs = 12  # full passes over the training data: the run's length, unless max_steps is set
max_steps = 0  # train this many steps instead, across epochs as needed (0: by epochs)
eval_every_steps = 0  # a round (evaluation, row, checkpoint) every this many steps (0: at each epoch's end)
log_every_steps = 10  # a metrics.csv row and TensorBoard point every this many steps (0: per round only)
checkpoint_every_steps = 0  # also checkpoint every this many steps: a kill loses no more (0: round ends only)
keep_checkpoints = 2  # newest checkpoints kept (epoch_best.pth's target is always kept too)
best_metric = "val/acc"  # the metric epoch_best.pth follows (None: no best checkpoint) ...
best_mode = "max"  # ... and whether higher ("max") or lower ("min") is better
stop_on_nan = "train/loss"  # a non-finite value of this step value ends the run as crashed (None: never)
progress_bar = True  # tqdm progress on stderr (never in the log)
device = "auto"  # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1"
deterministic = True  # torch.use_deterministic_algorithms and cudnn.deterministic
cpu_processes = 1  # >1: that many gloo processes on the CPU under torchrun, unless 2+ GPUs are visible (one per GPU)
