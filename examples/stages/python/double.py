"""A container stage in Python with pandas: doubles every numeric column of each batch.

barge hands each batch of rows to `double` as a pandas DataFrame whose numeric columns are
read-only views on the shared-memory ring (no copy), and writes back the frame it returns.
barge_stage is on the PYTHONPATH of every stage container (barge mounts it); see
docs/python-stages.md.
"""
import barge_stage


def double(df):
    numbers = df.select_dtypes("number").columns  # BIGINT and DOUBLE, with or without NULLs
    df[numbers] = df[numbers] * 2  # new columns: the ring's stay untouched
    return df


barge_stage.map_batches(double)
