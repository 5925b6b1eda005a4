// Test helpers shared by the pipeline layer's tests: a temporary directory for a spec and its
// inputs, and running a planned spec while collecting its results.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "pipeline/format.h"
#include "pipeline/planner.h"

namespace barge::pipeline::testing {

// A spec's temporary directory with its input files.
class Workdir {
 public:
  Workdir() : dir_(std::move(TempDir::Make().value())) {}
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_.path() + "/" + name;
    EXPECT_TRUE(WriteFile(path, text).ok());
    return path;
  }
  std::string Read(const std::string& name) {
    auto text = ReadFile(dir_.path() + "/" + name);
    return text.ok() ? *text : "<missing>";
  }
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_;
};

struct Outcome {
  Status status;
  std::vector<std::string> rows;  // every result row as JSON, sorted
  std::string plan;
};

// Plans `spec` with `options` and runs it; unless `collect` is false, every result row is
// collected (each batch's shape checked).
inline Outcome RunCollecting(const Result<Spec>& spec, PlanOptions options, bool collect = true) {
  Outcome o;
  if (!spec.ok()) {
    o.status = spec.status();
    return o;
  }
  std::mutex mu;
  if (collect) {
    options.collect = [&](const RecordBatch& b) {
      EXPECT_EQ(b.CheckShape(), "");
      std::lock_guard lock(mu);
      for (size_t i = 0; i < b.rows; ++i) {
        std::string row;
        AppendJsonRow(b, i, row);
        o.rows.push_back(row);
      }
    };
  }
  Result<std::unique_ptr<SpecPipeline>> p = SpecPipeline::Make(*spec, options);
  if (!p.ok()) {
    o.status = p.status();
    return o;
  }
  o.plan = (*p)->PlanText();
  o.status = (*p)->Run();
  std::sort(o.rows.begin(), o.rows.end());
  return o;
}

}  // namespace barge::pipeline::testing
