// Removing what a deleted container leaves (its directory tree) without paying for each removal
// one after the other. Removing a directory frees its disk block, which costs milliseconds on
// some disks (ext4 mounted with online discard: about 3.5 ms on the machines barge is measured
// on), while removals of different directories overlap: sixteen at once cost little more than
// one. So the tree is flattened: files are removed at once (their space matters, and a fresh
// file has usually no block on disk yet), and each directory, once empty, is renamed (a rename
// frees nothing) into a heap directory, which is emptied with parallel removals once it holds
// kHeapBatch directories, by whichever barge process fills it.
#pragma once

#include <cstddef>
#include <string>

#include "barge/status.h"

namespace barge::runtime {

// Fewer than this many empty directories (4 KiB each) wait in a heap; once there are this many,
// they are removed by kHeapThreads threads (48 take about 9 ms on that disk, one takes 3.5).
inline constexpr size_t kHeapBatch = 48;
inline constexpr size_t kHeapThreads = 16;

// Removes the tree at `path` through the heap `heap_dir` (created when missing, on the same file
// system). As RemoveTree, never crosses into another file system: a mount point inside `path` is
// an error. A missing `path` is OK.
Status RemoveTreeThroughHeap(const std::string& path, const std::string& heap_dir);

// Empties the heap now, in parallel, whatever it holds.
Status EmptyHeap(const std::string& heap_dir);

}  // namespace barge::runtime
