// The CLIP BPE and T5 Unigram tokenizers against HF transformers 5.24 (tokenizers-backed
// CLIPTokenizer / T5Tokenizer): every case of tests/data/golden/flux/tokenizer_cases.json, a few
// further HF outputs for the rules the golden prompts do not reach, and one test per kind of bad
// input (missing or corrupt files, invalid UTF-8, bad max_length).
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/text/clip_tokenizer.h"
#include "mindiesd/text/t5_tokenizer.h"
#include "mindiesd/text/tokens.h"
#include "test_util.h"

namespace mindiesd::text {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::read_file;
using test::TempDir;
using test::write_file;
using Ids = std::vector<int64_t>;

const fs::path kGolden = fs::path(MINDIESD_SOURCE_DIR) / "tests/data/golden/flux";
const fs::path kClipDir = kGolden / "pipeline/tokenizer";
const fs::path kT5Dir = kGolden / "pipeline/tokenizer_2";

const ClipTokenizer& clip() {
  static const ClipTokenizer t = ClipTokenizer::from_folder(kClipDir);
  return t;
}

const T5Tokenizer& t5() {
  static const T5Tokenizer t = T5Tokenizer::from_folder(kT5Dir);
  return t;
}

nlohmann::json golden_cases() {
  std::ifstream f(kGolden / "tokenizer_cases.json");
  return nlohmann::json::parse(f);
}

// The prompt as a JSON string, so that control characters show in a failure message.
std::string quoted(const std::string& prompt) { return nlohmann::json(prompt).dump(); }

std::string hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    static const char* kDigits = "0123456789abcdef";
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
    out += ' ';
  }
  return out;
}

TEST(ClipTokenizer, GoldenCases) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const nlohmann::json file = golden_cases();
  ASSERT_GE(file["cases"].size(), 16u);
  for (const auto& c : file["cases"]) {
    const std::string prompt = c["prompt"];
    SCOPED_TRACE("prompt " + quoted(prompt));
    EXPECT_EQ(clip().encode(prompt), c["clip_raw"].get<Ids>());
    EXPECT_EQ(clip().encode_padded(prompt, 77), c["clip"].get<Ids>());
    EXPECT_EQ(clip().encode_padded(prompt), c["clip"].get<Ids>());  // 77 is the default
  }
}

TEST(T5Tokenizer, GoldenCases) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const nlohmann::json file = golden_cases();
  const int64_t max_length = file["max_sequence_length"];
  ASSERT_GE(file["cases"].size(), 16u);
  for (const auto& c : file["cases"]) {
    const std::string prompt = c["prompt"];
    SCOPED_TRACE("prompt " + quoted(prompt));
    EXPECT_EQ(t5().encode(prompt), c["t5_raw"].get<Ids>());
    EXPECT_EQ(t5().encode_padded(prompt, max_length), c["t5"].get<Ids>());
  }
}

// The ids the golden FluxPipeline run fed its text encoders (io.safetensors b.* and r.*, prompts in
// its metadata), as the pipeline asks for them: CLIP padded to 77, T5 to max_sequence_length.
TEST(TextTokenizers, FluxPipelineGoldenIds) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const auto file = io::SafetensorsFile::open(kGolden / "io.safetensors");
  const auto& meta = file->metadata();
  const int64_t max_length = std::stoll(meta.at("max_sequence_length"));
  const std::vector<std::string> prompts = nlohmann::json::parse(meta.at("prompts"));
  const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
      {"b", prompts}, {"bf16", prompts}, {"r", {meta.at("rect_prompt")}}};
  for (const auto& [prefix, texts] : runs) {
    const Tensor clip_ids = file->get(prefix + ".clip_ids");
    const Tensor t5_ids = file->get(prefix + ".t5_ids");
    ASSERT_EQ(clip_ids.shape(), (Shape{static_cast<int64_t>(texts.size()), 77}));
    ASSERT_EQ(t5_ids.shape(), (Shape{static_cast<int64_t>(texts.size()), max_length}));
    std::vector<Ids> clip_rows, t5_rows;
    for (const std::string& p : texts) {
      clip_rows.push_back(clip().encode_padded(p, 77));
      t5_rows.push_back(t5().encode_padded(p, max_length));
    }
    SCOPED_TRACE(prefix);
    const Tensor ours_clip = ids_tensor(clip_rows);
    const Tensor ours_t5 = ids_tensor(t5_rows);
    const auto as_ids = [](const Tensor& t) {
      const Tensor c = t.contiguous();
      return Ids(c.data<int64_t>(), c.data<int64_t>() + c.numel());
    };
    ASSERT_EQ(clip_ids.dtype(), DType::i64);
    ASSERT_EQ(t5_ids.dtype(), DType::i64);
    EXPECT_EQ(as_ids(ours_clip), as_ids(clip_ids));
    EXPECT_EQ(as_ids(ours_t5), as_ids(t5_ids));
  }
}

