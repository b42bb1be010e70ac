// safetensors files: a validating zero-copy reader, a multi-file WeightStore, and a writer.
//
// Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of UTF-8 JSON {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
// "__metadata__": {"k": "v"}}, then the data section; offsets are relative to its start.
//
// The reader maps the file and hands out tensors that point into the mapping (the tensor keeps
// the mapping alive), so opening a 20 GB checkpoint costs a header parse, and pages are read on
// first touch. Everything in the header is validated before any tensor is handed out; a broken
// file is a mindiesd::Error naming the file and the tensor or field, never a crash:
//   Corrupt      short file, absurd or overlong header length, header not UTF-8 / JSON / an
//                object, duplicate tensor names or fields, bad shape or data_offsets, byte count
//                != numel * element size, ranges outside the data section or overlapping,
//                __metadata__ not a string -> string map
//   Unsupported  a dtype name safetensors does not define, more than kMaxDims dims
//   NotFound     missing file, or get()/info() of a name the file does not have
// Dtypes that safetensors defines but mindiesd has no type for (F64, U16, ...) open fine (their
// ranges are validated and counted); get() on such a tensor is Unsupported. Unused bytes between
// or after tensors are accepted (the reference reader refuses them, but they hide nothing).
//
// Opened files and stores are immutable, so every const method may be called from any thread.
// Tensors from a file are read-only: the mapping is PROT_READ (writing to them faults), which is
// what weights want. Storage::borrowed() is true for them; in-place ops must not target them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/shape.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::io {

// Largest header accepted, as the reference implementation (which allows 100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{100} << 20;

// One tensor's header entry, validated.
struct TensorInfo {
  std::string name;
  std::string dtype_name;      // as stored: "BF16", "F8_E4M3", "F64", ...
  std::optional<DType> dtype;  // nullopt for safetensors dtypes mindiesd has no type for
  int dtype_bits = 0;          // bits per element of the stored dtype (4 for F4, 6 for F6_*)
  Shape shape;
  int64_t numel = 0;
  int64_t begin = 0;  // byte range [begin, end) relative to the data section
  int64_t end = 0;
  int64_t nbytes() const { return end - begin; }
};

// The parsed and validated header of a whole safetensors file image.
struct SafetensorsHeader {
  uint64_t header_bytes = 0;        // N, the JSON length (including any padding)
  uint64_t data_offset = 0;         // 8 + N: where the data section starts in the file
  uint64_t data_bytes = 0;          // size of the data section
  std::vector<TensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

// Parses and validates the header of `file` (the whole file image: length, JSON and data).
// `source` names the file in error messages. Pure function of the bytes, no I/O: the fuzzing
// entry point.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, std::string_view source);

// The safetensors name of an engine dtype ("F32", "BF16", ...); Unsupported for i4, which
// safetensors has no name for (store packed int4 as U8 bytes instead).
const char* safetensors_dtype_name(DType dtype);

class SafetensorsFile {
 public:
  // Maps and validates `path` (see the error list above).
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  // Validates an in-memory file image. `owner` (may be null) is kept alive by this object and by
  // every tensor get() returns, so it must own `bytes`; with a null owner the caller keeps
  // `bytes` alive for as long as those tensors live. `source` names it in error messages.
  static std::shared_ptr<SafetensorsFile> from_buffer(std::span<const uint8_t> bytes,
                                                      std::shared_ptr<const void> owner,
                                                      std::string source);

  const std::string& path() const { return path_; }
  // Tensor names, sorted (the order is stable across runs and machines).
  const std::vector<std::string>& names() const { return names_; }
  size_t size() const { return header_.tensors.size(); }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // NotFound (naming the file and tensor) when absent.
  const TensorInfo& info(std::string_view name) const;
  // A CPU tensor viewing the file's bytes: zero-copy when the data is aligned to its element
  // size, otherwise an owned aligned copy. NotFound when absent, Unsupported for dtypes mindiesd
  // has no type for.
  Tensor get(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsHeader& header() const { return header_; }
  // The whole file image (for tests and diagnostics).
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  SafetensorsFile() = default;
  const TensorInfo* find(std::string_view name) const;

  std::string path_;
  std::shared_ptr<const void> owner_;
  std::span<const uint8_t> bytes_;
  SafetensorsHeader header_;
  std::vector<std::string> names_;
};

// Tensor / parameter / byte totals for one stored dtype.
struct DTypeStats {
  int64_t tensors = 0;
  int64_t params = 0;
  int64_t bytes = 0;
};

// The weights of one model, from one or more safetensors files, behind one name space.
//
// open() accepts a single .safetensors file, a sharded index (*.safetensors.index*.json with a
// "weight_map" of tensor name -> shard file name in the same folder), or a directory (every
// *.safetensors in it). Errors: NotFound for a missing path or shard (or a directory without
// safetensors files); Corrupt for a malformed index (not JSON, no weight_map object, a
// non-string or escaping shard name), a tensor present in two files, or a mapped tensor absent
// from its shard. Copies are cheap and share the mapped files.
class WeightStore {
 public:
  WeightStore() = default;
  static WeightStore open(const std::filesystem::path& path);
  static WeightStore open_index(const std::filesystem::path& index_json);
  // `files` in order; `display_path` names the store in messages (defaults to the first file).
  static WeightStore open_files(const std::vector<std::filesystem::path>& files,
                                const std::filesystem::path& display_path = {});
  // Tensors already in memory (any device), e.g. weights made on a GPU for a benchmark or
  // handed over from Python; `display_path` names the store in messages. file_of() is NotFound
  // for them: they have no file.
  static WeightStore from_tensors(std::map<std::string, Tensor> tensors,
                                  const std::filesystem::path& display_path = "<memory>");

  bool valid() const { return impl_ != nullptr; }
  const std::filesystem::path& path() const;
  // The underlying files, in shard order (one for a single file).
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const;
  // True when opened from an index (even one naming a single shard).
  bool sharded() const;

  const std::vector<std::string>& names() const;  // sorted
  size_t size() const { return names().size(); }
  bool has(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;  // NotFound when absent
  Tensor get(std::string_view name) const;              // as SafetensorsFile::get
  const SafetensorsFile& file_of(std::string_view name) const;

  int64_t num_params() const;
  int64_t num_bytes() const;
  // Keyed by the stored dtype name ("BF16", "F32", ...).
  std::map<std::string, DTypeStats> dtype_stats() const;

  struct Impl;  // opaque; shared between copies

 private:
  std::shared_ptr<const Impl> impl_;
};

// Writes a safetensors file readable by the reference implementation: tensors in the given
// order, each copied contiguous (from any device), the JSON header padded with spaces to a
// multiple of 8 bytes so that the data section starts 8-aligned. Tensors are not reordered; to
// keep every tensor aligned to its element size, put larger element types first (the reader
// copies misaligned tensors, so any order is still readable). The file is written to a
// temporary name and renamed into place, so a failure never leaves a partial file at `path`.
// InvalidArgument for duplicate, reserved ("__metadata__") or non-UTF-8 names and undefined
// tensors; Unsupported for i4; Io / NotFound for write failures.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The same file image in memory.
std::vector<uint8_t> serialize_safetensors(
    const std::vector<std::pair<std::string, Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace mindiesd::io
