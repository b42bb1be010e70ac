#include "mindiesd/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::io {

namespace {

// Every dtype the safetensors format defines (safetensors/src/tensor.rs), with its size and the
// engine type when mindiesd has one.
struct StDType {
  const char* name;
  int bits;
  std::optional<DType> dtype;
};
const StDType kStDTypes[] = {
    {"BOOL", 8, DType::boolean},
    {"U8", 8, DType::u8},
    {"I8", 8, DType::i8},
    {"F8_E5M2", 8, DType::f8_e5m2},
    {"F8_E4M3", 8, DType::f8_e4m3},
    {"I16", 16, std::nullopt},
    {"U16", 16, std::nullopt},
    {"F16", 16, DType::f16},
    {"BF16", 16, DType::bf16},
    {"I32", 32, DType::i32},
    {"U32", 32, std::nullopt},
    {"F32", 32, DType::f32},
    {"F64", 64, std::nullopt},
    {"I64", 64, DType::i64},
    {"U64", 64, std::nullopt},
    {"C64", 64, std::nullopt},
    {"F4", 4, std::nullopt},
    {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt},
    {"F8_E8M0", 8, std::nullopt},
    {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt},
};

const StDType* find_st_dtype(std::string_view name) {
  for (const StDType& d : kStDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

// Extents larger than this product are refused, as Tensor itself refuses them; real weights are
// many orders of magnitude smaller.
constexpr int64_t kMaxNumel = int64_t{1} << 50;

// A tensor entry as read from the JSON, before validation.
struct RawEntry {
  std::string name;
  bool has_dtype = false;
  std::string dtype;
  bool has_shape = false;
  std::vector<int64_t> shape;
  bool has_offsets = false;
  std::vector<uint64_t> offsets;
};

// Streams the header JSON straight into entries (nlohmann's SAX interface): no DOM is built, so
// memory stays proportional to the number of tensors whatever the JSON contains, duplicates are
// seen (a DOM keeps only the last of two equal keys), and the first problem stops the parse.
class HeaderSax final : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit HeaderSax(std::string_view source) : source_(source) {}

  bool failed() const { return !error_.empty(); }
  ErrorKind error_kind() const { return error_kind_; }
  const std::string& error() const { return error_; }
  std::vector<RawEntry>& entries() { return entries_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }
  bool done() const { return where_ == Where::Done; }

  bool null() override { return scalar("null"); }
  bool boolean(bool) override { return scalar("boolean"); }
  bool number_integer(number_integer_t v) override {
    if (where_ == Where::InShape || where_ == Where::InOffsets) {
      return fail(str_cat(field_context(), " has a negative value ", v));
    }
    return scalar("integer");
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (where_ == Where::InShape) {
      if (cur_.shape.size() >= static_cast<size_t>(kMaxDims)) {
        return fail(str_cat("tensor '", cur_.name, "': shape has more than ", kMaxDims,
                            " dims, which mindiesd does not support"),
                    ErrorKind::Unsupported);
      }
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return fail(str_cat("tensor '", cur_.name, "': shape extent ", v, " is absurd"));
      }
      cur_.shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (where_ == Where::InOffsets) {
      if (cur_.offsets.size() >= 2) {
        return fail(str_cat("tensor '", cur_.name, "': data_offsets must be [begin, end]"));
      }
      cur_.offsets.push_back(v);
      return true;
    }
    return scalar("integer");
  }
  bool number_float(number_float_t, const string_t&) override { return scalar("number"); }
  bool string(string_t& s) override {
    if (where_ == Where::InTensor && field_ == "dtype") {
      cur_.has_dtype = true;
      cur_.dtype = s;
      return true;
    }
    if (where_ == Where::InMetadata) {
      metadata_[field_] = s;
      return true;
    }
    return scalar("string");
  }
  bool binary(binary_t&) override { return scalar("binary"); }

  bool start_object(std::size_t) override {
    switch (where_) {
      case Where::Top:
        where_ = Where::InRoot;
        return true;
      case Where::InRoot:
        keys_.clear();
        if (key_ == "__metadata__") {
          where_ = Where::InMetadata;
        } else {
          where_ = Where::InTensor;
          cur_ = RawEntry{};
          cur_.name = key_;
        }
        return true;
      case Where::InTensor:
        if (is_known_field()) return wrong_type("object");
        return skip_container();
      case Where::Skipping:
        ++skip_depth_;
        return true;
      default:
        return scalar("object");
    }
  }
  bool end_object() override {
    switch (where_) {
      case Where::InRoot:
        where_ = Where::Done;
        return true;
      case Where::InTensor:
        entries_.push_back(std::move(cur_));
        where_ = Where::InRoot;
        return true;
      case Where::InMetadata:
        where_ = Where::InRoot;
        return true;
      case Where::Skipping:
        return end_skip();
      default:
        return fail("unbalanced JSON");  // the parser never gets here
    }
  }
  bool start_array(std::size_t) override {
    switch (where_) {
      case Where::InTensor:
        if (field_ == "shape") {
          cur_.has_shape = true;
          where_ = Where::InShape;
          return true;
        }
        if (field_ == "data_offsets") {
          cur_.has_offsets = true;
          where_ = Where::InOffsets;
          return true;
        }
        if (field_ == "dtype") return wrong_type("list");
        return skip_container();
      case Where::Skipping:
        ++skip_depth_;
        return true;
      default:
        return scalar("list");
    }
  }
  bool end_array() override {
    switch (where_) {
      case Where::InShape:
      case Where::InOffsets:
        where_ = Where::InTensor;
        return true;
      case Where::Skipping:
        return end_skip();
      default:
        return fail("unbalanced JSON");
    }
  }
  bool key(string_t& k) override {
    switch (where_) {
      case Where::InRoot:
        if (!root_keys_.insert(k).second) {
          return fail(k == "__metadata__" ? std::string("__metadata__ appears twice")
                                          : str_cat("tensor '", k, "' appears twice"));
        }
        key_ = k;
        return true;
      case Where::InTensor:
      case Where::InMetadata:
        if (!keys_.insert(k).second) {
          return fail(where_ == Where::InMetadata
                          ? str_cat("__metadata__: key '", k, "' appears twice")
                          : str_cat("tensor '", cur_.name, "': field '", k, "' appears twice"));
        }
        field_ = k;
        return true;
      default:
        return true;  // keys inside skipped values
    }
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return fail(str_cat("header is not valid JSON: ", e.what()));
  }

 private:
  enum class Where { Top, InRoot, InTensor, InShape, InOffsets, InMetadata, Skipping, Done };

  bool fail(std::string message, ErrorKind kind = ErrorKind::Corrupt) {
    if (error_.empty()) {
      error_ = std::move(message);
      error_kind_ = kind;
    }
    return false;
  }
  bool is_known_field() const {
    return field_ == "dtype" || field_ == "shape" || field_ == "data_offsets";
  }
  std::string field_context() const {
    return str_cat("tensor '", cur_.name,
                   "': ", where_ == Where::InShape ? "shape" : "data_offsets");
  }
  bool wrong_type(const char* got) {
    if (field_ == "dtype") {
      return fail(str_cat("tensor '", cur_.name, "': dtype must be a string, got ", got));
    }
    return fail(str_cat("tensor '", cur_.name, "': ", field_,
                        " must be a list of non-negative integers, got ", got));
  }
  bool skip_container() {
    where_ = Where::Skipping;
    skip_depth_ = 1;
    return true;
  }
  bool end_skip() {
    if (--skip_depth_ == 0) where_ = Where::InTensor;
    return true;
  }
  // A scalar (or a container where a scalar or specific container was expected).
  bool scalar(const char* got) {
    switch (where_) {
      case Where::Top:
        return fail(str_cat("header is not a JSON object (it is a ", got, ")"));
      case Where::InRoot:
        if (key_ == "__metadata__") {
          return fail(str_cat("__metadata__ must be an object, got ", got));
        }
        return fail(str_cat("tensor '", key_, "': entry must be an object, got ", got));
      case Where::InTensor:
        if (is_known_field()) return wrong_type(got);
        return true;  // an unknown field's scalar value: ignored, as the reference does
      case Where::InShape:
      case Where::InOffsets:
        return fail(str_cat(field_context(),
                            " must be a list of non-negative integers, got an element of type ",
                            got));
      case Where::InMetadata:
        return fail(str_cat("__metadata__: value of '", field_, "' must be a string, got ", got));
      case Where::Skipping:
        return true;
      case Where::Done:
        return fail("unexpected content after the header object");
    }
    return false;
  }

  std::string source_;
  Where where_ = Where::Top;
  std::string key_;    // current top-level key
  std::string field_;  // current key inside a tensor entry or __metadata__
  std::set<std::string> root_keys_;
  std::set<std::string> keys_;
  RawEntry cur_;
  int skip_depth_ = 0;
  std::vector<RawEntry> entries_;
  std::map<std::string, std::string> metadata_;
  std::string error_;
  ErrorKind error_kind_ = ErrorKind::Corrupt;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, std::string_view source) {
  MINDIESD_CHECK(file.size() >= 8, Corrupt, source, ": file is ", file.size(),
                 " bytes, too short for the 8-byte header length of a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  MINDIESD_CHECK(n <= kMaxSafetensorsHeaderBytes, Corrupt, source, ": header length ", n,
                 " is absurd (more than ", kMaxSafetensorsHeaderBytes,
                 " bytes); not a safetensors file?");
  MINDIESD_CHECK(n <= file.size() - 8, Corrupt, source, ": header length ", n,
                 " runs past the end of the file (", file.size(), " bytes); truncated?");

  const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8,
                              static_cast<size_t>(n));
  const size_t bad = find_invalid_utf8(text);
  MINDIESD_CHECK(bad == std::string_view::npos, Corrupt, source,
                 ": header is not valid UTF-8 (byte ", bad, " of the JSON)");

  HeaderSax sax(source);
  const bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax,
                                            nlohmann::json::input_format_t::json, /*strict=*/true);
  if (!ok || sax.failed()) {
    MINDIESD_CHECK(sax.failed(), Corrupt, source, ": header is not valid JSON");
    throw Error(sax.error_kind(), str_cat(source, ": ", sax.error()));
  }
  MINDIESD_CHECK(sax.done(), Corrupt, source, ": header is not a JSON object");