// Outputs of transformers 5.24 on the golden folder for rules the golden prompts do not reach
// (recorded by hand with CLIPTokenizer(...)(s, add_special_tokens=False) and T5Tokenizer(...)(s);
// they belong in tools/golden/make_flux_golden.py's TOKENIZER_PROMPTS when it is next rerun).
struct HfCase {
  const char* prompt;
  Ids clip;
  Ids t5;
};

const HfCase kHfCases[] = {
    // Lowercase per code point: U+0130 -> "i" U+0307, no final sigma.
    {"İstanbul ΣΑΣ",
     {328, 16384, 11231, 139, 225, 138, 109, 139, 481},
     {4, 2, 70, 45, 91, 119, 28, 110, 4, 2, 1}},
    // tokenizers' NFC has Unicode 9.0 tables: U+1DF9 and U+0D3C (Unicode 10) are not reordered.
    {"\u1df9\u1714 \u0f80\u0d3c e\u0301 \u212b",
     {157, 115, 117, 157, 250, 498, 156, 122, 222, 15418, 376, 4166, 127, 354},
     {4, 2, 4, 2, 4, 2, 4, 2, 1}},
    // Special tokens: matched raw (not after lowercasing); inside a word too.
    {"<|STARTOFTEXT|> x<|endoftext|>y",
     {27, 347, 993, 6659, 4160, 91, 285, 343, 49407, 344},
     {4, 2, 39, 2, 4, 78, 2, 20, 7, 129, 5, 20, 78, 5, 2, 30, 1}},
    // The charsmap rewrites a short grapheme cluster by its shortest prefix: the accent is lost.
    {"ＡＢ\u0301 x\r\ny",
     {171, 121, 223, 171, 121, 480, 136, 479, 343, 344},
     {4, 39, 2, 4, 78, 4, 30, 1}},
    // White_Space (NEL, ideographic space) splits; U+001C and ZWSP are not \s for CLIP.
    {"a\u0085b\u001cc\u200bd\u3000e",
     {320, 321, 472, 322, 9844, 323, 324},
     {3, 31, 117, 4, 40, 4, 20, 1}},
    {"hello</s>world<extra_id_0><extra_id_10><pad><unk>",
     {3306, 34308, 338,  285, 1002, 283, 4231,  318,  1014,  318,  271, 28015,
      4231, 318,   1014, 318, 272,  271, 28015, 7601, 28015, 5542, 285},
     {73, 107, 106, 1, 116, 154, 110, 40, 259, 249, 0, 2, 1}},
    {"\u2581\u2581a a\u2581\u2581b",
     {4168, 223, 4168, 479, 320, 320, 4168, 223, 4168, 479, 321},
     {3, 3, 31, 1}},
    {"👨\u200d👩\u200d👧 🇺🇸 👍🏽",
     {25023, 26304, 964, 356, 5688, 43722},
     {4, 2, 4, 2, 4, 2, 1}},
    {"ﬁ ① ½ ２",
     {171, 105, 479, 158, 239, 510, 33613, 171, 120, 496},
     {93, 100, 4, 145, 4, 145, 2, 137, 4, 137, 1}},
};

TEST(ClipTokenizer, HfRules) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  for (const HfCase& c : kHfCases) {
    SCOPED_TRACE(std::string("prompt ") + quoted(c.prompt));
    EXPECT_EQ(clip().encode(c.prompt), c.clip);
  }
}

