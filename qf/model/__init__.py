"""The train/serve contract: what training writes and the sidecar reads, owned in one place.

``qf.train`` and ``scorer`` both depend on this package and never on each other::

    dataset      Donations and Dataset: a round as plain arrays (pure)
    loader       load_dataset: those arrays from the indexed tables (the one I/O module)
    features     feature names and order, fills, cold-start and first-donation rows
    behaviour    the per-donor behaviour features     } both computed the same way
    coordination the donor-project graph features     } for training and serving
    arrays       the flat-array forms of the fitted models, saved as .npz
    calibration  the isotonic calibration's serving form
    recommender  the recommender's serving form
    artifacts    a model version's directory layout, manifest and content hash
    kernels      the numba kernels that walk those arrays on the hot path

A version directory holds exactly the files of :data:`artifacts.MODEL_FILES`,
each written and read by one class of this package.
"""