  SafetensorsHeader h;
  h.header_bytes = n;
  h.data_offset = 8 + n;
  h.data_bytes = file.size() - 8 - n;
  h.metadata = std::move(sax.metadata());
  h.tensors.reserve(sax.entries().size());
  for (RawEntry& e : sax.entries()) {
    const std::string& name = e.name;
    MINDIESD_CHECK(e.has_dtype, Corrupt, source, ": tensor '", name, "': missing 'dtype'");
    MINDIESD_CHECK(e.has_shape, Corrupt, source, ": tensor '", name, "': missing 'shape'");
    MINDIESD_CHECK(e.has_offsets, Corrupt, source, ": tensor '", name, "': missing 'data_offsets'");
    const StDType* st = find_st_dtype(e.dtype);
    MINDIESD_CHECK(st != nullptr, Unsupported, source, ": tensor '", name, "': unknown dtype '",
                   e.dtype, "'");
    MINDIESD_CHECK(e.offsets.size() == 2, Corrupt, source, ": tensor '", name,
                   "': data_offsets must be [begin, end], got ", e.offsets.size(), " values");

    // numel, refusing overflow (and sizes no tensor could have; see kMaxNumel).
    int64_t numel = 1;
    int64_t nonzero = 1;
    for (int64_t d : e.shape) {
      if (d != 0) {
        MINDIESD_CHECK(!__builtin_mul_overflow(nonzero, d, &nonzero) && nonzero <= kMaxNumel,
                       Corrupt, source, ": tensor '", name, "': shape ", shape_text(e.shape),
                       " has an absurd number of elements (overflow)");
      }
      numel *= d;  // numel is 0 or equal to `nonzero`, which was just bounded
    }
    int64_t nbits = 0;
    MINDIESD_CHECK(!__builtin_mul_overflow(numel, int64_t{st->bits}, &nbits), Corrupt, source,
                   ": tensor '", name, "': byte size of shape ", shape_text(e.shape), " overflows");
    MINDIESD_CHECK(nbits % 8 == 0, Corrupt, source, ": tensor '", name, "': ", numel,
                   " elements of ", e.dtype, " do not fill a whole number of bytes");
    const int64_t nbytes = nbits / 8;

    const uint64_t b = e.offsets[0];
    const uint64_t en = e.offsets[1];
    MINDIESD_CHECK(b <= en, Corrupt, source, ": tensor '", name, "': data_offsets [", b, ", ", en,
                   "] begin after they end");
    MINDIESD_CHECK(en <= h.data_bytes, Corrupt, source, ": tensor '", name, "': data_offsets [", b,
                   ", ", en, "] extend past the end of the data section (", h.data_bytes,
                   " bytes); truncated file?");
    MINDIESD_CHECK(en - b == static_cast<uint64_t>(nbytes), Corrupt, source, ": tensor '", name,
                   "': data_offsets [", b, ", ", en, "] hold ", en - b, " bytes but shape ",
                   shape_text(e.shape), " of ", e.dtype, " needs ", nbytes);

    TensorInfo t;
    t.name = std::move(e.name);
    t.dtype_name = st->name;
    t.dtype = st->dtype;
    t.dtype_bits = st->bits;
    t.shape = Shape(std::span<const int64_t>(e.shape));
    t.numel = numel;
    t.begin = static_cast<int64_t>(b);
    t.end = static_cast<int64_t>(en);
    h.tensors.push_back(std::move(t));
  }