TEST(T5Tokenizer, HfRules) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  for (const HfCase& c : kHfCases) {
    SCOPED_TRACE(std::string("prompt ") + quoted(c.prompt));
    EXPECT_EQ(t5().encode(c.prompt), c.t5);
  }
}

TEST(ClipTokenizer, SpecialIdsAndTruncation) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  EXPECT_EQ(clip().bos_id(), 49406);
  EXPECT_EQ(clip().eos_id(), 49407);
  EXPECT_EQ(clip().pad_id(), 49407);
  EXPECT_EQ(clip().vocab_size(), 49408);
  // Truncation keeps eos last (HF: padding="max_length", truncation=True).
  EXPECT_EQ(clip().encode_padded("a red circle", 5), (Ids{49406, 320, 736, 7117, 49407}));
  EXPECT_EQ(clip().encode_padded("a red circle red star green", 5),
            (Ids{49406, 320, 736, 7117, 49407}));
  EXPECT_EQ(clip().encode_padded("a red circle", 2), (Ids{49406, 49407}));
  EXPECT_EQ(clip().encode_padded("a", 4), (Ids{49406, 320, 49407, 49407}));
}

TEST(T5Tokenizer, SpecialIdsAndTruncation) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  EXPECT_EQ(t5().pad_id(), 0);
  EXPECT_EQ(t5().eos_id(), 1);
  EXPECT_EQ(t5().unk_id(), 2);
  EXPECT_EQ(t5().vocab_size(), 160 + 100);  // the pieces + extra_ids
  EXPECT_EQ(t5().encode_padded("a red circle red star green", 4), (Ids{3, 63, 83, 1}));
  EXPECT_EQ(t5().encode_padded("a red circle", 1), (Ids{1}));  // HF keeps just </s>
  EXPECT_EQ(t5().encode_padded("a", 4), (Ids{3, 1, 0, 0}));
  // <extra_id_N> sits at vocab_size - 1 - N, and the longest added token wins.
  EXPECT_EQ(t5().encode("<extra_id_1><extra_id_10>"), (Ids{258, 249, 1}));
}

TEST(ClipTokenizer, BadMaxLength) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  for (int64_t n : {1, 0, -5}) {
    expect_error([&] { clip().encode_padded("a", n); }, ErrorKind::InvalidArgument,
                 {"max_length", std::to_string(n)});
  }
  expect_error([&] { clip().encode_padded("a", int64_t{1} << 40); }, ErrorKind::InvalidArgument,
               {"max_length"});
}

TEST(T5Tokenizer, BadMaxLength) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  for (int64_t n : {0, -1}) {
    expect_error([&] { t5().encode_padded("a", n); }, ErrorKind::InvalidArgument,
                 {"max_length", std::to_string(n)});
  }
}

TEST(TextTokenizers, InvalidUtf8) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  for (const std::string& bad :
       {std::string("\xff"), std::string("ok \xc0\x80"), std::string("\xed\xa0\x80"),
        std::string("\xe2\x82"), std::string("a\x80z"), std::string("\xf4\x90\x80\x80")}) {
    SCOPED_TRACE("bytes " + hex(bad));
    expect_error([&] { clip().encode(bad); }, ErrorKind::InvalidArgument,
                 {"CLIP", "UTF-8", "byte offset"});
    expect_error([&] { clip().encode_padded(bad); }, ErrorKind::InvalidArgument, {"UTF-8"});
    expect_error([&] { t5().encode(bad); }, ErrorKind::InvalidArgument,
                 {"T5", "UTF-8", "byte offset"});
    expect_error([&] { t5().encode_padded(bad, 8); }, ErrorKind::InvalidArgument, {"UTF-8"});
  }
  // NUL and other controls are valid UTF-8 and tokenize.
  EXPECT_FALSE(clip().encode(std::string("a\0b", 3)).empty());
  EXPECT_FALSE(t5().encode(std::string("a\0b", 3)).empty());
}

TEST(ClipTokenizer, MissingFiles) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  TempDir dir("clip_missing");
  expect_error([&] { ClipTokenizer::from_folder(dir / "nope"); }, ErrorKind::NotFound, {"nope"});
  write_file(dir / "vocab.json", read_file(kClipDir / "vocab.json"));
  expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::NotFound,
               {"merges.txt"});
  expect_error([&] { ClipTokenizer::from_files(dir / "missing.json", kClipDir / "merges.txt"); },
               ErrorKind::NotFound, {"missing.json"});
}

