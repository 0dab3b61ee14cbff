"""Running one training command on many hosts: local processes, TPU VM slices, GKE, Slurm.

Each target module builds, as pure functions, what a user would paste or apply (commands,
scripts, manifests); ``launch/submit.py`` prints them (``--dry_run``) or runs them. Every value
they write is checked or quoted by ``values`` (strict character sets, ``shlex.join``, YAML
written from data), so none can add a command, a word, a directive or a manifest key.
"""
