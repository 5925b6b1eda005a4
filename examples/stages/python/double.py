"""A container stage in Python with pandas: doubles every numeric column of each batch.

barge hands each batch of rows to `double` as a pandas DataFrame whose numeric columns are
read-only views on the shared-memory ring (no copy), and writes back the frame it returns.
barge_stage is on the PYTHONPATH of every stage container (barge mounts it); see
docs/python-stages.md.
"""
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

import barge_stage


def double(df):
    # A new frame of the columns, each numeric one (BIGINT or DOUBLE, with or without NULLs)
    # doubled: no column is copied that need not be (select_dtypes and df[cols] = ... would copy
    # the whole batch, twice).
    return pd.DataFrame(
        {name: col * 2 if is_numeric_dtype(col) and not is_bool_dtype(col) else col
         for name, col in df.items()},
        copy=False)


barge_stage.map_batches(double)
