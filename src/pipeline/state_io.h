// Checkpointed state of spec pipeline steps: columns and key tables written to and read from
// the engine's StateWriter/StateReader (row by row, so any type and NULLs round-trip exactly).
#pragma once

#include <vector>

#include "barge/stream/checkpoint.h"
#include "pipeline/column.h"
#include "pipeline/key_table.h"

namespace barge::pipeline {

void SaveColumn(const Column& c, stream::StateWriter& out);
// Appends the rows SaveColumn wrote to `c` (of the same type).
void LoadColumn(Column& c, stream::StateReader& in);

// The keys of `table`, in entry order.
void SaveKeys(const KeyTable& table, stream::StateWriter& out);
// Inserts the keys SaveKeys wrote into `table` (empty, of key types `types`): they get the
// entries they had. Throws StateFormatError when they do not.
void LoadKeys(KeyTable& table, const std::vector<Type>& types, stream::StateReader& in);

}  // namespace barge::pipeline
