"""The template's side of the training process; main.py uses utils/train/run.py (Run, train).

Nothing is imported here: the launcher reads settings.py and checkpoint.py without torch.
"""
