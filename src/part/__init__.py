"""part — PART (PAirwise Relative Translations) self-supervised pretraining.

Paper: "How PARTs assemble into wholes: Learning the relative composition of images".
"""

__version__ = "0.1.0"
