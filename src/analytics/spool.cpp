#include "analytics/spool.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace agentwire::analytics {
namespace {

constexpr char kMagic[8] = {'A', 'W', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr std::size_t kHeader = sizeof(kMagic) + 4 + 8;

void putLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t getLe(const std::string& in, std::size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
  return v;
}

uint32_t crcOf(std::string_view s) {
  return static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

bool writeFileSynced(const std::filesystem::path& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) {
      ::close(fd);
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  bool ok = ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

std::optional<std::string> readFile(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Spool::Spool(std::filesystem::path dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}

std::string Spool::encode(const Batch& batch) {
  std::string payload = fmt::format("{}\n{}\n{}\n", batch.id, batch.first_date, batch.rows);
  payload += batch.body;
  std::string out(kMagic, sizeof(kMagic));
  putLe(out, crcOf(payload), 4);
  putLe(out, payload.size(), 8);
  out += payload;
  return out;
}

std::optional<Batch> Spool::decode(const std::string& data) {
  if (data.size() < kHeader || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) return std::nullopt;
  auto crc = static_cast<uint32_t>(getLe(data, sizeof(kMagic), 4));
  uint64_t len = getLe(data, sizeof(kMagic) + 4, 8);
  if (len != data.size() - kHeader) return std::nullopt;
  std::string_view payload(data.data() + kHeader, len);
  if (crcOf(payload) != crc) return std::nullopt;
  Batch b;
  std::size_t p1 = payload.find('\n');
  std::size_t p2 = p1 == std::string_view::npos ? p1 : payload.find('\n', p1 + 1);
  std::size_t p3 = p2 == std::string_view::npos ? p2 : payload.find('\n', p2 + 1);
  if (p3 == std::string_view::npos) return std::nullopt;
  b.id = std::string(payload.substr(0, p1));
  b.first_date = std::string(payload.substr(p1 + 1, p2 - p1 - 1));
  try {
    b.rows = std::stoull(std::string(payload.substr(p2 + 1, p3 - p2 - 1)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  b.body = std::string(payload.substr(p3 + 1));
  return b;
}

void Spool::open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "rejected", ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create spool directory {}: {}", dir_.string(), ec.message()));
  std::vector<std::pair<uint64_t, Segment>> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (!entry.is_regular_file()) continue;
    std::string name = entry.path().filename().string();
    if (name.ends_with(".tmp")) {  // an append interrupted before its rename: never acknowledged
      std::filesystem::remove(entry.path(), ec);
      continue;
    }
    if (!name.starts_with("seg-") || !name.ends_with(".awb")) continue;
    uint64_t n = 0;
    try {
      n = std::stoull(name.substr(4, name.size() - 8));
    } catch (const std::exception&) {
      continue;
    }
    found.emplace_back(n, Segment{entry.path(), static_cast<uint64_t>(entry.file_size())});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  segments_.clear();
  uint64_t total = 0;
  for (auto& [n, s] : found) {
    total += s.size;
    next_ = std::max(next_, n + 1);
    segments_.push_back(std::move(s));
  }
  bytes_ = total;
  count_ = segments_.size();
}

bool Spool::append(const Batch& batch) {
  std::string data = encode(batch);
  if (bytes_.load() + data.size() > max_bytes_) return false;
  auto path = dir_ / fmt::format("seg-{:020}.awb", next_);
  auto tmp = path;
  tmp += ".tmp";
  if (!writeFileSynced(tmp, data)) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return false;
  ++next_;
  segments_.push_back(Segment{path, data.size()});
  bytes_ += data.size();
  ++count_;
  return true;
}

std::optional<Batch> Spool::front() {
  while (!segments_.empty()) {
    const Segment& s = segments_.front();
    auto data = readFile(s.path);
    if (data) {
      if (auto b = decode(*data)) return b;
    }
    ++corrupt_;
    moveAside(s, ".corrupt", data ? "checksum, length or header mismatch" : "unreadable");
    dropFront();
  }
  return std::nullopt;
}

void Spool::popFront() {
  if (segments_.empty()) return;
  std::error_code ec;
  std::filesystem::remove(segments_.front().path, ec);
  dropFront();
}

void Spool::rejectFront(const std::string& reason) {
  if (segments_.empty()) return;
  ++rejected_;
  moveAside(segments_.front(), ".rejected", reason);
  dropFront();
}

void Spool::rejectBatch(const Batch& batch, const std::string& reason) {
  ++rejected_;
  auto target = dir_ / "rejected" / fmt::format("batch-{}.awb.rejected", batch.id);
  writeFileSynced(target, encode(batch));
  std::ofstream(target.string() + ".reason") << reason << "\n";
}

void Spool::moveAside(const Segment& s, const std::string& suffix, const std::string& reason) {
  auto target = dir_ / "rejected" / (s.path.filename().string() + suffix);
  std::error_code ec;
  std::filesystem::rename(s.path, target, ec);
  if (ec) std::filesystem::remove(s.path, ec);
  std::ofstream(target.string() + ".reason") << reason << "\n";
}

void Spool::dropFront() {
  bytes_ -= segments_.front().size;
  --count_;
  segments_.pop_front();
}

}  // namespace agentwire::analytics
