"""Every argument of a word-level language model run, static. Usage: edit, `git commit`, then `run <tag> -f`.

The lm recipe (code/examples/lm/): start from it with `cp code/examples/lm/*.py code/`. Plain
module-level constants, nothing computed here: every public name is recorded in statistic.json
"hyperparameters" and in each checkpoint. The last section holds the keys the template itself
reads; every other name is the recipe's own, checked by main.py's check().
"""

# --- data (dataloader.py)
corpus = "sklearn-descr"  # scikit-learn's dataset descriptions (sklearn/datasets/descr/*.rst): installed, no download
val_fraction = 0.1  # every 10th line (index % 10 == 8) is validation ...
test_fraction = 0.1  # ... and index % 10 == 9 is test: a fixed rule, the same on every machine
min_count = 2  # training words seen fewer times than this become <unk> (val and test words unseen in training too)
batch_size = 16  # parallel token streams of the training grid: columns per step (per process under torchrun)
bptt = 24  # tokens per training chunk (backpropagation through time this far)
eval_batch_size = 8  # parallel token streams of the validation and test grids

# --- model (model.py)
rnn = "LSTM"  # "LSTM" or "GRU"
emsize = 64  # word embedding width
nhid = 64  # hidden units per layer (tied needs nhid == emsize)
nlayers = 1  # recurrent layers
dropout = 0.2  # dropout on the embeddings and the recurrent output, in [0, 1)
tied = True  # the decoder shares the embedding's weights (Press & Wolf 2017)

# --- optimization (main.py, epoch.py)
lr = 10.0  # plain SGD's initial learning rate, as word_language_model (it clips hard, so this is not too high)
grad_clip = 0.25  # clip the gradient norm to this (0: no clipping)
lr_factor = 0.25  # ReduceLROnPlateau on val/loss: multiply the rate by this when it stops improving ...
lr_patience = 0  # ... for more evaluations in a row than this ...
lr_threshold = 1e-4  # ... where a relative improvement smaller than this counts as none

# --- speed (main.py)
threads = 1  # torch's CPU threads per process (0: torch's default): one is fastest for a model this small

# --- read by the template (utils/train/settings.py checks these before a run is tagged)
epochs = 40  # only when max_steps is 0: full passes over the training grid
max_steps = 600  # the run's length in optimizer steps, across epochs as needed (language models train by steps)
eval_every_steps = 50  # a round (evaluation, plateau step, metrics.csv row, checkpoint) every this many steps
log_every_steps = 10  # a metrics.csv row and TensorBoard point every this many steps (0: per round only)
checkpoint_every_steps = 0  # also checkpoint every this many steps: a kill loses no more (0: round ends only)
keep_checkpoints = 2  # newest checkpoints kept (epoch_best.pth's target is always kept too)
best_metric = "val/ppl"  # the metric epoch_best.pth follows (None: no best checkpoint) ...
best_mode = "min"  # ... and lower perplexity is better
stop_on_nan = "train/loss"  # a non-finite value of this step value ends the run as crashed (None: never)
progress_bar = True  # tqdm progress on stderr (never in the log)
device = "auto"  # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1"
deterministic = True  # torch.use_deterministic_algorithms and cudnn.deterministic
cpu_processes = 1  # >1: that many gloo processes on the CPU under torchrun, unless 2+ GPUs are visible (one per GPU)
