// safetensors reader, writer and WeightStore: round trips, zero-copy views, sharded indexes, and
// one test per kind of broken file (each asserts the error kind and that the message names the
// file and the tensor or field).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/safetensors.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::read_file;
using test::TempDir;
using test::write_file;

// A safetensors image with an explicit header length field.
std::string image_with_length(uint64_t n, std::string_view rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  out += rest;
  return out;
}

// A safetensors image from header JSON and data bytes (header unpadded unless asked).
std::string image(std::string header, std::string_view data, bool pad = false) {
  if (pad) header.resize((header.size() + 7) / 8 * 8, ' ');
  return image_with_length(header.size(), header + std::string(data));
}

// Opening `bytes` written to a file fails with `kind`, naming the file and `needles`.
void expect_open_error(std::string_view bytes, ErrorKind kind,
                       std::initializer_list<std::string_view> needles) {
  TempDir dir("io_st");
  const fs::path p = dir / "bad.safetensors";
  write_file(p, bytes);
  expect_error([&] { SafetensorsFile::open(p); }, kind, {p.string()});
  expect_error([&] { SafetensorsFile::open(p); }, kind, needles);
}

// A tensor filled with bytes 0, 1, 2, ...
Tensor patterned(const Shape& shape, DType dtype, uint8_t seed = 0) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  for (int64_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() &&
         std::memcmp(a.data_ptr(), b.data_ptr(), static_cast<size_t>(a.nbytes())) == 0;
}

const char* kOneF32 = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

// ---- round trips ----------------------------------------------------------------------------

TEST(IoSafetensors, RoundTripEveryDType) {
  TempDir dir("io_st");
  const fs::path p = dir / "all.safetensors";
  std::vector<std::pair<std::string, Tensor>> ts;
  const DType types[] = {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2,
                         DType::i8,  DType::u8,  DType::i32,  DType::i64,     DType::boolean};
  uint8_t seed = 1;
  for (DType t : types)
    ts.emplace_back(std::string("t_") + dtype_name(t), patterned({3, 5}, t, seed++));
  save_safetensors(p, ts, {{"format", "pt"}});

  const auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f->size(), ts.size());
  for (const auto& [name, t] : ts) {
    ASSERT_TRUE(f->has(name)) << name;
    const TensorInfo& info = f->info(name);
    EXPECT_EQ(info.dtype, t.dtype()) << name;
    EXPECT_EQ(info.dtype_name, safetensors_dtype_name(t.dtype()));
    EXPECT_EQ(info.shape, (Shape{3, 5}));
    EXPECT_EQ(info.numel, 15);
    const Tensor back = f->get(name);
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_EQ(back.shape(), t.shape());
    EXPECT_TRUE(same_bytes(back, t)) << name;
  }
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

TEST(IoSafetensors, RoundTripEmptyScalarAndZeroSized) {
  TempDir dir("io_st");
  const fs::path p = dir / "odd.safetensors";
  save_safetensors(p, {{"scalar", patterned({}, DType::f32)},
                       {"empty", Tensor::empty({0, 3}, DType::bf16)},
                       {"one", patterned({1}, DType::u8)}});
  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->get("scalar").dim(), 0);
  EXPECT_EQ(f->get("scalar").numel(), 1);
  EXPECT_EQ(f->get("empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(f->get("empty").numel(), 0);
  EXPECT_EQ(f->info("empty").nbytes(), 0);
  EXPECT_TRUE(f->metadata().empty());

  const fs::path none = dir / "none.safetensors";
  save_safetensors(none, {});
  EXPECT_EQ(SafetensorsFile::open(none)->size(), 0u);
}

TEST(IoSafetensors, NamesAreSorted) {
  TempDir dir("io_st");
  const fs::path p = dir / "n.safetensors";
  save_safetensors(p, {{"zeta", patterned({2}, DType::f32)},
                       {"alpha", patterned({2}, DType::f32)},
                       {"mid.weight", patterned({2}, DType::f32)}});
  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->names(), (std::vector<std::string>{"alpha", "mid.weight", "zeta"}));
}

