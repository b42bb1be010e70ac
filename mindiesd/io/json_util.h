// Strict JSON parsing for the files mindiesd reads (config.json, model_index.json, weight
// indexes).
//
// nlohmann::json is permissive where our inputs must not be: it silently keeps the last of two
// duplicate keys, and its recursive destructor and DOM let a pathological nesting depth eat the
// stack or memory. parse_json_strict() rejects both, and reports invalid UTF-8 by byte offset, so
// that a hand-edited config with a repeated key is an error instead of a silent surprise.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace mindiesd::io {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text` as one JSON value. Corrupt errors, each naming `source` (the file path): invalid
// UTF-8 (with the byte offset), a syntax error, a duplicate key in any object (with its JSON
// path), or nesting deeper than `max_depth`.
nlohmann::json parse_json_strict(std::string_view text, std::string_view source,
                                 int max_depth = kMaxJsonDepth);

// Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and code
// points past U+10FFFF are invalid), or std::string_view::npos when all of `text` is valid.
size_t find_invalid_utf8(std::string_view text);

// "integer", "number", "string", "boolean", "null", "list", "object": the words used in error
// messages about a JSON value's type.
const char* json_type_word(const nlohmann::json& value);

// A short rendering of a value for error messages (at most about `max_chars` characters).
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 60);

}  // namespace mindiesd::io