  // The byte ranges must tile the data section exactly, as the reference implementation
  // (safetensors' Metadata::validate) demands: sorted by offsets, each tensor starts where the
  // previous one ended (an empty tensor sits at that point) and the last ends at the end of the
  // file. A hole or trailing bytes mean a writer bug or a spliced file; both are refused.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(h.tensors.size());
  for (const TensorInfo& t : h.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    if (a->begin != b->begin) return a->begin < b->begin;
    return a->end != b->end ? a->end < b->end : a->name < b->name;
  });
  int64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* cur : by_offset) {
    MINDIESD_CHECK(cur->begin <= pos, Corrupt, source, ": bytes [", pos, ", ", cur->begin,
                   ") of the data section belong to no tensor (a hole ",
                   prev ? str_cat("between tensor '", prev->name, "' and") : std::string("before"),
                   " tensor '", cur->name, "')");
    MINDIESD_CHECK(cur->begin == pos, Corrupt, source, ": tensors '", prev->name, "' [",
                   prev->begin, ", ", prev->end, ") and '", cur->name, "' [", cur->begin, ", ",
                   cur->end, ") overlap");
    pos = cur->end;
    prev = cur;
  }
  MINDIESD_CHECK(static_cast<uint64_t>(pos) == h.data_bytes, Corrupt, source, ": bytes [", pos,
                 ", ", h.data_bytes, ") of the data section belong to no tensor (",
                 prev ? str_cat("after the last tensor '", prev->name, "'")
                      : std::string("the header lists no tensors"),
                 ")");

  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return h;
}

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::f8_e4m3:
      return "F8_E4M3";
    case DType::f8_e5m2:
      return "F8_E5M2";
    case DType::i8:
      return "I8";
    case DType::u8:
      return "U8";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::boolean:
      return "BOOL";
    case DType::i4:
      break;
  }
  MINDIESD_THROW(Unsupported, "safetensors has no ", dtype_name(dtype),
                 " dtype; store packed int4 as U8 bytes");
}

