"""Tables in partitions, and the cluster that processes them: `engine: dask` and folder inputs.

A folder `data.path` is split partition by partition (a stable hash of each row's id decides its
split), only partitions not seen before are processed (the manifest, data/prepared/manifest.json),
and with `engine: dask` the work and the training run on a Dask cluster: a local one inside the
stage, or a running scheduler named by `dask.address`. The trained model is the same bundle as the
local engine's, so predict, serve, the gate and the registry do not change.
"""