TEST(IoSafetensors, ZeroCopyViewLiesInsideMapping) {
  TempDir dir("io_st");
  const fs::path p = dir / "z.safetensors";
  save_safetensors(p, {{"a", patterned({4, 4}, DType::f32)}, {"b", patterned({8}, DType::bf16)}});
  const auto f = SafetensorsFile::open(p);
  const auto bytes = f->bytes();
  for (const std::string& name : f->names()) {
    const Tensor t = f->get(name);
    const auto* ptr = static_cast<const uint8_t*>(t.data_ptr());
    EXPECT_GE(ptr, bytes.data()) << name;
    EXPECT_LE(ptr + t.nbytes(), bytes.data() + bytes.size()) << name;
    EXPECT_EQ(ptr, bytes.data() + f->header().data_offset + f->info(name).begin);
    EXPECT_TRUE(t.storage()->borrowed());
  }
}

TEST(IoSafetensors, TensorKeepsMappingAlive) {
  TempDir dir("io_st");
  const fs::path p = dir / "k.safetensors";
  const Tensor src = patterned({64}, DType::f32);
  save_safetensors(p, {{"w", src}});
  Tensor t;
  {
    auto f = SafetensorsFile::open(p);
    t = f->get("w");
  }  // the file object is gone; the view must still read the mapping
  fs::remove(p);
  EXPECT_TRUE(same_bytes(t, src));
}

TEST(IoSafetensors, HeaderPaddedWithSpacesToMultipleOf8) {
  TempDir dir("io_st");
  const fs::path p = dir / "pad.safetensors";
  save_safetensors(p, {{"w", patterned({3}, DType::u8)}}, {{"k", "v"}});
  const std::string raw = read_file(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(raw[static_cast<size_t>(i)]);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = raw.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  const size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
  EXPECT_EQ(raw.size(), 8 + n + 3);
  // __metadata__ comes first, as the reference writer puts it.
  EXPECT_EQ(header.find("\"__metadata__\""), 1u);
}

TEST(IoSafetensors, WriterKeepsGivenOrder) {
  TempDir dir("io_st");
  const fs::path p = dir / "order.safetensors";
  save_safetensors(p, {{"z", patterned({2}, DType::f32)},
                       {"a", patterned({3}, DType::f32)},
                       {"m", patterned({1}, DType::f32)}});
  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->info("z").begin, 0);
  EXPECT_EQ(f->info("a").begin, 8);
  EXPECT_EQ(f->info("m").begin, 20);
}

TEST(IoSafetensors, WriterCopiesNonContiguousTensors) {
  TempDir dir("io_st");
  const fs::path p = dir / "nc.safetensors";
  const Tensor src = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {2, 3});
  const Tensor t = src.transpose(0, 1);  // (3, 2), not contiguous
  ASSERT_FALSE(t.is_contiguous());
  save_safetensors(p, {{"t", t}});
  const Tensor back = SafetensorsFile::open(p)->get("t");
  EXPECT_EQ(back.shape(), (Shape{3, 2}));
  const float* v = back.data<float>();
  const float want[] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(v[i], want[i]) << i;
}

TEST(IoSafetensors, SerializeMatchesSave) {
  TempDir dir("io_st");
  const fs::path p = dir / "s.safetensors";
  const std::vector<std::pair<std::string, Tensor>> ts = {{"a", patterned({5}, DType::f16)}};
  save_safetensors(p, ts, {{"m", "1"}});
  const std::vector<uint8_t> mem = serialize_safetensors(ts, {{"m", "1"}});
  EXPECT_EQ(read_file(p), std::string(mem.begin(), mem.end()));
}

TEST(IoSafetensors, FromBufferParsesLikeAFile) {
  const std::vector<uint8_t> mem =
      serialize_safetensors({{"x", patterned({2, 2}, DType::i32)}}, {{"k", "v"}});
  auto owner = std::make_shared<std::vector<uint8_t>>(mem);
  const auto f = SafetensorsFile::from_buffer(*owner, owner, "memory");
  EXPECT_EQ(f->path(), "memory");
  EXPECT_EQ(f->info("x").shape, (Shape{2, 2}));
  EXPECT_EQ(f->metadata().at("k"), "v");
  EXPECT_EQ(f->get("x").data_ptr(), owner->data() + f->header().data_offset);
}