// A CLIP folder with the golden merges and `vocab` as vocab.json.
void write_clip_folder(const TempDir& dir, const std::string& vocab, const std::string& merges) {
  write_file(dir / "vocab.json", vocab);
  write_file(dir / "merges.txt", merges);
}

TEST(ClipTokenizer, CorruptVocab) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const std::string merges = "#version: 0.2\na b\n";
  for (const auto& [vocab, needle] :
       std::vector<std::pair<std::string, std::string>>{{"{\"a\": 1,", "vocab.json"},
                                                        {"[1, 2]", "JSON object"},
                                                        {R"({"a": -1, "b": 2})", "\"a\""},
                                                        {R"({"a": "1"})", "\"a\""},
                                                        {R"({"a": 1, "a": 2})", "twice"},
                                                        {"{}", "empty"}}) {
    TempDir dir("clip_vocab");
    write_clip_folder(dir, vocab, merges);
    SCOPED_TRACE(vocab);
    expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
                 {"vocab.json", needle});
  }
}

TEST(ClipTokenizer, CorruptMerges) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const std::string vocab =
      R"({"a": 0, "b": 1, "ab": 2, "<|startoftext|>": 3, "<|endoftext|>": 4})";
  for (const auto& [merges, needle] :
       std::vector<std::pair<std::string, std::string>>{{"#version: 0.2\nab\n", "line 2"},
                                                        {"a b\na  b\n", "line 2"},
                                                        {"a b c\n", "line 1"},
                                                        {"a x\n", "\"x\""},
                                                        {"b a\n", "\"ba\""},
                                                        {"a b\n\xff\xfe\n", "UTF-8"}}) {
    TempDir dir("clip_merges");
    write_clip_folder(dir, vocab, merges);
    SCOPED_TRACE(merges);
    expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
                 {"merges.txt", needle});
  }
  // The same vocabulary with good merges loads, and the special tokens must be in it.
  TempDir dir("clip_merges_ok");
  write_clip_folder(dir, vocab, "#version: 0.2\na b\n");
  const ClipTokenizer t = ClipTokenizer::from_folder(dir.path());
  EXPECT_EQ(t.vocab_size(), 5);
  EXPECT_EQ(t.encode_padded("<|startoftext|>", 4), (Ids{3, 3, 4, 4}));
  write_clip_folder(dir, R"({"a": 0, "b": 1, "ab": 2, "<|startoftext|>": 3})", "a b\n");
  expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
               {"<|endoftext|>", "vocab.json"});
}

TEST(ClipTokenizer, TokenizerConfig) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  TempDir dir("clip_config");
  write_file(dir / "vocab.json", read_file(kClipDir / "vocab.json"));
  write_file(dir / "merges.txt", read_file(kClipDir / "merges.txt"));
  // pad_token as an AddedToken object, and a token matched after normalization (HF honours
  // added_tokens_decoder's "normalized": true, so the upper-case form matches too).
  write_file(dir / "tokenizer_config.json", R"({
    "pad_token": {"content": "!", "special": true},
    "added_tokens_decoder": {
      "49406": {"content": "<|startoftext|>", "lstrip": false, "normalized": true,
                "rstrip": false, "single_word": false, "special": true}}})");
  const ClipTokenizer t = ClipTokenizer::from_folder(dir.path());
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.encode_padded("a", 4), (Ids{49406, 320, 49407, 0}));
  EXPECT_EQ(t.encode("<|STARTOFTEXT|>"), (Ids{49406}));
  EXPECT_EQ(clip().encode("<|STARTOFTEXT|>"), (Ids{27, 347, 993, 6659, 4160, 91, 285}));

  // A special token field given as an AddedToken object keeps its flags, and a later mention of
  // the same content (additional_special_tokens, then added_tokens_decoder) overrides them, as
  // transformers 5.24 does.
  const std::string bos_normalized =
      R"("bos_token": {"__type": "AddedToken", "content": "<|startoftext|>", "lstrip": false,
                       "normalized": true, "rstrip": false, "single_word": false})";
  write_file(dir / "tokenizer_config.json", "{" + bos_normalized + "}");
  EXPECT_EQ(ClipTokenizer::from_folder(dir.path()).encode("<|STARTOFTEXT|>"), (Ids{49406}));
  write_file(dir / "tokenizer_config.json",
             "{" + bos_normalized + R"(, "additional_special_tokens": ["<|startoftext|>"]})");
  EXPECT_EQ(ClipTokenizer::from_folder(dir.path()).encode("<|STARTOFTEXT|>"),
            (Ids{27, 347, 993, 6659, 4160, 91, 285}));

  write_file(dir / "tokenizer_config.json", R"({"pad_token": "<not in the vocabulary>"})");
  expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
               {"pad_token", "<not in the vocabulary>"});
  write_file(dir / "tokenizer_config.json", R"({"pad_token": 3})");
  expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::InvalidArgument,
               {"tokenizer_config.json", "pad_token"});
  write_file(dir / "tokenizer_config.json", "{\"pad_token\": ");
  expect_error([&] { ClipTokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
               {"tokenizer_config.json"});
}

