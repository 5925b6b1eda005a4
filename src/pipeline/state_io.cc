#include "pipeline/state_io.h"

#include <memory>

namespace barge::pipeline {

void SaveColumn(const Column& c, stream::StateWriter& out) {
  out.Put<uint8_t>(static_cast<uint8_t>(c.type()));
  out.Put<uint64_t>(c.size());
  for (size_t i = 0; i < c.size(); ++i) {
    const bool valid = c.IsValid(i);
    out.Put<uint8_t>(valid ? 1 : 0);
    if (!valid) continue;
    switch (c.type()) {
      case Type::kInt64:
      case Type::kTimestamp:
        out.Put(c.ints()[i]);
        break;
      case Type::kDouble:
        out.Put(c.doubles()[i]);
        break;
      case Type::kBool:
        out.Put(c.bools()[i]);
        break;
      case Type::kString:
        out.PutString(c.String(i));
        break;
      case Type::kNull:
        break;
    }
  }
}

void LoadColumn(Column& c, stream::StateReader& in) {
  const auto type = static_cast<Type>(in.Get<uint8_t>());
  if (type != c.type()) throw stream::StateFormatError("a column's type differs");
  const uint64_t n = in.Get<uint64_t>();
  for (uint64_t i = 0; i < n; ++i) {
    if (in.Get<uint8_t>() == 0) {
      c.AppendNull();
      continue;
    }
    switch (type) {
      case Type::kInt64:
      case Type::kTimestamp:
        c.AppendInt(in.Get<int64_t>());
        break;
      case Type::kDouble:
        c.AppendDouble(in.Get<double>());
        break;
      case Type::kBool:
        c.AppendBool(in.Get<uint8_t>() != 0);
        break;
      case Type::kString:
        c.AppendString(in.GetString());
        break;
      case Type::kNull:
        c.AppendNull();
        break;
    }
  }
}

void SaveKeys(const KeyTable& table, stream::StateWriter& out) {
  out.Put<uint64_t>(table.size());
  for (const Column& c : table.keys()) SaveColumn(c, out);
}

void LoadKeys(KeyTable& table, const std::vector<Type>& types, stream::StateReader& in) {
  const uint64_t n = in.Get<uint64_t>();
  RecordBatch b;
  auto schema = std::make_shared<Schema>();
  std::vector<int> key_columns;
  for (size_t k = 0; k < types.size(); ++k) {
    schema->fields.push_back({"k" + std::to_string(k), types[k]});
    key_columns.push_back(static_cast<int>(k));
  }
  b.Reset(schema);
  for (Column& c : b.columns) {
    LoadColumn(c, in);
    if (c.size() != n) throw stream::StateFormatError("key columns of different lengths");
  }
  b.rows = n;
  if (n == 0) return;
  std::vector<uint64_t> hashes;
  if (table.uses_hashes()) HashKeys(b, key_columns, hashes);
  std::vector<uint32_t> entries(n);
  table.FindOrInsert(b, key_columns, table.uses_hashes() ? hashes.data() : nullptr, nullptr, n,
                     entries.data());
  for (uint64_t i = 0; i < n; ++i) {
    if (entries[i] != i) throw stream::StateFormatError("keys repeat in a key table");
  }
}

}  // namespace barge::pipeline
