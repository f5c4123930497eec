#pragma once
// Converts typed values to and from the JSON text that Redis stores and the API serves.

#include <optional>
#include <string>
#include <string_view>

#include "sluice/core/field_type.hpp"
#include "sluice/core/record.hpp"

namespace sluice {

/// The JSON text of a value of this type: 17, 2.5, true, "DE", "2026-11-21T10:00:00.000Z" for a
/// timestamp, the stored JSON for a json field, null for monostate.
std::string value_to_json_text(field_type type, const value& v);
/// The same text written onto `out`. Both are byte for byte what the JSON library writes
/// (invalid UTF-8 replaced), without building a node for it.
void append_value_json_text(std::string& out, field_type type, const value& v);
/// A string as JSON text, the same way, written onto `out`.
void append_json_string(std::string& out, std::string_view s);

/// Parses what value_to_json_text wrote; nullopt when the text does not fit the type.
std::optional<value> value_from_json_text(field_type type, std::string_view text);

}  // namespace sluice
