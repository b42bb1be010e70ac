// Small file helpers shared by the io readers and writers: whole-file reads with a size cap,
// read-only memory mappings, and atomic replacement of a file (temp file + fsync + rename).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace mindiesd::io {

// Reads a whole file into memory. NotFound when it does not exist, InvalidArgument when it is
// not a regular file or is larger than `max_bytes` (`what` names the kind of file in that
// message, e.g. "a JSON file"), Io on read errors. Every message names the path.
std::string read_file(const std::filesystem::path& path, int64_t max_bytes,
                      const char* what = "this kind of file");

// A whole file mapped read-only and private (MAP_PRIVATE, PROT_READ): pages come from the page
// cache on first touch and are shared with other processes mapping the same file; nothing is
// ever written back. The mapping lives as long as the last shared_ptr to it. Truncating the file
// while it is mapped is outside our control (the kernel answers with SIGBUS), as with any mmap.
class MappedFile {
 public:
  // NotFound when absent, InvalidArgument when not a regular file, Io when it cannot be opened
  // or mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {static_cast<const uint8_t*>(addr_), size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  void* addr_ = nullptr;  // nullptr for an empty file (mmap cannot map zero bytes)
  size_t size_ = 0;
  std::filesystem::path path_;
};

// Where write_file_atomic's callback writes; every failure throws Io naming the target path.
class FileSink {
 public:
  void write(const void* data, size_t bytes);
  void write(std::span<const uint8_t> bytes) { write(bytes.data(), bytes.size()); }
  int64_t bytes_written() const { return written_; }

 private:
  friend void write_file_atomic(const std::filesystem::path&,
                                const std::function<void(FileSink&)>&);
  FileSink(int fd, const std::filesystem::path* target) : fd_(fd), target_(target) {}
  int fd_;
  const std::filesystem::path* target_;
  int64_t written_ = 0;
};

// Creates `path` (or replaces it) so that readers see either the old file or the complete new
// one: `fill` writes a temporary file in the same directory, which is fsynced and renamed over
// `path` only when `fill` returns normally. On any exception the temporary file is removed and
// the exception propagates; an existing `path` is left untouched.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(FileSink&)>& fill);

}  // namespace mindiesd::io
