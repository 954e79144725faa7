"""Training: the loop (:mod:`~pyrovae.training.trainer`), runs that train, resume and load
(:mod:`~pyrovae.training.run`), the files of a run directory
(:mod:`~pyrovae.training.run_dir`) and its guard, one writer at a time and never over other
files (:mod:`~pyrovae.training.run_guard`); the callbacks the loop calls
(:mod:`~pyrovae.training.callbacks`) and the loggers that are callbacks
(:mod:`~pyrovae.training.loggers`)."""

from .callbacks import Callback, Pictures
from .loggers import CSVLogger, MLflowLogger, TensorBoardLogger
from .run import load_program, load_run, resume, select_device, train
from .trainer import EVAL_SEED, Trainer

__all__ = [
    "EVAL_SEED",
    "CSVLogger",
    "Callback",
    "MLflowLogger",
    "Pictures",
    "TensorBoardLogger",
    "Trainer",
    "load_program",
    "load_run",
    "resume",
    "select_device",
    "train",
]
