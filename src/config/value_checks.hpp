#pragma once
// The rules a single config value must follow: identifiers, listen addresses, SHA-256 digests,
// JSON pointers, lists of allowed words and durations. Private to the config module.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json_reader.hpp"
#include "key_spec.hpp"

namespace sluice::config_detail {

/// [a-z_][a-z0-9_]*, at most max_len characters.
bool is_identifier(std::string_view s, std::size_t max_len);

/// "must be an identifier (lowercase letters, ...)", the complaint for a bad identifier.
std::string identifier_rule(std::size_t max_len);

string_check non_empty();
string_check identifier(std::size_t max_len);
/// One of the words, with a suggestion for a near miss.
string_check one_of(std::vector<std::string> allowed);
/// Not empty and without white space.
string_check no_spaces();
/// "host:port" or "[v6-address]:port"; port 0 asks the OS for a free port.
string_check listen_address();
/// 64 hexadecimal characters, lowercased in place.
string_check sha256_hex();

/// RFC 6901: "/a/b~1c" → {"a", "b/c"}; nothing when it is not a pointer.
std::optional<std::vector<std::string>> pointer_tokens(const std::string& p);

/// Why a string is not a JSON pointer, or nothing when it is one.
std::optional<std::string> pointer_problem(const std::string& s);

/// A set's key or event time: a top-level member name, or a JSON pointer when it starts with "/".
string_check member_or_pointer();

/// How long a duration key may be: milliseconds for the check, text for messages and the schema.
struct duration_range {
    std::int64_t lo_ms;
    std::int64_t hi_ms;
    const char* lo_text;
    const char* hi_text;
};

/// Reads a duration string and checks its range; reports and returns nothing when it is not one.
std::optional<std::int64_t> read_duration(const json& v, const std::string& p, const duration_range& range,
                                          diagnostics& d);

}  // namespace sluice::config_detail