TEST(IoSafetensors, MisalignedTensorIsCopiedAligned) {
  // Header of 61 bytes: the data section starts at byte 69, so an F32 tensor at offset 0 is not
  // 4-aligned in the mapping and must come back as an aligned copy.
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.resize(61, ' ');
  float vals[2] = {1.5f, -2.25f};
  const std::string data(reinterpret_cast<const char*>(vals), 8);
  TempDir dir("io_st");
  const fs::path p = dir / "mis.safetensors";
  write_file(p, image(header, data));
  const auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f->header().data_offset % 4, 1u);
  const Tensor t = f->get("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4, 0u);
  EXPECT_FALSE(t.storage()->borrowed());
  EXPECT_EQ(t.data<float>()[0], 1.5f);
  EXPECT_EQ(t.data<float>()[1], -2.25f);
}

TEST(IoSafetensors, UnknownEntryFieldsAreIgnored) {
  const std::string img =
      image(R"({"w":{"extra":{"a":[1,{"b":[2,3]}],"c":null},"dtype":"U8","shape":[2],)"
            R"("data_offsets":[0,2],"more":"x"}})",
            "ab");
  const auto f = SafetensorsFile::from_buffer(
      {reinterpret_cast<const uint8_t*>(img.data()), img.size()}, nullptr, "mem");
  EXPECT_EQ(f->info("w").numel, 2);
}

TEST(IoSafetensors, UnsupportedDTypeOpensButGetFails) {
  TempDir dir("io_st");
  const fs::path p = dir / "f64.safetensors";
  write_file(p, image(R"({"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})",
                      std::string(16, '\0')));
  const auto f = SafetensorsFile::open(p);
  EXPECT_FALSE(f->info("d").dtype.has_value());
  EXPECT_EQ(f->info("d").dtype_name, "F64");
  expect_error([&] { f->get("d"); }, ErrorKind::Unsupported, {p.string(), "'d'", "F64"});
}

// ---- writer errors --------------------------------------------------------------------------

TEST(IoSafetensors, WriterRejectsDuplicateNames) {
  TempDir dir("io_st");
  const fs::path p = dir / "dup.safetensors";
  write_file(p, "previous");
  expect_error(
      [&] {
        save_safetensors(p, {{"w", patterned({1}, DType::f32)}, {"w", patterned({1}, DType::f32)}});
      },
      ErrorKind::InvalidArgument, {p.string(), "'w'", "twice"});
  EXPECT_EQ(read_file(p), "previous");  // the failed save left the old file alone
}

TEST(IoSafetensors, WriterRejectsUndefinedTensor) {
  TempDir dir("io_st");
  expect_error(
      [&] {
        save_safetensors(dir / "u.safetensors", {{"w", Tensor()}});
      },
      ErrorKind::InvalidArgument, {"'w'", "undefined"});
}

TEST(IoSafetensors, WriterRejectsReservedName) {
  TempDir dir("io_st");
  expect_error(
      [&] {
        save_safetensors(dir / "r.safetensors", {{"__metadata__", patterned({1}, DType::u8)}});
      },
      ErrorKind::InvalidArgument, {"__metadata__"});
}

TEST(IoSafetensors, WriterRejectsInt4) {
  TempDir dir("io_st");
  expect_error(
      [&] {
        save_safetensors(dir / "i4.safetensors", {{"q", Tensor::empty({4}, DType::i4)}});
      },
      ErrorKind::Unsupported, {"'q'", "int4"});
}

TEST(IoSafetensors, WriterFailureLeavesNoPartialFile) {
  TempDir dir("io_st");
  const fs::path target = dir / "is_a_dir";
  fs::create_directories(target / "child");
  expect_error(
      [&] {
        save_safetensors(target, {{"w", patterned({4}, DType::f32)}});
      },
      ErrorKind::Io, {target.string()});
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename(), "is_a_dir") << "left behind: " << e.path();
  }
  expect_error([&] { save_safetensors(dir / "no_such_dir" / "x.safetensors", {}); },
               ErrorKind::NotFound, {"no_such_dir"});
}

// ---- broken files: one test per problem ----------------------------------------------------

TEST(IoSafetensorsBad, FileMissing) {
  TempDir dir("io_st");
  const fs::path p = dir / "missing.safetensors";
  expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::NotFound, {p.string()});
}

TEST(IoSafetensorsBad, PathIsADirectory) {
  TempDir dir("io_st");
  expect_error([&] { SafetensorsFile::open(dir.path()); }, ErrorKind::InvalidArgument,
               {dir.path().string(), "directory"});
}

TEST(IoSafetensorsBad, FileShorterThan8Bytes) {
  expect_open_error("abc", ErrorKind::Corrupt, {"3 bytes", "too short"});
}

