"""Pipeline stages and commands: one thin Hydra app per DVC stage, built on the `w2v` library."""