TEST(T5Tokenizer, MissingFiles) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  TempDir dir("t5_missing");
  expect_error([&] { T5Tokenizer::from_folder(dir / "nope"); }, ErrorKind::NotFound, {"nope"});
  expect_error([&] { T5Tokenizer::from_folder(dir.path()); }, ErrorKind::NotFound,
               {"spiece.model"});
}

TEST(T5Tokenizer, CorruptModel) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const std::string model = read_file(kT5Dir / "spiece.model");
  ASSERT_GT(model.size(), 1000u);
  for (const auto& [bytes, what] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty"},
           {"this is not a protobuf", "text"},
           {model.substr(0, model.size() / 2), "truncated"},
           {std::string(64, '\xff'), "0xff bytes"}}) {
    TempDir dir("t5_corrupt");
    write_file(dir / "spiece.model", bytes);
    SCOPED_TRACE(what);
    expect_error([&] { T5Tokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
                 {"spiece.model"});
  }
}

TEST(T5Tokenizer, TokenizerConfig) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  TempDir dir("t5_config");
  write_file(dir / "spiece.model", read_file(kT5Dir / "spiece.model"));
  // Without tokenizer_config.json: 100 extra ids, as T5Tokenizer's default.
  EXPECT_EQ(T5Tokenizer::from_folder(dir.path()).vocab_size(), 260);
  write_file(dir / "tokenizer_config.json", R"({"extra_ids": 10})");
  const T5Tokenizer t = T5Tokenizer::from_folder(dir.path());
  EXPECT_EQ(t.vocab_size(), 170);
  EXPECT_EQ(t.encode("<extra_id_9><extra_id_0>"), (Ids{160, 169, 1}));
  write_file(dir / "tokenizer_config.json", R"({"extra_ids": "many"})");
  expect_error([&] { T5Tokenizer::from_folder(dir.path()); }, ErrorKind::InvalidArgument,
               {"tokenizer_config.json", "extra_ids"});
  write_file(dir / "tokenizer_config.json", R"({"eos_token": "<eos>"})");
  expect_error([&] { T5Tokenizer::from_folder(dir.path()); }, ErrorKind::Corrupt,
               {"eos_token", "<eos>", "spiece.model"});
  write_file(dir / "tokenizer_config.json", R"({"additional_special_tokens": ["<new>"]})");
  expect_error([&] { T5Tokenizer::from_folder(dir.path()); }, ErrorKind::Unsupported, {"<new>"});
}

TEST(TextTokens, IdsTensor) {
  const Tensor t = ids_tensor({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(t.dtype(), DType::i64);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_TRUE(t.is_contiguous());
  const int64_t* p = t.data<int64_t>();
  EXPECT_EQ((Ids(p, p + 6)), (Ids{1, 2, 3, 4, 5, 6}));
  expect_error([] { ids_tensor({{1, 2}, {3}}); }, ErrorKind::InvalidArgument, {"row 1"});
  expect_error([] { ids_tensor({}); }, ErrorKind::InvalidArgument, {"no rows"});
  expect_error([] { ids_tensor({{}}); }, ErrorKind::InvalidArgument, {"empty"});
}

}  // namespace
}  // namespace mindiesd::text
