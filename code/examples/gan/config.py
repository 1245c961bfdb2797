"""Every argument of the GAN recipe, static. Usage: edit, `git commit`, then `run <tag> -f`.

The recipe: a DCGAN-like generator and discriminator on scikit-learn's 8x8 digits. Plain
module-level constants, nothing computed here: every public name whose value is plain data is
recorded in statistic.json "hyperparameters" and in each checkpoint, so `con` and `rerun`
never read today's config by mistake. The last section holds the keys the template itself
reads (it checks them before a run is tagged); every other name is the recipe's own, checked
by main.py's check().
"""

# --- data (dataloader.py)
dataset = "digits"  # scikit-learn's bundled 8x8 handwritten digits, scaled to [-1, 1] (the generator's tanh)
val_fraction = 0.1  # every 10th image (index % 10 == 8) is validation ...
test_fraction = 0.1  # ... and index % 10 == 9 is test: real digits the discriminator never trains on
batch_size = 32  # real digits per step (per process under torchrun), and as many generated ones
eval_batch_size = 512  # images per forward pass when evaluating
num_workers = 0  # DataLoader worker processes (the digits sit in memory: 0 is fastest)

# --- models (model.py)
latent = 16  # length of the generator's noise vector z
gen_channels = 16  # the generator's feature maps at 4x4 (twice as many at 2x2)
disc_channels = 16  # the discriminator's feature maps at 4x4 (twice as many at 2x2)

# --- optimization (main.py, epoch.py)
lr_g = 1e-3  # Adam's rate for the generator ...
lr_d = 1e-3  # ... and for the discriminator (DCGAN's 2e-4 learns little in this recipe's 880 steps)
betas = (0.5, 0.999)  # Adam's betas for both: a low beta1 keeps the two players from overshooting
real_label = 1.0  # the discriminator's target for real digits (0.9: one-sided label smoothing)

# --- samples (main.py)
samples = 64  # generated digits in the grid put in TensorBoard at each round's end (8 rows of 8)
sample_seed = 0  # the seed of their fixed noise: the same digits to watch in every round and every run

# --- read by the template (utils/train/settings.py checks these before a run is tagged)
epochs = 20  # full passes over the training data: the run's length, unless max_steps is set
max_steps = 0  # train this many steps instead, across epochs as needed (0: by epochs)
eval_every_steps = 0  # a round (samples, evaluation, row, checkpoint) every this many steps (0: each epoch's end)
log_every_steps = 10  # a metrics.csv row and TensorBoard point every this many steps (0: per round only)
checkpoint_every_steps = 0  # also checkpoint every this many steps: a kill loses no more (0: round ends only)
keep_checkpoints = 2  # newest checkpoints kept
best_metric = None  # a GAN has no natural best: its two losses chase each other, so no epoch_best.pth
best_mode = "max"  # whether higher ("max") or lower ("min") is better, should best_metric name one
stop_on_nan = "train/loss_d"  # a non-finite discriminator loss ends the run as crashed (None: never)
progress_bar = True  # tqdm progress on stderr (never in the log)
device = "auto"  # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1"
deterministic = True  # torch.use_deterministic_algorithms and cudnn.deterministic
cpu_processes = 1  # >1: that many gloo processes on the CPU under torchrun, unless 2+ GPUs are visible (one per GPU)