TEST(IoSafetensorsBad, EmptyFile) { expect_open_error("", ErrorKind::Corrupt, {"too short"}); }

TEST(IoSafetensorsBad, HeaderLengthPastEndOfFile) {
  expect_open_error(image_with_length(100, "{}"), ErrorKind::Corrupt,
                    {"header length 100", "past the end"});
}

TEST(IoSafetensorsBad, HeaderLengthAbsurd) {
  expect_open_error(image_with_length(uint64_t{1} << 40, "{}"), ErrorKind::Corrupt, {"absurd"});
  expect_open_error(image_with_length(~uint64_t{0}, "{}"), ErrorKind::Corrupt, {"absurd"});
}

TEST(IoSafetensorsBad, EmptyHeader) {
  expect_open_error(image_with_length(0, ""), ErrorKind::Corrupt, {"not valid JSON"});
}

TEST(IoSafetensorsBad, HeaderNotUtf8) {
  expect_open_error(image("{\"w\xff\xfe\":{}}", ""), ErrorKind::Corrupt, {"UTF-8", "byte 3"});
}

TEST(IoSafetensorsBad, HeaderNotJson) {
  expect_open_error(image("{\"w\": {dtype}}", ""), ErrorKind::Corrupt, {"not valid JSON"});
}

TEST(IoSafetensorsBad, HeaderTrailingGarbage) {
  expect_open_error(image("{} x", ""), ErrorKind::Corrupt, {"not valid JSON"});
}

TEST(IoSafetensorsBad, HeaderNotAnObject) {
  expect_open_error(image("[1, 2]", ""), ErrorKind::Corrupt, {"not a JSON object", "list"});
  expect_open_error(image("\"str\"", ""), ErrorKind::Corrupt, {"not a JSON object"});
}

TEST(IoSafetensorsBad, DuplicateTensorName) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                          R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                          "ab"),
                    ErrorKind::Corrupt, {"tensor 'w'", "twice"});
}

TEST(IoSafetensorsBad, DuplicateFieldInEntry) {
  expect_open_error(
      image(R"({"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}})", "a"),
      ErrorKind::Corrupt, {"tensor 'w'", "field 'dtype'", "twice"});
}

TEST(IoSafetensorsBad, EntryNotAnObject) {
  expect_open_error(image(R"({"w":[1,2]})", ""), ErrorKind::Corrupt,
                    {"tensor 'w'", "must be an object", "list"});
  expect_open_error(image(R"({"w":5})", ""), ErrorKind::Corrupt, {"tensor 'w'", "integer"});
}

TEST(IoSafetensorsBad, MissingDType) {
  expect_open_error(image(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", "a"), ErrorKind::Corrupt,
                    {"tensor 'w'", "missing 'dtype'"});
}

TEST(IoSafetensorsBad, MissingShape) {
  expect_open_error(image(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", "a"), ErrorKind::Corrupt,
                    {"tensor 'w'", "missing 'shape'"});
}

TEST(IoSafetensorsBad, MissingDataOffsets) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1]}})", "a"), ErrorKind::Corrupt,
                    {"tensor 'w'", "missing 'data_offsets'"});
}

TEST(IoSafetensorsBad, DTypeNotAString) {
  expect_open_error(image(R"({"w":{"dtype":8,"shape":[1],"data_offsets":[0,1]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "dtype must be a string"});
}

TEST(IoSafetensorsBad, UnknownDType) {
  expect_open_error(image(R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", "a"),
                    ErrorKind::Unsupported, {"tensor 'w'", "unknown dtype 'Q7'"});
}

TEST(IoSafetensorsBad, ShapeNotAList) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "shape", "non-negative integers"});
}

TEST(IoSafetensorsBad, ShapeNegativeExtent) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "shape", "negative"});
}

TEST(IoSafetensorsBad, ShapeFloatExtent) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "shape", "number"});
}

TEST(IoSafetensorsBad, ShapeNestedList) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "shape", "list"});
}

TEST(IoSafetensorsBad, ShapeTooManyDims) {
  expect_open_error(
      image(R"({"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", "a"),
      ErrorKind::Unsupported, {"tensor 'w'", "more than 8 dims"});
}

TEST(IoSafetensorsBad, ShapeNumelOverflow) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],)"
                          R"("data_offsets":[0,1]}})",
                          "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "overflow"});
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[18446744073709551615],)"
                          R"("data_offsets":[0,1]}})",
                          "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "absurd"});
}

