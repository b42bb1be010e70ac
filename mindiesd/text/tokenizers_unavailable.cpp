// The CLIP and T5 tokenizers of builds without ICU and libsentencepiece (MINDIESD_CPU_DEPS=OFF,
// e.g. a GPU machine with only the CUDA toolkit): loading one fails with an Unsupported error
// that names what is missing, so a pipeline stops at load time instead of tokenizing wrongly.
// Full builds compile clip_tokenizer.cpp and t5_tokenizer.cpp instead.
#if !MINDIESD_CPU_DEPS
#include "mindiesd/core/error.h"
#include "mindiesd/text/clip_tokenizer.h"
#include "mindiesd/text/t5_tokenizer.h"

namespace mindiesd::text {

namespace {
[[noreturn]] void unavailable(const char* tokenizer, const std::filesystem::path& source) {
  MINDIESD_THROW(Unsupported, source.string(), ": the ", tokenizer,
                 " tokenizer needs ICU and libsentencepiece, and this build has neither ",
                 "(MINDIESD_CPU_DEPS=OFF)");
}
}  // namespace

// No tokenizer object can exist in this build, so the members below are never reached.
ClipTokenizer ClipTokenizer::from_files(const std::filesystem::path& vocab_json,
                                        const std::filesystem::path&) {
  unavailable("CLIP", vocab_json);
}
ClipTokenizer ClipTokenizer::from_folder(const std::filesystem::path& dir) {
  unavailable("CLIP", dir);
}
std::vector<int64_t> ClipTokenizer::encode(std::string_view) const { unavailable("CLIP", ""); }
std::vector<int64_t> ClipTokenizer::encode_padded(std::string_view, int64_t) const {
  unavailable("CLIP", "");
}
int64_t ClipTokenizer::bos_id() const { unavailable("CLIP", ""); }
int64_t ClipTokenizer::eos_id() const { unavailable("CLIP", ""); }
int64_t ClipTokenizer::pad_id() const { unavailable("CLIP", ""); }
int64_t ClipTokenizer::vocab_size() const { unavailable("CLIP", ""); }

T5Tokenizer T5Tokenizer::from_folder(const std::filesystem::path& dir) { unavailable("T5", dir); }
std::vector<int64_t> T5Tokenizer::encode(std::string_view) const { unavailable("T5", ""); }
std::vector<int64_t> T5Tokenizer::encode_padded(std::string_view, int64_t,
                                                std::vector<int64_t>*) const {
  unavailable("T5", "");
}
int64_t T5Tokenizer::pad_id() const { unavailable("T5", ""); }
int64_t T5Tokenizer::eos_id() const { unavailable("T5", ""); }
int64_t T5Tokenizer::unk_id() const { unavailable("T5", ""); }
int64_t T5Tokenizer::vocab_size() const { unavailable("T5", ""); }

}  // namespace mindiesd::text
#endif
