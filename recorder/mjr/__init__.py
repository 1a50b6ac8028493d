"""Janus's own recordings (.mjr): the file format (format.py, pure), which CallVault track each file
becomes (naming.py, pure), the offline replay of a track's packets through the recording pipeline
(replay.py) and the import of a set of files into CallVault recordings (importer.py)."""