// ---- SafetensorsFile ------------------------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::shared_ptr<MappedFile> mapping = MappedFile::open(path);
  const std::span<const uint8_t> bytes = mapping->bytes();
  return from_buffer(bytes, std::move(mapping), path.string());
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_buffer(std::span<const uint8_t> bytes,
                                                              std::shared_ptr<const void> owner,
                                                              std::string source) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->header_ = parse_safetensors_header(bytes, source);
  f->path_ = std::move(source);
  f->owner_ = std::move(owner);
  f->bytes_ = bytes;
  f->names_.reserve(f->header_.tensors.size());
  for (const TensorInfo& t : f->header_.tensors) f->names_.push_back(t.name);
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto& ts = header_.tensors;
  const auto it = std::lower_bound(
      ts.begin(), ts.end(), name,
      [](const TensorInfo& t, std::string_view n) { return std::string_view(t.name) < n; });
  return it != ts.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const TensorInfo* t = find(name);
  MINDIESD_CHECK(t != nullptr, NotFound, path_, ": no tensor '", name, "' (the file has ", size(),
                 " tensors)");
  return *t;
}

Tensor SafetensorsFile::get(std::string_view name) const {
  const TensorInfo& t = info(name);
  MINDIESD_CHECK(t.dtype.has_value(), Unsupported, path_, ": tensor '", name, "' has dtype ",
                 t.dtype_name, ", which mindiesd does not support");
  const uint8_t* p = bytes_.data() + header_.data_offset + t.begin;
  const int elem = t.dtype_bits >= 8 ? t.dtype_bits / 8 : 1;
  if (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(elem) == 0) {
    // The view keeps the whole mapping (or the caller's owner) alive, not just these bytes.
    return Tensor::from_blob(const_cast<uint8_t*>(p), t.shape, *t.dtype, Device::cpu(), owner_);
  }
  // Not aligned to the element size (the header length is not a multiple of 8, or an earlier
  // tensor has an odd size): kernels may load whole elements, and misaligned loads are UB in
  // C++, so this tensor gets an owned, aligned copy instead of a view.
  Tensor copy = Tensor::empty(t.shape, *t.dtype);
  if (t.nbytes() > 0) std::memcpy(copy.data_ptr(), p, static_cast<size_t>(t.nbytes()));
  return copy;
}

