#include "mindiesd/text/tokens.h"

#if MINDIESD_CPU_DEPS
#include <unicode/uchar.h>
#endif

#include <algorithm>
#include <cstring>
#include <system_error>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::text {

namespace {

constexpr int64_t kMaxConfigBytes = 16 << 20;

#if MINDIESD_CPU_DEPS
// Rust's char::is_whitespace and the regex class \s: the Unicode White_Space property.
bool is_space(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

// The regex class \w of Rust's regex crate (UTS #18 word characters).
bool is_word(char32_t c) {
  const auto u = static_cast<UChar32>(c);
  if (u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL)) {
    return true;
  }
  const uint32_t mask = U_MASK(u_charType(u));
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}
#else
// Without ICU: White_Space is a fixed list of 25 code points (Unicode 15 PropList.txt).
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

// \w is exact for ASCII; beyond it the tables are ICU's, which this build lacks.
bool is_word(char32_t c) {
  if (c < 0x80) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           c == '_';
  }
  MINDIESD_THROW(Unsupported, "single_word added tokens next to non-ASCII text need ICU, and ",
                 "this build has none (MINDIESD_CPU_DEPS=OFF)");
}
#endif

// Where the code point ending at text[end] (exclusive) starts; text[..end] is valid UTF-8.
size_t code_point_start_before(std::string_view text, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xc0) == 0x80) --i;
  return i;
}

char32_t code_point_before(std::string_view text, size_t end) {
  size_t i = code_point_start_before(text, end);
  return next_code_point(text, i);
}

bool json_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  MINDIESD_CHECK(it->is_boolean(), InvalidArgument, source, ": added token field \"", key,
                 "\" must be a boolean, got ", io::json_type_word(*it));
  return it->get<bool>();
}

// A token given as a string (a special token, matched on the raw text) or as a serialized
// AddedToken object.
AddedToken parse_added_token(const nlohmann::json& j, const std::string& source,
                             const std::string& where) {
  AddedToken t;
  if (j.is_string()) {
    t.content = j.get<std::string>();
    return t;
  }
  MINDIESD_CHECK(j.is_object(), InvalidArgument, source, ": ", where,
                 " must be a string or an object with \"content\", got ", io::json_type_word(j));
  auto it = j.find("content");
  MINDIESD_CHECK(it != j.end() && it->is_string(), InvalidArgument, source, ": ", where,
                 " has no string \"content\"");
  t.content = it->get<std::string>();
  t.special = json_bool(j, "special", false, source);
  // transformers' AddedToken: normalized defaults to `not special`.
  t.normalized = json_bool(j, "normalized", !t.special, source);
  t.single_word = json_bool(j, "single_word", false, source);
  t.lstrip = json_bool(j, "lstrip", false, source);
  t.rstrip = json_bool(j, "rstrip", false, source);
  return t;
}

}  // namespace

Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  MINDIESD_CHECK(!rows.empty(), InvalidArgument, "ids_tensor: no rows");
  const size_t len = rows[0].size();
  MINDIESD_CHECK(len > 0, InvalidArgument, "ids_tensor: row 0 is empty");
  for (size_t i = 1; i < rows.size(); ++i) {
    MINDIESD_CHECK(rows[i].size() == len, InvalidArgument, "ids_tensor: row ", i, " has ",
                   rows[i].size(), " ids, row 0 has ", len, " (pad the rows to one length)");
  }
  Tensor t =
      Tensor::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(len)}, DType::i64);
  int64_t* out = t.data<int64_t>();
  for (const auto& row : rows) {
    std::memcpy(out, row.data(), len * sizeof(int64_t));
    out += len;
  }
  return t;
}

