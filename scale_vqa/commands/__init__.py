"""One module per ``scale-vqa`` subcommand (see :mod:`scale_vqa.cli`)."""