// ---- WeightStore ----------------------------------------------------------------------------

struct WeightStore::Impl {
  std::filesystem::path path;
  bool sharded = false;
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  std::map<std::string, size_t, std::less<>> where;  // tensor name -> index into files
  std::vector<std::string> names;
  // from_tensors(): the tensors and their descriptions (byte range 0 .. nbytes).
  std::map<std::string, Tensor, std::less<>> memory;
  std::map<std::string, TensorInfo, std::less<>> memory_info;
};

namespace {

const WeightStore::Impl& checked(const std::shared_ptr<const WeightStore::Impl>& impl) {
  MINDIESD_CHECK(impl != nullptr, InvalidArgument, "WeightStore: used before open()");
  return *impl;
}

// Adds every tensor of `file` to `impl`, refusing a name another file already has.
void add_file(WeightStore::Impl& impl, std::shared_ptr<SafetensorsFile> file,
              const std::string& store_name) {
  const size_t index = impl.files.size();
  for (const std::string& name : file->names()) {
    const auto [it, inserted] = impl.where.emplace(name, index);
    MINDIESD_CHECK(inserted, Corrupt, store_name, ": tensor '", name, "' is in both ",
                   impl.files[it->second]->path(), " and ", file->path());
  }
  impl.files.push_back(std::move(file));
}

void finish(WeightStore::Impl& impl) {
  impl.names.reserve(impl.where.size() + impl.memory.size());
  for (const auto& [name, index] : impl.where) impl.names.push_back(name);
  for (const auto& [name, t] : impl.memory) impl.names.push_back(name);
  std::sort(impl.names.begin(), impl.names.end());
}

}  // namespace

WeightStore WeightStore::open(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  MINDIESD_CHECK(std::filesystem::exists(status), NotFound, path.string(),
                 ": no such file or directory");
  if (std::filesystem::is_directory(status)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      if (entry.is_regular_file(ec) && entry.path().extension() == ".safetensors") {
        files.push_back(entry.path());
      }
    }
    MINDIESD_CHECK(!ec, Io, path.string(), ": cannot list directory: ", ec.message());
    MINDIESD_CHECK(!files.empty(), NotFound, path.string(),
                   ": no *.safetensors files in directory");
    std::sort(files.begin(), files.end());
    return open_files(files, path);
  }
  if (path.filename().string().ends_with(".json")) return open_index(path);
  return open_files({path}, path);
}

WeightStore WeightStore::open_files(const std::vector<std::filesystem::path>& files,
                                    const std::filesystem::path& display_path) {
  MINDIESD_CHECK(!files.empty(), InvalidArgument, "WeightStore::open_files: no files given");
  auto impl = std::make_shared<Impl>();
  impl->path = display_path.empty() ? files.front() : display_path;
  for (const auto& f : files) add_file(*impl, SafetensorsFile::open(f), impl->path.string());
  finish(*impl);
  WeightStore s;
  s.impl_ = std::move(impl);
  return s;
}