void check_text(std::string_view text, std::string_view what) {
  MINDIESD_CHECK(text.size() <= kMaxTextBytes, InvalidArgument, what, ": the text has ",
                 text.size(), " bytes, more than the ", kMaxTextBytes, " allowed");
  const size_t bad = io::find_invalid_utf8(text);
  MINDIESD_CHECK(bad == std::string_view::npos, InvalidArgument, what,
                 ": the text is not valid UTF-8 (byte offset ", bad, ", value 0x", std::hex,
                 static_cast<int>(static_cast<unsigned char>(text[bad])), ")");
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) {
  for (AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    auto same = std::find_if(tokens_.begin(), tokens_.end(),
                             [&](const AddedToken& o) { return o.content == t.content; });
    if (same != tokens_.end()) {
      *same = std::move(t);
    } else {
      tokens_.push_back(std::move(t));
    }
  }
  std::stable_sort(tokens_.begin(), tokens_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  for (const AddedToken& t : tokens_) first_byte_[static_cast<unsigned char>(t.content[0])] = true;
}

std::vector<AddedTokenMatcher::Piece> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Piece> pieces;
  size_t done = 0;  // end of the last emitted piece
  size_t pos = 0;   // where the search resumes (the end of the last raw match)
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (const AddedToken& t : tokens_) {  // longest first: the first hit is the longest
      if (text.compare(pos, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + hit->content.size();
    pos = stop;
    if (hit->single_word) {
      const bool word_before = start > 0 && is_word(code_point_before(text, start));
      size_t after = stop;
      const bool word_after = stop < text.size() && is_word(next_code_point(text, after));
      if (word_before || word_after) continue;  // not a whole word: the match is dropped
    }
    if (hit->lstrip) {
      // Not past the previous match, which may already have taken those spaces.
      while (start > done && is_space(code_point_before(text, start))) {
        start = code_point_start_before(text, start);
      }
    }
    if (hit->rstrip) {
      while (stop < text.size()) {
        size_t next = stop;
        if (!is_space(next_code_point(text, next))) break;
        stop = next;
      }
    }
    // tokenizers resumes the search at the raw match's end (pos), so after an rstrip a token that
    // starts with whitespace could overlap this one; keep the pieces disjoint.
    start = std::max(start, done);
    if (stop <= start) continue;
    if (done < start) pieces.push_back({done, start, -1});
    pieces.push_back({start, stop, hit->id});
    done = stop;
  }
  if (done < text.size()) pieces.push_back({done, text.size(), -1});
  return pieces;
}

nlohmann::json read_tokenizer_config(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nlohmann::json::object();
  const std::string text = io::read_file(path, kMaxConfigBytes, "a tokenizer_config.json");
  nlohmann::json j = io::parse_json_strict(text, path.string());
  MINDIESD_CHECK(j.is_object(), Corrupt, path.string(), ": expected a JSON object, got ",
                 io::json_type_word(j));
  return j;
}

AddedToken config_special_token(const nlohmann::json& config, const char* key,
                                std::string_view fallback, const std::string& source) {
  auto it = config.find(key);
  AddedToken t;
  if (it == config.end() || it->is_null()) {
    t.content = std::string(fallback);
  } else {
    t = parse_added_token(*it, source, str_cat("\"", key, "\""));
    if (it->is_object() && !it->contains("normalized")) t.normalized = false;
  }
  t.special = true;  // the special token fields are special whatever the object says
  return t;
}

std::vector<AddedToken> config_added_tokens(const nlohmann::json& config,
                                            const std::string& source) {
  std::vector<AddedToken> out;
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    MINDIESD_CHECK(it->is_array() || it->is_object(), InvalidArgument, source, ": \"", key,
                   "\" must be a list of tokens, got ", io::json_type_word(*it));
    for (const auto& [name, value] : it->items()) {
      AddedToken t = parse_added_token(value, source, str_cat("\"", key, "\" entry ", name));
      if (value.is_string()) t.special = true;
      out.push_back(std::move(t));
    }
  }
  // Last, so that its flags (normalized, lstrip, ...) win over the plain strings above.
  auto it = config.find("added_tokens_decoder");
  if (it != config.end() && !it->is_null()) {
    MINDIESD_CHECK(it->is_object(), InvalidArgument, source,
                   ": \"added_tokens_decoder\" must be an object, got ", io::json_type_word(*it));
    for (const auto& [id, value] : it->items()) {
      out.push_back(parse_added_token(value, source, str_cat("added_tokens_decoder[", id, "]")));
    }
  }
  return out;
}

}  // namespace mindiesd::text
