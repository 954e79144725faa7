"""``pyrovae export``: a trained run's encoder and decoder as files plain PyTorch loads
(:func:`pyrovae.export.export_model`)."""

from __future__ import annotations


def export(run_dir: str, *, out: str, device: str) -> None:
    """Export the encoder and decoder of the run ``run_dir`` into the new or empty folder
    ``out``, with ``model.json`` saying what their inputs and outputs are."""
    from .. import distributed
    from ..export import SPEC_FILE, export_model
    from ..training.run import load_program

    if not distributed.is_main():  # under torchrun, one process writes the folder
        return
    program, config, _ = load_program(run_dir, device=device)
    spec = export_model(program, out, data=dict(config["data"]))
    formats = {spec[n]["format"] for n in ("encoder", "decoder")}
    files = ", ".join(spec[n]["file"] for n in ("encoder", "decoder"))
    print(f"exported {files} ({' and '.join(sorted(formats))}) and {SPEC_FILE} to {out}")