TEST(IoSafetensorsBad, DataOffsetsNotAPair) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "[begin, end]"});
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", "ab"),
                    ErrorKind::Corrupt, {"tensor 'w'", "[begin, end]"});
}

TEST(IoSafetensorsBad, DataOffsetsNotIntegers) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":["0",1]}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "data_offsets", "string"});
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":{"b":0}}})", "a"),
                    ErrorKind::Corrupt, {"tensor 'w'", "data_offsets", "object"});
}

TEST(IoSafetensorsBad, DataOffsetsBeginAfterEnd) {
  expect_open_error(image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}})", "abc"),
                    ErrorKind::Corrupt, {"tensor 'w'", "begin after"});
}

TEST(IoSafetensorsBad, DataOffsetsPastEndOfData) {
  expect_open_error(
      image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, 'x')),
      ErrorKind::Corrupt, {"tensor 'w'", "past the end", "8 bytes"});
}

TEST(IoSafetensorsBad, ByteCountNotNumelTimesElementSize) {
  expect_open_error(
      image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')),
      ErrorKind::Corrupt, {"tensor 'w'", "hold 8 bytes", "needs 12"});
}

TEST(IoSafetensorsBad, SubByteDTypeNotWholeBytes) {
  expect_open_error(image(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", "ab"),
                    ErrorKind::Corrupt, {"tensor 'w'", "whole number of bytes"});
}

TEST(IoSafetensorsBad, OverlappingRanges) {
  expect_open_error(image(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})",
                          std::string(12, 'x')),
                    ErrorKind::Corrupt, {"'a'", "'b'", "overlap"});
}

TEST(IoSafetensorsBad, HoleBetweenTensors) {
  // As safetensors' own validation: the ranges tile the data section, no gaps.
  expect_open_error(image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
                          std::string(10, 'x')),
                    ErrorKind::Corrupt,
                    {"bytes [4, 6)", "belong to no tensor", "between tensor 'a' and tensor 'b'"});
  expect_open_error(image(R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                          std::string(6, 'x')),
                    ErrorKind::Corrupt, {"bytes [0, 2)", "before tensor 'b'"});
}

TEST(IoSafetensorsBad, BytesAfterTheLastTensor) {
  expect_open_error(image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                          std::string(9, 'x')),
                    ErrorKind::Corrupt, {"bytes [8, 9)", "after the last tensor 'b'"});
  expect_open_error(image(R"({"__metadata__":{"format":"pt"}})", "junk"), ErrorKind::Corrupt,
                    {"bytes [0, 4)", "lists no tensors"});
}

TEST(IoSafetensorsBad, EmptyTensorInsideAnotherTensorsRange) {
  // An empty tensor sits where the previous range ends (as safetensors writes it), not inside it.
  expect_open_error(image(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                          R"("e":{"dtype":"U8","shape":[0],"data_offsets":[3,3]}})",
                          std::string(8, 'x')),
                    ErrorKind::Corrupt, {"'a'", "'e'", "overlap"});
}

TEST(IoSafetensors, EmptyTensorsBetweenRangesAreValid) {
  TempDir dir("io_st");
  const fs::path p = dir / "e.safetensors";
  write_file(p, image(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                      R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[2,2]},)"
                      R"("b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                      "xyz"));
  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->info("e").numel, 0);
  EXPECT_EQ(f->get("b").to_vector(), std::vector<float>{float('z')});
}

TEST(IoSafetensorsBad, MetadataNotAnObject) {
  expect_open_error(image(R"({"__metadata__":["format","pt"]})", ""), ErrorKind::Corrupt,
                    {"__metadata__", "must be an object"});
}

TEST(IoSafetensorsBad, MetadataValueNotAString) {
  expect_open_error(image(R"({"__metadata__":{"format":"pt","step":5}})", ""), ErrorKind::Corrupt,
                    {"__metadata__", "'step'", "must be a string"});
}

TEST(IoSafetensorsBad, MetadataDuplicateKey) {
  expect_open_error(image(R"({"__metadata__":{"k":"a","k":"b"}})", ""), ErrorKind::Corrupt,
                    {"__metadata__", "'k'", "twice"});
}

