"""From paths to predictions: the library behind `sercli classify`.

    settings.py  what a run is asked for (features, window, top-k, segments, debug), one object
    windows.py   one file: decoding, cutting into windows, window features (Analysed)
    workers.py   many files: local worker processes or a dask cluster, in bounded chunks
    grouping.py  group keys for --normalize-by (shared with evaluate)
    classify.py  ClipResult, classify(), classify_file(): the model on batches of windows

Files are decoded and turned into features in parallel (joblib, results in input order, at most
two chunks of files running, so that memory stays bounded); the model runs in the main process
on batches of windows. A recording longer than the window is cut into overlapping windows, each
labelled, and the file's scores are the mean over its non-silent windows. Recordings longer than
windows.LONG_FILE_S are streamed window by window in the main process, so memory stays bounded
whatever their length.
"""
