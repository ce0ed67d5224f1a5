from launcher_support import BasicLookalike as Launcher  # noqa: F401  (a name with "basic" in its path)