TEST(IoSafetensorsBad, GetUnknownName) {
  TempDir dir("io_st");
  const fs::path p = dir / "g.safetensors";
  write_file(p, image(kOneF32, std::string(8, '\0')));
  const auto f = SafetensorsFile::open(p);
  expect_error([&] { f->get("nope"); }, ErrorKind::NotFound, {p.string(), "'nope'"});
  expect_error([&] { f->info("nope"); }, ErrorKind::NotFound, {p.string(), "'nope'"});
}

// ---- WeightStore ----------------------------------------------------------------------------

// Two shards and an index, as diffusers saves a sharded model.
void write_sharded(const fs::path& dir, const std::string& index_json) {
  save_safetensors(
      dir / "model-00001-of-00002.safetensors",
      {{"a.weight", patterned({4, 4}, DType::bf16)}, {"a.bias", patterned({4}, DType::f32)}});
  save_safetensors(dir / "model-00002-of-00002.safetensors",
                   {{"b.weight", patterned({2, 4}, DType::bf16)}});
  write_file(dir / "model.safetensors.index.json", index_json);
}

const char* kIndex = R"({"metadata": {"total_size": 60}, "weight_map": {
  "a.weight": "model-00001-of-00002.safetensors",
  "a.bias": "model-00001-of-00002.safetensors",
  "b.weight": "model-00002-of-00002.safetensors"}})";

TEST(IoWeightStore, SingleFile) {
  TempDir dir("io_st");
  const fs::path p = dir / "w.safetensors";
  save_safetensors(p, {{"x", patterned({3}, DType::f32)}});
  const WeightStore s = WeightStore::open(p);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_FALSE(s.sharded());
  EXPECT_EQ(s.num_params(), 3);
  EXPECT_EQ(s.num_bytes(), 12);
  EXPECT_EQ(s.get("x").numel(), 3);
}

TEST(IoWeightStore, ShardedIndex) {
  TempDir dir("io_st");
  write_sharded(dir.path(), kIndex);
  const WeightStore s = WeightStore::open(dir / "model.safetensors.index.json");
  EXPECT_TRUE(s.sharded());
  EXPECT_EQ(s.files().size(), 2u);
  EXPECT_EQ(s.names(), (std::vector<std::string>{"a.bias", "a.weight", "b.weight"}));
  EXPECT_TRUE(s.has("b.weight"));
  EXPECT_FALSE(s.has("c"));
  EXPECT_EQ(s.info("b.weight").shape, (Shape{2, 4}));
  EXPECT_EQ(s.get("a.weight").dtype(), DType::bf16);
  EXPECT_NE(s.file_of("b.weight").path().find("00002"), std::string::npos);
  EXPECT_EQ(s.num_params(), 16 + 4 + 8);
  EXPECT_EQ(s.num_bytes(), 32 + 16 + 16);
  const auto stats = s.dtype_stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats.at("BF16").tensors, 2);
  EXPECT_EQ(stats.at("BF16").params, 24);
  EXPECT_EQ(stats.at("BF16").bytes, 48);
  EXPECT_EQ(stats.at("F32").tensors, 1);
  expect_error([&] { s.get("zzz"); }, ErrorKind::NotFound, {"'zzz'"});
}

TEST(IoWeightStore, Directory) {
  TempDir dir("io_st");
  save_safetensors(dir / "a.safetensors", {{"x", patterned({2}, DType::f32)}});
  save_safetensors(dir / "b.safetensors", {{"y", patterned({2}, DType::f16)}});
  write_file(dir / "notes.txt", "ignored");
  const WeightStore s = WeightStore::open(dir.path());
  EXPECT_EQ(s.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(s.files().size(), 2u);
}

TEST(IoWeightStore, DirectoryWithoutWeights) {
  TempDir dir("io_st");
  expect_error([&] { WeightStore::open(dir.path()); }, ErrorKind::NotFound,
               {dir.path().string(), "no *.safetensors"});
}

TEST(IoWeightStore, PathMissing) {
  TempDir dir("io_st");
  expect_error([&] { WeightStore::open(dir / "nope"); }, ErrorKind::NotFound, {"nope"});
}

TEST(IoWeightStore, NameInTwoFiles) {
  TempDir dir("io_st");
  save_safetensors(dir / "a.safetensors", {{"x", patterned({2}, DType::f32)}});
  save_safetensors(dir / "b.safetensors", {{"x", patterned({2}, DType::f32)}});
  expect_error([&] { WeightStore::open(dir.path()); }, ErrorKind::Corrupt,
               {"'x'", "a.safetensors", "b.safetensors"});
}

TEST(IoWeightStore, IndexShardMissing) {
  TempDir dir("io_st");
  write_sharded(dir.path(), kIndex);
  fs::remove(dir / "model-00002-of-00002.safetensors");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::NotFound,
               {idx.string(), "model-00002-of-00002.safetensors", "'b.weight'"});
}

