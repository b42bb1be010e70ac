#include "mindiesd/io/json_util.h"

#include <set>
#include <vector>

#include "mindiesd/core/error.h"

namespace mindiesd::io {

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // a continuation byte without a lead, or 0xf8..0xff
    }
    if (n - i < static_cast<size_t>(len)) return i;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    // Overlong encodings, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += static_cast<size_t>(len);
  }
  return std::string_view::npos;
}

const char* json_type_word(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "integer";
    case nlohmann::json::value_t::number_float:
      return "number";
    case nlohmann::json::value_t::string:
      return "string";
    case nlohmann::json::value_t::array:
      return "list";
    case nlohmann::json::value_t::object:
      return "object";
    default:
      return "value";
  }
}

std::string json_excerpt(const nlohmann::json& v, size_t max_chars) {
  // `replace` keeps dump() from throwing on strings that are not UTF-8.
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_chars) {
    s.resize(max_chars);
    s += "...";
  }
  return s;
}

namespace {

// Largest nesting of [ and { outside strings. A linear pre-scan, so that a hostile file cannot
// make the parser build (and then recursively destroy) a pathological tree.
int max_nesting(std::string_view text) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) max_depth = depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

std::string path_string(const std::vector<std::string>& path) {
  std::string s;
  for (const std::string& p : path) s += "/" + p;
  return s.empty() ? "/" : s;
}

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, std::string_view source, int max_depth) {
  const size_t bad = find_invalid_utf8(text);
  MINDIESD_CHECK(bad == std::string_view::npos, Corrupt, source, ": not valid UTF-8 (byte ", bad,
                 ")");
  const int depth = max_nesting(text);
  MINDIESD_CHECK(depth <= max_depth, Corrupt, source, ": JSON nested ", depth,
                 " levels deep, more than the ", max_depth, " allowed");

  // The parser callback sees every key; one key set per open object finds duplicates, which
  // nlohmann would otherwise resolve silently by keeping the last value.
  struct Frame {
    bool is_object;
    std::set<std::string> keys;
    std::string name;  // this container's key or index in its parent, for the error path
    size_t next_index = 0;
  };
  std::vector<Frame> stack;
  std::string duplicate;
  std::string duplicate_path;
  std::string current_key;

  auto name_for_child = [&]() -> std::string {
    if (stack.empty()) return {};
    Frame& top = stack.back();
    if (top.is_object) return current_key;
    return std::to_string(top.next_index);
  };
  auto value_done = [&]() {
    if (!stack.empty() && !stack.back().is_object) ++stack.back().next_index;
  };

  using Event = nlohmann::json::parse_event_t;
  const nlohmann::json::parser_callback_t callback = [&](int, Event event,
                                                         nlohmann::json& parsed) -> bool {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        stack.push_back(Frame{event == Event::object_start, {}, name_for_child()});
        break;
      case Event::object_end:
      case Event::array_end:
        if (!stack.empty()) stack.pop_back();
        value_done();
        break;
      case Event::key:
        current_key = parsed.is_string() ? parsed.get<std::string>() : std::string();
        if (!stack.empty() && !stack.back().keys.insert(current_key).second && duplicate.empty()) {
          duplicate = current_key;
          std::vector<std::string> path;
          for (size_t i = 1; i < stack.size(); ++i) path.push_back(stack[i].name);
          duplicate_path = path_string(path);
        }
        break;
      case Event::value:
        value_done();
        break;
    }
    return true;
  };

  nlohmann::json result;
  try {
    result = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const nlohmann::json::exception& e) {
    MINDIESD_THROW(Corrupt, source, ": not valid JSON: ", e.what());
  }
  MINDIESD_CHECK(
      duplicate.empty(), Corrupt, source, ": key '", duplicate, "' appears twice in ",
      duplicate_path == "/" ? std::string("the top-level object") : "object " + duplicate_path);
  return result;
}

}  // namespace mindiesd::io
