// What the text tokenizers share: the (B, L) id tensor the text encoders take, the UTF-8 check on
// prompts, tokenizer_config.json reading, and HF tokenizers' "added tokens" (special tokens such
// as <|endoftext|> or <extra_id_0> that are cut out of the text before the model sees it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/tensor.h"

namespace mindiesd::text {

// A (B, L) i64 CPU tensor holding `rows` (B >= 1 rows of one length L >= 1). InvalidArgument when
// there are no rows, a row is empty or the rows differ in length (naming the row).
Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows);

// The longest text the tokenizers take (ICU indexes strings with int32_t).
inline constexpr size_t kMaxTextBytes = size_t{256} << 20;

// InvalidArgument when `text` is longer than kMaxTextBytes or is not valid UTF-8 (overlong forms,
// surrogates and code points past U+10FFFF included), naming `what` and the byte offset. The HF
// tokenizers take Python str, which can hold no invalid UTF-8, so there is no replacement policy
// to match: we refuse.
void check_text(std::string_view text, std::string_view what);

// The code point starting at text[i] (text must be valid UTF-8); advances i past it.
inline char32_t next_code_point(std::string_view text, size_t& i) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char c = s[i];
  if (c < 0x80) {
    ++i;
    return c;
  }
  if (c < 0xe0) {
    const char32_t cp = ((c & 0x1fu) << 6) | (s[i + 1] & 0x3fu);
    i += 2;
    return cp;
  }
  if (c < 0xf0) {
    const char32_t cp = ((c & 0x0fu) << 12) | ((s[i + 1] & 0x3fu) << 6) | (s[i + 2] & 0x3fu);
    i += 3;
    return cp;
  }
  const char32_t cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3fu) << 12) | ((s[i + 2] & 0x3fu) << 6) |
                      (s[i + 3] & 0x3fu);
  i += 4;
  return cp;
}

// Appends the UTF-8 form of `cp` to `out`.
void append_utf8(std::string& out, char32_t cp);

// tokenizers' AddedToken: a string matched in the text as a whole and mapped to one id.
// `normalized` tokens are matched after the tokenizer's normalizer ran (on the normalized text),
// the others on the raw text. `single_word` tokens only match when no word character (regex \w)
// touches them. lstrip/rstrip (swallow the whitespace around the match) are kept for completeness;
// with the CLIP and T5 pipelines whitespace yields no ids, so they never change the result.
struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = true;
};

// Splits text on a set of added tokens as tokenizers' AddedVocabulary::find_matches does with its
// leftmost-longest Aho-Corasick automaton: scanning left to right, the first position where some
// token matches wins, and there the longest token.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // Tokens with empty content are ignored; for a repeated content the last one wins.
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  bool empty() const { return tokens_.empty(); }

  struct Piece {
    size_t begin = 0;
    size_t end = 0;
    int64_t id = -1;  // the added token's id, or -1 for plain text
  };
  // The pieces covering all of `text` in order (no empty plain-text pieces; empty text gives none).
  std::vector<Piece> split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;  // longest content first
  std::array<bool, 256> first_byte_{};
};

// tokenizer_config.json in `dir` parsed strictly (Corrupt naming the file when malformed or not an
// object); an empty object when the file does not exist.
nlohmann::json read_tokenizer_config(const std::filesystem::path& dir);

// A special token field of tokenizer_config.json ("pad_token": "<pad>", or an AddedToken object
// {"content": "<pad>", "normalized": ..., ...} whose flags count): a special token, `fallback`
// (matched on the raw text) when absent or null. InvalidArgument naming `source` and the key for
// any other type.
AddedToken config_special_token(const nlohmann::json& config, const char* key,
                                std::string_view fallback, const std::string& source);

// The config's "added_tokens_decoder" ({"49406": {"content": ..., "lstrip": ..., ...}, ...}) and
// the token lists "additional_special_tokens" / "extra_special_tokens" (strings or such objects),
// as AddedTokens without ids (the tokenizer resolves them in its vocabulary, as tokenizers does).
// transformers applies them after the special token fields, added_tokens_decoder last: when one
// content appears more than once, the last entry's flags hold.
// InvalidArgument naming `source` for entries of the wrong shape.
std::vector<AddedToken> config_added_tokens(const nlohmann::json& config,
                                            const std::string& source);

}  // namespace mindiesd::text
