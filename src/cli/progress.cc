#include "cli/progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

namespace barge::cli {

std::string HumanBytes(int64_t bytes, bool significant) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) return fmt::format("{}B", bytes);
  return significant ? fmt::format("{:.3g}{}", v, units[u]) : fmt::format("{:.1f}{}", v, units[u]);
}

TransferDisplay::TransferDisplay(bool enabled, std::string verb, OffTerminal off_terminal)
    : terminal_(enabled && ::isatty(STDERR_FILENO)),
      lines_(enabled && !terminal_ && off_terminal == OffTerminal::kLines),
      verb_(std::move(verb)) {}

oci::TransferProgress TransferDisplay::Callback() {
  if (!terminal_ && !lines_) return nullptr;
  return [this](const oci::TransferEvent& e) { Handle(e); };
}

void TransferDisplay::Handle(const oci::TransferEvent& e) {
  using Kind = oci::TransferEvent::Kind;
  if (lines_) {
    PrintLine(e);
    return;
  }
  if (e.kind == Kind::kImage) {
    // A heading no blob followed yet is replaced: pull tries a short name's registries in turn.
    if (!rows_.empty() && rows_.back().image) {
      rows_.back().name = e.what;
    } else {
      rows_.push_back({true, "", e.what});
    }
    Draw(true);
    return;
  }
  Row& row = RowFor(e);
  row.done = e.done;
  row.total = e.total;
  switch (e.kind) {
    case Kind::kBlob:
      row.state = "waiting";
      break;
    case Kind::kBytes:
      row.state = "";
      break;
    case Kind::kPresent:
      row.state = "already there";
      break;
    case Kind::kMounted:
      row.state = "mounted from " + e.what;
      break;
    case Kind::kDone:
      row.state = e.total > 0 ? "done  " + HumanBytes(e.total) : "done";
      break;
    case Kind::kImage:
      break;
  }
  Draw(e.kind != Kind::kBytes);
}

TransferDisplay::Row& TransferDisplay::RowFor(const oci::TransferEvent& e) {
  if (!e.digest.empty()) {
    for (Row& r : rows_) {
      if (!r.image && r.digest == e.digest) return r;
    }
  }
  // A row named by `what` until its digest was known.
  if (!e.what.empty()) {
    for (Row& r : rows_) {
      if (!r.image && r.digest.empty() && r.name == e.what) {
        r.digest = e.digest;
        return r;
      }
    }
  }
  rows_.push_back({false, e.digest, e.what});
  return rows_.back();
}

// Off a terminal: a line per blob as it completes, as podman words it.
void TransferDisplay::PrintLine(const oci::TransferEvent& e) {
  using Kind = oci::TransferEvent::Kind;
  if (e.digest.empty()) return;  // the archive load reads: its blobs get the lines
  const char* kind = e.config ? "config" : "blob";
  if (e.kind == Kind::kDone) {
    fmt::print(stderr, "Copying {} {} done\n", kind, e.digest);
  } else if (e.kind == Kind::kPresent) {
    fmt::print(stderr, "Copying {} {} skipped: already exists\n", kind, e.digest);
  }
}

namespace {

// 12 hex digits of a digest, or a name cut to fit a row.
std::string Label(const std::string& digest, const std::string& name) {
  if (!digest.empty()) return digest.substr(digest.find(':') + 1, 12);
  constexpr size_t kWidth = 40;
  return name.size() <= kWidth ? name : "..." + name.substr(name.size() - (kWidth - 3));
}

}  // namespace

void TransferDisplay::Draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::string out;
  if (drawn_ > 0) out += fmt::format("\x1b[{}A", drawn_);
  for (const Row& r : rows_) {
    if (r.image) {
      out += fmt::format("\r\x1b[K{} {}\n", verb_, r.name);
      continue;
    }
    std::string state = r.state;
    if (state.empty() && r.total > 0) {
      int width = 24;
      int filled = static_cast<int>(width * std::min(r.done, r.total) / r.total);
      state =
          fmt::format("[{}{}] {} / {}", std::string(filled, '='), std::string(width - filled, ' '),
                      HumanBytes(r.done), HumanBytes(r.total));
    } else if (state.empty()) {
      state = HumanBytes(r.done);
    }
    out += fmt::format("\r\x1b[K  {}  {}\n", Label(r.digest, r.name), state);
  }
  drawn_ = static_cast<int>(rows_.size());
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
}

void TransferDisplay::Finish() {
  if (terminal_) Draw(true);
}

}  // namespace barge::cli
