"""An example dg project: two data maps declared in ``defs/*/defs.yaml``."""