WeightStore WeightStore::open_index(const std::filesystem::path& index_json) {
  const std::string src = index_json.string();
  const nlohmann::json j =
      parse_json_strict(read_file(index_json, int64_t{256} << 20, "a weight index"), src);
  MINDIESD_CHECK(j.is_object(), Corrupt, src, ": a weight index must be a JSON object, got ",
                 json_type_word(j));
  const auto wm = j.find("weight_map");
  MINDIESD_CHECK(wm != j.end(), Corrupt, src, ": no 'weight_map' (tensor name -> shard file)");
  MINDIESD_CHECK(wm->is_object(), Corrupt, src, ": 'weight_map' must be an object, got ",
                 json_type_word(*wm));

  // Shards in sorted order; each tensor's shard name must stay inside the index's folder.
  const std::filesystem::path dir = index_json.parent_path();
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, value] : wm->items()) {
    MINDIESD_CHECK(value.is_string(), Corrupt, src, ": weight_map entry for tensor '", name,
                   "' must be a shard file name, got ", json_type_word(value));
    const std::string shard = value.get<std::string>();
    const std::filesystem::path rel(shard);
    bool escapes = shard.empty() || rel.is_absolute();
    for (const auto& part : rel) escapes = escapes || part == "..";
    MINDIESD_CHECK(!escapes, Corrupt, src, ": weight_map entry for tensor '", name,
                   "' names shard '", shard, "', which is not a file in the index's folder");
    by_shard[shard].push_back(name);
  }
  MINDIESD_CHECK(!by_shard.empty(), Corrupt, src, ": 'weight_map' is empty");

  auto impl = std::make_shared<Impl>();
  impl->path = index_json;
  impl->sharded = true;
  for (const auto& [shard, names] : by_shard) {
    const std::filesystem::path p = dir / shard;
    std::error_code ec;
    MINDIESD_CHECK(std::filesystem::exists(p, ec), NotFound, src, ": shard '", shard,
                   "' (holding tensor '", names.front(), "') not found at ", p.string());
    std::shared_ptr<SafetensorsFile> f = SafetensorsFile::open(p);
    for (const std::string& name : names) {
      MINDIESD_CHECK(f->has(name), Corrupt, src, ": weight_map puts tensor '", name, "' in shard '",
                     shard, "', which does not contain it");
    }
    add_file(*impl, std::move(f), src);
  }
  finish(*impl);
  WeightStore s;
  s.impl_ = std::move(impl);
  return s;
}

WeightStore WeightStore::from_tensors(std::map<std::string, Tensor> tensors,
                                      const std::filesystem::path& display_path) {
  auto impl = std::make_shared<Impl>();
  impl->path = display_path;
  for (auto& [name, t] : tensors) {
    MINDIESD_CHECK(t.defined(), InvalidArgument, display_path.string(), ": tensor '", name,
                   "' is undefined");
    TensorInfo info;
    info.name = name;
    info.dtype_name = safetensors_dtype_name(t.dtype());
    info.dtype = t.dtype();
    info.dtype_bits = static_cast<int>(dtype_bytes(t.dtype(), 8));
    info.shape = t.shape();
    info.numel = t.numel();
    info.end = t.nbytes();
    impl->memory_info.emplace(name, std::move(info));
    impl->memory.emplace(name, std::move(t));
  }
  finish(*impl);
  WeightStore s;
  s.impl_ = std::move(impl);
  return s;
}

const std::filesystem::path& WeightStore::path() const { return checked(impl_).path; }
const std::vector<std::shared_ptr<SafetensorsFile>>& WeightStore::files() const {
  return checked(impl_).files;
}
bool WeightStore::sharded() const { return checked(impl_).sharded; }
const std::vector<std::string>& WeightStore::names() const { return checked(impl_).names; }

bool WeightStore::has(std::string_view name) const {
  const Impl& impl = checked(impl_);
  return impl.where.find(name) != impl.where.end() || impl.memory.find(name) != impl.memory.end();
}

const SafetensorsFile& WeightStore::file_of(std::string_view name) const {
  const Impl& impl = checked(impl_);
  const auto it = impl.where.find(name);
  MINDIESD_CHECK(it != impl.where.end(), NotFound, impl.path.string(), ": no tensor '", name,
                 "' (the weights have ", impl.names.size(), " tensors)");
  return *impl.files[it->second];
}

const TensorInfo& WeightStore::info(std::string_view name) const {
  const Impl& impl = checked(impl_);
  if (const auto it = impl.memory_info.find(name); it != impl.memory_info.end()) return it->second;
  return file_of(name).info(name);
}
Tensor WeightStore::get(std::string_view name) const {
  const Impl& impl = checked(impl_);
  if (const auto it = impl.memory.find(name); it != impl.memory.end()) return it->second;
  return file_of(name).get(name);
}

int64_t WeightStore::num_params() const {
  int64_t n = 0;
  for (const auto& [name, info] : checked(impl_).memory_info) n += info.numel;
  for (const auto& f : files()) {
    for (const TensorInfo& t : f->header().tensors) n += t.numel;
  }
  return n;
}

