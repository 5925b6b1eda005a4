// BatchPtr: how a RecordBatch travels through the stream engine. The engine moves records of
// type BatchPtr (one per engine batch, so one channel slot carries one columnar batch); a BatchPtr
// owns its RecordBatch and gives it back to its BatchPool when destroyed, buffers and all, so a
// pipeline in its steady state allocates nothing.
#pragma once

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "pipeline/column.h"

namespace barge::pipeline {

class BatchPool;

class BatchPtr {
 public:
  BatchPtr() = default;
  BatchPtr(std::unique_ptr<RecordBatch> batch, BatchPool* pool)
      : batch_(std::move(batch)), pool_(pool) {}
  ~BatchPtr() { Release(); }
  BatchPtr(BatchPtr&& other) noexcept
      : batch_(std::move(other.batch_)), pool_(std::exchange(other.pool_, nullptr)) {}
  BatchPtr& operator=(BatchPtr&& other) noexcept {
    if (this != &other) {
      Release();
      batch_ = std::move(other.batch_);
      pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
  }
  BatchPtr(const BatchPtr&) = delete;
  BatchPtr& operator=(const BatchPtr&) = delete;

  explicit operator bool() const { return batch_ != nullptr; }
  RecordBatch& operator*() const { return *batch_; }
  RecordBatch* operator->() const { return batch_.get(); }
  RecordBatch* get() const { return batch_.get(); }

  // For the engine's metrics and batching (stream::RowBatch).
  size_t row_count() const { return batch_ ? batch_->rows : 0; }
  size_t byte_size() const { return batch_ ? batch_->ByteSize() : 0; }

 private:
  void Release();

  std::unique_ptr<RecordBatch> batch_;
  BatchPool* pool_ = nullptr;
};

// Recycles RecordBatches among the threads of one pipeline. Outlives every BatchPtr it handed
// out (the pipeline owns it and is destroyed after the engine's channels).
class BatchPool {
 public:
  // An empty batch for `schema`; its buffers keep the capacity of earlier use.
  BatchPtr Get(const std::shared_ptr<const Schema>& schema) {
    std::unique_ptr<RecordBatch> batch;
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        batch = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!batch) batch = std::make_unique<RecordBatch>();
    batch->Reset(schema);
    return BatchPtr(std::move(batch), this);
  }

  void Put(std::unique_ptr<RecordBatch> batch) {
    std::lock_guard lock(mu_);
    // Bounded: more than this many free batches means a burst passed; let them go.
    if (free_.size() < kMaxFree) free_.push_back(std::move(batch));
  }

 private:
  static constexpr size_t kMaxFree = 1024;
  std::mutex mu_;
  std::vector<std::unique_ptr<RecordBatch>> free_;
};

inline void BatchPtr::Release() {
  if (batch_ && pool_ != nullptr) pool_->Put(std::move(batch_));
  batch_.reset();
}

}  // namespace barge::pipeline
