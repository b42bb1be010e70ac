// Fuzzes the CLIP BPE and T5 Unigram tokenizers with arbitrary bytes as the prompt, using the
// tokenizer files of the tiny FLUX golden pipeline (tests/data/golden/flux/pipeline/tokenizer and
// tokenizer_2; MINDIESD_TOKENIZER_ROOT overrides that folder).
//
// Invalid UTF-8 must fail with InvalidArgument and valid UTF-8 must encode without any error.
// For encoded prompts it checks what the API promises: every id inside the vocabulary,
// encode_padded = bos + the first max_length - 2 ids + eos, padded with pad_id (CLIP) or the first
// max_length - 1 ids + </s>, padded with pad_id (T5), at the requested length, and the same ids on
// a second call. The first input byte also picks the max_length, so short lengths are covered.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/io/json_util.h"
#include "mindiesd/text/clip_tokenizer.h"
#include "mindiesd/text/t5_tokenizer.h"

namespace {

using mindiesd::text::ClipTokenizer;
using mindiesd::text::T5Tokenizer;

void check(bool cond) {
  if (!cond) __builtin_trap();
}

std::filesystem::path pipeline_dir() {
  if (const char* env = std::getenv("MINDIESD_TOKENIZER_ROOT")) return env;
#ifdef MINDIESD_SOURCE_DIR
  const std::filesystem::path root = MINDIESD_SOURCE_DIR;
#else
  const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path() / "../..";
#endif
  return root / "tests/data/golden/flux/pipeline";
}

struct Tokenizers {
  ClipTokenizer clip = ClipTokenizer::from_folder(pipeline_dir() / "tokenizer");
  T5Tokenizer t5 = T5Tokenizer::from_folder(pipeline_dir() / "tokenizer_2");
};

const Tokenizers& tokenizers() {
  static const Tokenizers t;
  return t;
}

template <typename F>
void expect_invalid_argument(F&& f) {
  try {
    f();
  } catch (const mindiesd::Error& e) {
    check(e.kind() == mindiesd::ErrorKind::InvalidArgument);
    return;
  }
  check(false);
}

void check_ids(const std::vector<int64_t>& ids, int64_t vocab_size) {
  for (int64_t id : ids) check(id >= 0 && id < vocab_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& tk = tokenizers();
  const int64_t max_length = size == 0 ? 77 : 1 + data[0] % 80;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (mindiesd::io::find_invalid_utf8(text) != std::string_view::npos) {
    expect_invalid_argument([&] { tk.clip.encode(text); });
    expect_invalid_argument([&] { tk.clip.encode_padded(text); });
    expect_invalid_argument([&] { tk.t5.encode(text); });
    expect_invalid_argument([&] { tk.t5.encode_padded(text, 32); });
    return 0;
  }

  // CLIP: any valid UTF-8 encodes.
  const std::vector<int64_t> clip_ids = tk.clip.encode(text);
  check_ids(clip_ids, tk.clip.vocab_size());
  check(tk.clip.encode(text) == clip_ids);
  if (max_length < 2) {
    expect_invalid_argument([&] { tk.clip.encode_padded(text, max_length); });
  } else {
    const std::vector<int64_t> padded = tk.clip.encode_padded(text, max_length);
    check(static_cast<int64_t>(padded.size()) == max_length);
    const size_t keep = std::min(clip_ids.size(), static_cast<size_t>(max_length - 2));
    check(padded[0] == tk.clip.bos_id());
    check(std::equal(clip_ids.begin(), clip_ids.begin() + static_cast<std::ptrdiff_t>(keep),
                     padded.begin() + 1));
    check(padded[keep + 1] == tk.clip.eos_id());
    for (size_t i = keep + 2; i < padded.size(); ++i) check(padded[i] == tk.clip.pad_id());
  }

  // T5: the ids end with </s>.
  const std::vector<int64_t> t5_ids = tk.t5.encode(text);
  check(!t5_ids.empty() && t5_ids.back() == tk.t5.eos_id());
  check_ids(t5_ids, tk.t5.vocab_size());
  check(tk.t5.encode(text) == t5_ids);
  const std::vector<int64_t> padded = tk.t5.encode_padded(text, max_length);
  check(static_cast<int64_t>(padded.size()) == max_length);
  const size_t keep = std::min(t5_ids.size() - 1, static_cast<size_t>(max_length - 1));
  check(std::equal(t5_ids.begin(), t5_ids.begin() + static_cast<std::ptrdiff_t>(keep),
                   padded.begin()));
  check(padded[keep] == tk.t5.eos_id());
  for (size_t i = keep + 1; i < padded.size(); ++i) check(padded[i] == tk.t5.pad_id());
  return 0;
}