int64_t WeightStore::num_bytes() const {
  int64_t n = 0;
  for (const auto& [name, info] : checked(impl_).memory_info) n += info.nbytes();
  for (const auto& f : files()) {
    for (const TensorInfo& t : f->header().tensors) n += t.nbytes();
  }
  return n;
}

std::map<std::string, DTypeStats> WeightStore::dtype_stats() const {
  std::map<std::string, DTypeStats> stats;
  for (const auto& [name, t] : checked(impl_).memory_info) {
    DTypeStats& s = stats[t.dtype_name];
    ++s.tensors;
    s.params += t.numel;
    s.bytes += t.nbytes();
  }
  for (const auto& f : files()) {
    for (const TensorInfo& t : f->header().tensors) {
      DTypeStats& s = stats[t.dtype_name];
      ++s.tensors;
      s.params += t.numel;
      s.bytes += t.nbytes();
    }
  }
  return stats;
}

// ---- writer ---------------------------------------------------------------------------------

namespace {

struct Prepared {
  std::string header;           // JSON, padded with spaces to a multiple of 8
  std::vector<Tensor> tensors;  // contiguous CPU tensors, in file order
};

Prepared prepare(const std::vector<std::pair<std::string, Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata, const std::string& dest) {
  // ordered_json keeps __metadata__ first and the tensors in data order, as the reference does.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) {
      MINDIESD_CHECK(find_invalid_utf8(k) == std::string_view::npos &&
                         find_invalid_utf8(v) == std::string_view::npos,
                     InvalidArgument, dest, ": __metadata__ entry '", k, "' is not valid UTF-8");
      meta[k] = v;
    }
    header["__metadata__"] = std::move(meta);
  }
  Prepared p;
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    MINDIESD_CHECK(name != "__metadata__", InvalidArgument, dest,
                   ": '__metadata__' is reserved and cannot name a tensor");
    MINDIESD_CHECK(seen.insert(name).second, InvalidArgument, dest, ": tensor '", name,
                   "' given twice");
    MINDIESD_CHECK(find_invalid_utf8(name) == std::string_view::npos, InvalidArgument, dest,
                   ": tensor name '", name, "' is not valid UTF-8");
    MINDIESD_CHECK(tensor.defined(), InvalidArgument, dest, ": tensor '", name, "' is undefined");
    MINDIESD_CHECK(tensor.dtype() != DType::i4, Unsupported, dest, ": tensor '", name,
                   "': safetensors has no int4 dtype; store packed int4 as U8 bytes");
    const char* st_name = safetensors_dtype_name(tensor.dtype());
    Tensor t = tensor.device().is_cpu() ? tensor : tensor.to(Device::cpu());
    t = t.contiguous();
    const auto n = static_cast<uint64_t>(t.nbytes());
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = st_name;
    entry["shape"] = std::vector<int64_t>(t.shape().begin(), t.shape().end());
    entry["data_offsets"] = {offset, offset + n};
    header[name] = std::move(entry);
    offset += n;
    p.tensors.push_back(std::move(t));
  }
  p.header = header.dump();
  // Pad with spaces (valid trailing JSON whitespace) so that the data section is 8-aligned.
  p.header.resize((p.header.size() + 7) / 8 * 8, ' ');
  return p;
}

void le64(uint64_t v, uint8_t out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata, path.string());
  write_file_atomic(path, [&](FileSink& sink) {
    uint8_t len[8];
    le64(p.header.size(), len);
    sink.write(len, 8);
    sink.write(p.header.data(), p.header.size());
    for (const Tensor& t : p.tensors) {
      if (t.nbytes() > 0) sink.write(t.data_ptr(), static_cast<size_t>(t.nbytes()));
    }
  });
}

std::vector<uint8_t> serialize_safetensors(
    const std::vector<std::pair<std::string, Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata, "serialize_safetensors");
  size_t total = 8 + p.header.size();
  for (const Tensor& t : p.tensors) total += static_cast<size_t>(t.nbytes());
  std::vector<uint8_t> out(total);
  le64(p.header.size(), out.data());
  std::memcpy(out.data() + 8, p.header.data(), p.header.size());
  size_t pos = 8 + p.header.size();
  for (const Tensor& t : p.tensors) {
    if (t.nbytes() > 0)
      std::memcpy(out.data() + pos, t.data_ptr(), static_cast<size_t>(t.nbytes()));
    pos += static_cast<size_t>(t.nbytes());
  }
  return out;
}

}  // namespace mindiesd::io