TEST(IoWeightStore, IndexNamesDuplicatedAcrossShards) {
  TempDir dir("io_st");
  write_sharded(dir.path(), kIndex);
  save_safetensors(
      dir / "model-00002-of-00002.safetensors",
      {{"b.weight", patterned({2, 4}, DType::bf16)}, {"a.bias", patterned({4}, DType::f32)}});
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt,
               {idx.string(), "'a.bias'", "00001", "00002"});
}

TEST(IoWeightStore, IndexMapsNameAbsentFromShard) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "ghost": "model-00002-of-00002.safetensors"}})");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt,
               {idx.string(), "'ghost'", "does not contain"});
}

TEST(IoWeightStore, IndexWithoutWeightMap) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"metadata": {}})");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt, {idx.string(), "weight_map"});
}

TEST(IoWeightStore, IndexWeightMapNotAnObject) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"weight_map": ["a.weight"]})");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt,
               {idx.string(), "'weight_map' must be an object"});
}

TEST(IoWeightStore, IndexShardNameNotAString) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"weight_map": {"a.weight": 1}})");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt, {idx.string(), "'a.weight'"});
}

TEST(IoWeightStore, IndexShardOutsideFolder) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"weight_map": {"a.weight": "../elsewhere.safetensors"}})");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt,
               {idx.string(), "'a.weight'", "../elsewhere.safetensors"});
  write_file(idx, R"({"weight_map": {"a.weight": "/etc/passwd"}})");
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt, {"/etc/passwd"});
}

TEST(IoWeightStore, IndexMalformedJson) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"weight_map": {"a.weight": )");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt, {idx.string(), "JSON"});
}

TEST(IoWeightStore, IndexDuplicateKey) {
  TempDir dir("io_st");
  write_sharded(dir.path(), R"({"weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "a.weight": "model-00002-of-00002.safetensors"}})");
  const fs::path idx = dir / "model.safetensors.index.json";
  expect_error([&] { WeightStore::open(idx); }, ErrorKind::Corrupt,
               {idx.string(), "'a.weight'", "twice", "/weight_map"});
}

TEST(IoWeightStore, CorruptShardNamesTheShard) {
  TempDir dir("io_st");
  write_sharded(dir.path(), kIndex);
  write_file(dir / "model-00002-of-00002.safetensors", "garbage!garbage!");
  expect_error([&] { WeightStore::open(dir / "model.safetensors.index.json"); }, ErrorKind::Corrupt,
               {"model-00002-of-00002.safetensors"});
}

TEST(IoWeightStore, FromTensorsServesInMemoryWeights) {
  const Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}, DType::bf16);
  const Tensor b = Tensor::from_vector(std::vector<float>{7}, {1}, DType::f32);
  const WeightStore s = WeightStore::from_tensors({{"w.b", b}, {"w.a", a}}, "random weights");
  EXPECT_EQ(s.names(), std::vector<std::string>({"w.a", "w.b"}));
  EXPECT_TRUE(s.has("w.a"));
  EXPECT_FALSE(s.has("w.c"));
  EXPECT_EQ(s.info("w.a").shape, Shape({2, 3}));
  EXPECT_EQ(s.info("w.a").dtype_name, "BF16");
  EXPECT_EQ(s.info("w.a").nbytes(), 12);
  EXPECT_EQ(s.get("w.a").to_vector(), a.to_vector());
  EXPECT_EQ(s.num_params(), 7);
  EXPECT_EQ(s.num_bytes(), 16);
  EXPECT_EQ(s.dtype_stats().at("F32").tensors, 1);
  // No file behind them; a missing name is NotFound naming the store.
  expect_error([&] { (void)s.file_of("w.a"); }, ErrorKind::NotFound, {"random weights", "w.a"});
  expect_error([&] { (void)s.get("w.c"); }, ErrorKind::NotFound, {"random weights", "w.c"});
  expect_error([&] { (void)WeightStore::from_tensors({{"x", Tensor()}}); },
               ErrorKind::InvalidArgument, {"'x'", "undefined"});
}

}  // namespace
}  // namespace mindiesd::io
