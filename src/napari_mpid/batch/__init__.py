"""Batches of files: what ``napari-mpid denoise`` does between the command line and the core.

- :mod:`~napari_mpid.batch.jobs`: inputs (files, folders, globs) to jobs,
  and their output paths checked before any compute.
- :mod:`~napari_mpid.batch.run`: one job after another in this process,
  plane by plane into outputs created under temporary names, resumable.
- :mod:`~napari_mpid.batch.journal`: the resume journal beside each output.
- :mod:`~napari_mpid.batch.report`: one-line errors, warnings and the closing
  summary.
- :mod:`~napari_mpid.batch.cluster`: the same steps with the planes spread
  over Dask workers; it imports ``run``, never the reverse.

Files are read and written through :mod:`napari_mpid.files`, which never
imports this package. Importing it imports neither torch nor Dask: the core
and the model are imported when a job runs.
"""
